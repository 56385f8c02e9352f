"""Re-stamped MVM responses (amc/hw/mvm_restamp.py): one ngspice .op per MVM topology, later programmings
re-stamped into ngspice's own matrix.

Held to ngspice's quasi-static batch of each programmed deck; a saturating programming and a corrupted template are
caught, logged and turn the topology back to per-programming ngspice; verified / re-stamped counts by hand.
"""
import logging

import numpy as np
import pytest

from amc import CircuitConfig
from amc.hw import mvm_restamp, restamp
from amc.hw.mvm import AnalogMVM


def config(kind: str, **overrides) -> CircuitConfig:
    base = {"ideal": CircuitConfig.preset("ideal"),
            "rram": CircuitConfig.preset("rram").replace(**{"device.levels": 16, "device.program_sigma": 0.03}),
            "wired": CircuitConfig.preset("rram").replace(**{"wires.row_ohm": 2.0, "wires.col_ohm": 3.0})}[kind]
    return base.replace(**overrides) if overrides else base


def programmed(cfg: CircuitConfig, shape: tuple, seed: int) -> tuple[AnalogMVM, np.ndarray]:
    """A one-array MVM (one slice, untiled) programmed with a random H; the device draw is seeded by ``seed``."""
    mvm = AnalogMVM(cfg, seed_offset=seed)
    h = np.random.default_rng(seed).standard_normal(shape)
    mvm.program(h)
    return mvm, h


def ngspice_response(mvm: AnalogMVM) -> np.ndarray:
    """ngspice's own response of the programmed deck: its quasi-static batch, scaled as AnalogMVM.response does."""
    (arr,) = mvm.programmed_arrays
    return arr.weight * (-mvm.batch_outputs(arr) / arr.rf) / (arr.g_unit * mvm.read_voltage)


@pytest.mark.parametrize("shape", [(5, 5), (4, 7), (7, 3)])
@pytest.mark.parametrize("kind", ["ideal", "rram", "wired"])
def test_a_restamped_mvm_response_is_ngspices_response_of_that_deck(kind, shape):
    cfg = config(kind)
    first, h1 = programmed(cfg, shape, 1)
    r1 = first.response(h1)
    second, h2 = programmed(cfg, shape, 2)
    r2 = second.response(h2)
    assert (first.counts.programmings_verified, first.counts.programmings_restamped) == (1, 0)
    assert first.counts.ngspice_runs == 2                        # the batch and the matrix export
    assert (second.counts.programmings_verified, second.counts.programmings_restamped) == (0, 1)
    assert second.counts.ngspice_runs == 0                       # no simulator run behind the re-stamped programming
    want = ngspice_response(second)
    assert np.max(np.abs(r2 - want)) <= 1e-9 * np.max(np.abs(want))
    # the stamps did something: another programming (different H, cells and feedback), not the template's answer
    assert np.max(np.abs(r2 - r1)) > 1e-2 * np.max(np.abs(r2))
    assert not restamp.store().failures
    # every factorisation of the re-stamped matrix gives the same answer (Schur where it applies, SuperLU, LAPACK)
    template = restamp.store().lookup(mvm_restamp.topology_key(cfg, *shape))
    (arr,) = second.programmed_arrays
    g = mvm_restamp.conductances(arr.g_pos, arr.g_neg, arr.rf)
    answers = {k: template.restamp(g, k).solve(template.system.rhs) for k in ("auto", "sparse", "dense")}
    for k in ("sparse", "dense"):
        assert np.max(np.abs(answers[k] - answers["auto"])) <= 1e-9 * np.max(np.abs(answers["auto"]))


def test_a_saturating_programming_fails_the_cheap_check_and_ngspice_measures_it(caplog):
    cfg = config("rram")
    shape = (4, 4)
    first, h1 = programmed(cfg, shape, 1)
    first.response(h1)                                           # the topology's template (verified)
    # A feedback resistor 40x the auto-ranged one drives the unit-input outputs to the op-amp's 4.5 V swing
    # (a TIA gain the ranging would never pick: the deliberately non-linear programming).
    loud, h2 = programmed(cfg, shape, 2)
    (arr,) = loud.programmed_arrays
    arr.rf *= 40
    with caplog.at_level(logging.WARNING, logger="amc.engine"):
        response = loud.response(h2)
    kinds = [(f.kind, f.reason) for f in restamp.store().failures]
    assert kinds[0][0] == "cheap check" and "linear region" in kinds[0][1]
    assert kinds[1][0] == "spot check"                           # the linear matrix answers cannot be the batch
    assert any("cheap check failed" in r.getMessage() for r in caplog.records)
    assert any("spot check failed" in r.getMessage() for r in caplog.records)
    assert (loud.counts.programmings_verified, loud.counts.programmings_restamped) == (1, 0)
    # what is returned is ngspice's own (saturated) response, well away from the linear one
    want = ngspice_response(loud)
    assert np.max(np.abs(response - want)) <= 1e-12 * np.max(np.abs(want))
    linear = restamp.store().lookup(mvm_restamp.topology_key(cfg, *shape))      # the first programming's
    g = mvm_restamp.conductances(arr.g_pos, arr.g_neg, arr.rf)
    x = linear.restamp(g).solve(linear.system.rhs_with(mvm_restamp.sources(4),
                                                       mvm_restamp.source_values(4, loud.read_voltage),
                                                       np.full(8, linear.sign)))
    v_linear = x[[linear.system.equation(f"out_{i}") for i in range(4)], :]
    assert np.max(np.abs(v_linear)) > 1.5 * np.max(np.abs(loud.batch_outputs(arr)))
    # the topology now falls back to per-programming ngspice
    assert mvm_restamp.topology_key(cfg, *shape) in restamp.store().fallback
    later, h3 = programmed(cfg, shape, 3)
    later.response(h3)
    assert (later.counts.programmings_verified, later.counts.programmings_restamped) == (1, 0)
    assert later.counts.ngspice_runs == 1                        # the batch alone


