"""Re-stamped programmings (amc/hw/restamp.py): one ngspice .op per topology, the next programmings re-stamped.

Held to ngspice's own .op of each programmed deck; failed checks are caught, logged and turn the topology back to
per-programming verification; the account's verified / re-stamped counts are counted by hand.
"""
import logging

import numpy as np
import pytest

from amc import CircuitConfig
from amc.errors import ConfigError
from amc.hw import restamp
from amc.hw.inv_array import InvArray
from amc.hw.netlist import build_deck, output_node
from amc.hw.runner import session
from amc.methods.config import MethodConfig
from amc.methods.direct import DirectSolver


def config(kind: str, **overrides) -> CircuitConfig:
    base = {"ideal": CircuitConfig.preset("ideal"),
            "rram": CircuitConfig.preset("rram").replace(**{"device.levels": 16, "device.program_sigma": 0.03,
                                                            "io.equilibrate": True}),
            "wired": CircuitConfig.preset("rram").replace(**{"wires.row_ohm": 2.0, "wires.col_ohm": 3.0})}[kind]
    return base.replace(**overrides) if overrides else base


def programmed(cfg: CircuitConfig, n: int, seed: int, spd) -> InvArray:
    return InvArray(cfg, rng=np.random.default_rng(seed)).program(spd(n, seed))


def ngspice_outputs(array: InvArray, currents: np.ndarray) -> np.ndarray:
    ng = session()
    ng.load(build_deck(array.mapped, currents, array.config))
    try:
        raw = ng.run([output_node(j) for j in range(array.n)])
    finally:
        ng.clean()
    return np.array([raw[output_node(j)][-1] for j in range(array.n)])


@pytest.mark.parametrize("kind", ["ideal", "rram", "wired"])
def test_a_restamped_programming_is_ngspices_own_op_of_that_deck(kind, spd):
    n = 6
    cfg = config(kind)
    first = programmed(cfg, n, 1, spd)
    first.response()
    second = programmed(cfg, n, 2, spd)
    response = second.response()
    assert (first.counts.programmings_verified, first.counts.programmings_restamped) == (1, 0)
    assert (second.counts.programmings_verified, second.counts.programmings_restamped) == (0, 1)
    assert second.counts.ngspice_runs == 0                      # no simulator run behind the re-stamped programming
    # Two input patterns at 0.1 V of output: the limiter is linear there to ~(0.1/4.5)^8, far below 1e-9.
    rng = np.random.default_rng(7)
    for currents in (np.eye(n)[:, 2], rng.standard_normal(n)):
        currents = currents * 0.1 / np.max(np.abs(response.r_out @ currents))
        want = ngspice_outputs(second, currents)
        got = response.v_zero + response.r_out @ currents
        assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want))
    # every factorisation of the re-stamped matrix gives the same answer (Schur where it applies, SuperLU, LAPACK)
    template = restamp.store().lookup(restamp.topology_key(cfg, n))
    rhs = template.system.rhs
    answers = {kind: template.restamp(second.mapped, kind).solve(rhs) for kind in ("auto", "sparse", "dense")}
    assert bool(template.schur()) == (kind != "wired")
    for kind in ("sparse", "dense"):
        assert np.max(np.abs(answers[kind] - answers["auto"])) <= 1e-9 * np.max(np.abs(answers["auto"]))
    # and the re-stamped programming is a different circuit from the template's (the stamps did something)
    assert np.max(np.abs(response.r_out - first.response().r_out)) > 1e-3 * np.max(np.abs(response.r_out))


@pytest.mark.parametrize("kind", ["ideal", "rram", "wired"])
def test_a_template_seeded_from_the_diagonal_cells_deck_restamps_to_ngspices_op(kind, spd):
    """restamp.seed: ngspice's .op of the circuit with only its diagonal cells, every other cell re-stamped in."""
    n = 6
    cfg = config(kind)
    restamp.seed(cfg, n)
    array = programmed(cfg, n, 3, spd)
    response = array.response()
    assert (array.counts.programmings_verified, array.counts.programmings_restamped) == (0, 1)
    currents = np.random.default_rng(1).standard_normal(n)
    currents *= 0.1 / np.max(np.abs(response.r_out @ currents))
    want = ngspice_outputs(array, currents)
    assert np.max(np.abs(response.v_zero + response.r_out @ currents - want)) <= 1e-9 * np.max(np.abs(want))