def test_a_wrong_restamp_is_caught_by_the_next_spot_check(caplog):
    """A template whose recorded conductances are corrupted passes the cheap checks -- they cannot see it -- and the
    next verified programming's spot check catches it."""
    cfg = config("ideal", **{"simulation.verify_every": 2})
    shape = (4, 6)
    mvms = [programmed(cfg, shape, s) for s in range(4)]
    mvms[0][0].response(mvms[0][1])
    template = restamp.store().lookup(mvm_restamp.topology_key(cfg, *shape))
    template.conductances = template.conductances * 1.01
    counts = []
    with caplog.at_level(logging.WARNING, logger="amc.engine"):
        for mvm, h in mvms[1:]:
            mvm.response(h)
            counts.append((mvm.counts.programmings_verified, mvm.counts.programmings_restamped))
    # programming 2 re-stamped (wrongly, undetected), 3 verified and its spot check fails, 4 verified (fallback)
    assert counts == [(0, 1), (1, 0), (1, 0)]
    failure = restamp.store().failures[-1]
    assert failure.kind == "spot check" and "re-stamped template differs from ngspice's response" in failure.reason
    assert mvm_restamp.topology_key(cfg, *shape) in restamp.store().fallback
    assert any("spot check failed on a 4x6 MVM array" in r.getMessage() for r in caplog.records)


def test_verified_and_restamped_counts_match_a_hand_count():
    """Two topologies (4x4 and 3x5) programmed alternately 7 times each with verify_every 3: programmings 1, 4 and 7
    of each are ngspice's (batch + matrix export: 2 runs), the other 4 re-stamped (no run)."""
    cfg = config("rram", **{"simulation.verify_every": 3})
    verified = restamped = runs = 0
    for step in range(7):
        for shape in ((4, 4), (3, 5)):
            mvm, h = programmed(cfg, shape, 10 * step + shape[1])
            mvm.response(h)
            verified += mvm.counts.programmings_verified
            restamped += mvm.counts.programmings_restamped
            runs += mvm.counts.ngspice_runs
    assert (verified, restamped) == (2 * 3, 2 * 4)
    assert runs == 2 * verified
    assert "programmings verified by ngspice" in repr(mvm.counts)


def test_mvm_and_inv_templates_share_the_bounded_store():
    cfg = config("ideal", **{"simulation.template_cache": 2})
    for shape in ((3, 4), (4, 3), (5, 5)):
        mvm, h = programmed(cfg, shape, 1)
        mvm.response(h)
    assert [key[0] for key in restamp.store().templates] == [("mvm", 4, 3), ("mvm", 5, 5)]
    assert mvm_restamp.topology_key(cfg, 5, 5) != restamp.topology_key(cfg, 5)
    assert mvm_restamp.topology_key(cfg.replace(**{"device.levels": 4}), 5, 5) == mvm_restamp.topology_key(cfg, 5, 5)
    assert mvm_restamp.topology_key(cfg.replace(**{"opamp.gain": 1e9}), 5, 5) != mvm_restamp.topology_key(cfg, 5, 5)


def test_hpinv_extracted_operators_report_the_mvms_restamped_programmings(spd):
    """HP-INV with extracted operators and ``mvm.response: circuit``: the MVM's three slice arrays share a topology
    (one verified, two re-stamped), the INV array is verified; the Solution's account carries all four, and the answer
    is the closed-form comparison's to the circuit's 1e-9."""
    from amc import MethodSolver
    n = 6
    h, g = spd(n, 3), np.random.default_rng(3).standard_normal((n, 2))
    opts = dict(method="hp-inv", refinement="pcg", iterations=3, operators="extracted")
    cfg = config("ideal")
    sol = MethodSolver(cfg, mvm={"slices": 3, "response": "circuit"}, **opts).solve(h, g)
    assert (sol.operations.programmings_verified, sol.operations.programmings_restamped) == (2, 2)
    assert "2 programmings verified by ngspice, 2 re-stamped" in repr(sol.operations)
    closed = MethodSolver(cfg, mvm={"slices": 3, "response": "closed-form"}, **opts).solve(h, g)
    assert np.linalg.norm(sol.x - closed.x) <= 1e-8 * np.linalg.norm(closed.x)


@pytest.mark.parametrize("setting", [{"simulation.verify_every": 1}, {"simulation.engine": "ngspice"}])
def test_without_restamping_every_programming_is_ngspices_batch(setting):
    cfg = config("ideal", **setting)
    for seed in (1, 2):
        mvm, h = programmed(cfg, (4, 5), seed)
        mvm.response(h)
        assert (mvm.counts.programmings_verified, mvm.counts.programmings_restamped) == (1, 0)
        assert mvm.counts.ngspice_runs == 1                        # the batch, no matrix export
    assert not restamp.store().templates