def test_a_programming_driven_into_saturation_fails_the_cheap_check_and_is_verified_by_ngspice(spd, caplog):
    n = 5
    cfg = config("rram")
    programmed(cfg, n, 1, spd).response()                       # the topology's template (verified)
    # A fixed input scale 60x the auto-ranged one puts the unit-current measurement into the bend of the op-amp's
    # output limiter (the onset of saturation; compression above the engine's 1e-7): the re-stamped (linear) answer cannot
    # stand, so ngspice runs; its engine sees the same bend and the plain ngspice batch measures the response.
    probe = programmed(cfg, n, 2, spd)
    i0 = probe.readout.initial_i0(probe.mapped, np.eye(n)[:, 0])
    loud = cfg.replace(**{"io.i0_a": 60 * i0})
    with caplog.at_level(logging.WARNING, logger="amc.engine"):
        array = programmed(loud, n, 2, spd)
        array.response()
    failure = restamp.store().failures[-1]
    assert failure.kind == "cheap check" and "outside the limiter's linear region" in failure.reason
    assert any("cheap check failed" in r.getMessage() for r in caplog.records)
    assert (array.counts.programmings_verified, array.counts.programmings_restamped) == (1, 0)
    assert array.engine_stats["fallback_rhs"] == n                # ngspice's engine saw the saturation too
    # the topology now falls back to per-programming verification
    later = programmed(cfg, n, 3, spd)
    later.response()
    assert (later.counts.programmings_verified, later.counts.programmings_restamped) == (1, 0)


def test_a_wrong_restamp_is_caught_by_the_next_spot_check(spd, caplog):
    """A template that no longer matches the circuit (its recorded conductances corrupted) passes the cheap checks
    -- they cannot see it -- and the next periodic ngspice .op catches it."""
    n = 5
    cfg = config("ideal", **{"simulation.verify_every": 2})
    counts = []
    arrays = [programmed(cfg, n, s, spd) for s in range(4)]
    arrays[0].response()
    template = restamp.store().lookup(restamp.topology_key(cfg, n))
    template.conductances = template.conductances * 1.01
    with caplog.at_level(logging.WARNING, logger="amc.engine"):
        for a in arrays[1:]:
            a.response()
            counts.append((a.counts.programmings_verified, a.counts.programmings_restamped))
    # programming 2 re-stamped (wrongly, undetected), 3 verified and its spot check fails, 4 verified (fallback)
    assert counts == [(0, 1), (1, 0), (1, 0)]
    failure = restamp.store().failures[-1]
    assert failure.kind == "spot check" and "ngspice" in failure.reason
    assert restamp.topology_key(cfg, n) in restamp.store().fallback
    assert any("spot check failed" in r.getMessage() for r in caplog.records)


def test_the_accounts_verified_and_restamped_counts_match_a_hand_count(spd):
    """Two topologies (n = 4 and 5) programmed alternately 7 times each with verify_every 3: programmings 1, 4 and 7
    of each topology are ngspice's .op, the other 4 re-stamped. Through the direct method, Solution by Solution."""
    method = MethodConfig.from_spec({"name": "direct", "operators": "extracted"})
    solver = DirectSolver(config("ideal", **{"simulation.verify_every": 3}), method)
    verified = restamped = runs = 0
    for step in range(7):
        for n in (4, 5):
            h = spd(n, 10 * step + n)
            sol = solver.solve(h, np.ones(n))
            verified += sol.operations.programmings_verified
            restamped += sol.operations.programmings_restamped
            runs += sol.operations.ngspice_runs
            assert sol.operations.programmings == 1
            assert sol.relative_error < 1e-8                     # ideal parts: exact either way
    assert (verified, restamped) == (2 * 3, 2 * 4)
    assert runs == verified                                       # one ngspice run per verified programming
    assert "programmings verified by ngspice" in repr(sol.operations)


def test_verify_every_1_is_an_ngspice_op_for_every_programming(spd):
    cfg = config("ideal", **{"simulation.verify_every": 1})
    arrays = [programmed(cfg, 4, s, spd) for s in range(3)]
    for a in arrays:
        a.response()
    assert [a.counts.programmings_verified for a in arrays] == [1, 1, 1]
    assert [a.counts.ngspice_runs for a in arrays] == [1, 1, 1]
    assert not restamp.store().templates


def test_the_template_memory_is_a_bounded_lru(spd):
    cfg = config("ideal", **{"simulation.template_cache": 2})
    for n in (3, 4, 5):
        programmed(cfg, n, n, spd).response()
    assert [key[0] for key in restamp.store().templates] == [4, 5]      # n = 3 dropped, least recently used
    programmed(cfg, 5, 99, spd).response()           # the first re-stamp builds the template's Schur factor
    size = restamp.store().nbytes
    for seed in range(6):                                                # later re-stamps keep no memory
        programmed(cfg, 5, 100 + seed, spd).response()
    assert restamp.store().nbytes == size
    # the op-amp model is part of the topology: another op-amp gets its own template
    other = cfg.replace(**{"opamp.gain": 1e9})
    assert restamp.topology_key(other, 5) != restamp.topology_key(cfg, 5)
    assert restamp.topology_key(cfg.replace(**{"device.levels": 4}), 5) == restamp.topology_key(cfg, 5)


@pytest.mark.parametrize("key, value", [("verify_every", 0), ("template_cache", 0), ("verify_every", -25)])
def test_bad_restamp_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"simulation.{key} must be an integer >= 1"):
        CircuitConfig.preset("ideal").replace(**{f"simulation.{key}": value})
