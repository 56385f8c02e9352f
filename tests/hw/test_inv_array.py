"""One programmed array = one device draw, its own counter, and settles from its measured response held to ngspice."""
import numpy as np
import pytest

from amc import CircuitConfig, InvArray, MethodConfig, MethodSolver, OperationCounts
from amc.errors import ConfigError
from amc.hw.response import conductances_at
from amc.hw.runner import session
from workflow.matrices import kfac_like_factor

from workflow.matrices import random_spd

RRAM = CircuitConfig.preset("rram")


def _ngspice_x(array: InvArray, read, g: np.ndarray) -> np.ndarray:
    """x from an ngspice .op of a deck that carries the conductances of one read (drift, noise) of ``array``."""
    from amc.hw.netlist import build_deck, output_node
    mapped = array.mapped
    i0 = array.readout.initial_i0(mapped, g)
    deck = build_deck(read, array.readout.dac(g, i0), array.config)
    ng = session()
    ng.load(deck)
    try:
        raw = ng.run([output_node(j) for j in range(mapped.n)])
    finally:
        ng.clean()
    v = np.array([raw[output_node(j)][-1] for j in range(mapped.n)])
    return -v * mapped.g0 * np.max(np.abs(g)) / i0


@pytest.mark.slow
def test_each_hpinv_block_draws_its_conductances_once_per_programming():
    config = RRAM.replace(**{"device.program_sigma": 0.02})
    h = kfac_like_factor(24, 1)
    g = np.random.default_rng(0).standard_normal(24)
    solver = MethodSolver(config, method={"preset": "hpinv-pcg", "iterations": 5, "array_size": 12,
                                          "shift": 0.3, "operators": "per-solve"})
    first = solver.solve(h, g)
    system = solver.program(h).state                 # the held handle: no new write
    assert len(system.arrays) == 2 and system.arrays[0] is not system.arrays[1]
    # one programming per block array (shift fixed: no program-and-verify retries), none while iterating
    assert [a.counts.programmings for a in system.arrays] == [1, 1]
    held = [a.mapped.g_pos.copy() for a in system.arrays]
    second = solver.solve(h, g)
    assert [a.counts.programmings for a in system.arrays] == [1, 1]
    assert all(np.array_equal(a.mapped.g_pos, before) for a, before in zip(system.arrays, held))
    # the two blocks carry different draws (their own random streams)
    assert not np.allclose(held[0] / held[0].mean(), held[1][:12, :12] / held[1][:12, :12].mean())
    np.testing.assert_allclose(second.x, first.x, rtol=1e-9)         # the same operator on every application
    assert first.operations.programmings == 2 + first.details["mvm_arrays"]
    assert second.operations.programmings == 0
    assert first.operations.inv_settles == 2 * 5 and first.operations.mvm_reads == 5 * first.details["mvm_arrays"]


def test_counter_counts_what_was_done_to_the_array():
    h = random_spd(6, seed=3)
    array = InvArray(RRAM.replace(**{"device.levels": None}))
    array.program(h)
    g = np.random.default_rng(1).standard_normal((6, 3))
    array.solve(g)
    c = array.counts
    assert (c.programmings, c.cells_programmed) == (1, 2 * 36)
    assert c.inv_settles == 3 + 0 and c.dac_conversions == 6 * c.inv_settles == c.adc_conversions
    assert c.ngspice_runs >= 1
    array.program(h)
    assert array.counts.programmings == 2
    assert repr(array).count("\n") == 0 and "2 programmings" in repr(array)


@pytest.mark.parametrize("preset,n", [("rram", 8), ("ideal", 12)])
def test_read_from_measured_response_equals_ngspice(preset, n):
    config = CircuitConfig.preset(preset).replace(**{"device.levels": None, "io.equilibrate": True})
    h = random_spd(n, seed=n)
    array = InvArray(config).program(h)
    g = np.random.default_rng(n).standard_normal((n, 4))
    fast = array.read(g).x
    spice = array.solve(g).x
    np.testing.assert_allclose(fast, spice, rtol=0, atol=1e-8 * np.abs(spice).max())


def test_read_noise_and_drift_perturbation_equals_ngspice_on_the_perturbed_deck():
    config = RRAM.replace(**{"device.levels": 16, "device.read_noise_sigma": 0.01, "device.drift_nu": 0.05,
                             "device.drift_nu_sigma": 0.02})
    h = random_spd(10, seed=5, lam_min=1.0, lam_max=3.0)
    array = InvArray(config).program(h)
    g = np.random.default_rng(2).standard_normal(10)
    seconds = 3600.0
    array.response()                                            # measured once per programming (drift exponents too)
    state = array._rng.bit_generator.state
    fast = array.read(g, seconds_since_programming=seconds)
    array._rng.bit_generator.state = state                     # replay the same read-noise draw
    read = conductances_at(array, seconds, array._rng)
    spice = _ngspice_x(array, read, g)
    # exact for the linear circuit; what remains is the op-amp limiter's compression divided by the loop gain
    np.testing.assert_allclose(fast.x, spice, rtol=0, atol=1e-6 * np.abs(spice).max())
    # the perturbation is not negligible: the noiseless, undrifted answer differs by far more than the tolerance
    clean = _ngspice_x(array, array.mapped, g)
    assert np.abs(clean - spice).max() > 1e-4 * np.abs(spice).max()
    # drift: later reads drift further from the programmed answer
    quiet = InvArray(config.replace(**{"device.read_noise_sigma": 0.0})).program(h)
    d1 = np.linalg.norm(quiet.read(g, 10.0).x - quiet.read(g, 0.0).x)
    d2 = np.linalg.norm(quiet.read(g, 1e5).x - quiet.read(g, 0.0).x)
    assert 0 < d1 < d2


def test_method_config_one_spelling_and_keys_without_effect_are_rejected():
    a = MethodConfig.from_spec({"preset": "hpinv-pcg", "iterations": 3, "mvm": {"slices": 4}}, "run.yaml")
    b = MethodConfig.preset("hpinv-pcg").replace(iterations=3, **{"mvm.slices": 4})
    assert a == b and a.iterations == 3 and a.mvm.slices == 4 and a.refinement == "pcg"
    with pytest.raises(ConfigError, match=r"run.yaml: unknown key 'method.refinement' for method 'direct'"):
        MethodConfig.from_spec({"preset": "direct", "refinement": "pcg"}, "run.yaml")
    with pytest.raises(ConfigError, match=r"unknown key 'method.iteration' for method 'hp-inv' \(did you mean"):
        MethodConfig.from_spec({"name": "hp-inv", "iteration": 3}, "run.yaml")
    assert "\n" not in repr(a) and repr(a).startswith("MethodConfig(hp-inv")


def test_solution_repr_is_one_line_and_counts_add_up():
    h = random_spd(5, seed=9)
    sol = MethodSolver("ideal", method={"name": "direct"}).solve(h, np.ones((5, 2)))
    assert "\n" not in repr(sol) and "2 settles" in repr(sol)
    assert isinstance(sol.operations, OperationCounts) and sol.operations.programmings == 1
    assert sol.analog_error is not None and sol.analog_error < 1e-8
    total = sol.operations + sol.operations
    assert total.inv_settles == 4 and OperationCounts.from_dict(total.to_dict()) == total


@pytest.mark.slow
def test_direct_with_auto_shift_programs_until_the_array_settles():
    """8 levels leave some K-FAC-like factors indefinite; shift: auto re-programs (each write counted) until stable."""
    h = kfac_like_factor(36, 2)
    g = np.random.default_rng(0).standard_normal(36)
    plain = MethodSolver(RRAM, method={"name": "direct", "equilibrate": True, "operators": "extracted"})
    shifted = MethodSolver(RRAM, method={"name": "direct", "equilibrate": True, "operators": "extracted",
                                         "shift": "auto"})
    unstable = 0
    for seed in range(6):
        h = kfac_like_factor(36, seed)
        try:
            plain.solve(h, g)
        except Exception:
            unstable += 1
        sol = shifted.solve(h, g)
        assert np.all(np.isfinite(sol.x)) and sol.operations.programmings >= 1
        assert sol.analog_error < 1.0          # a damped inverse: off, but the right direction
    assert unstable >= 1, "the factors must include one that 8 levels make unstable without the shift"
    with pytest.raises(ConfigError, match="unknown key 'method.iterations' for method 'direct'"):
        MethodConfig.from_spec({"name": "direct", "iterations": 2})


def test_read_of_a_wired_array_equals_ngspice():
    """The measured response includes the wires' IR drop; noisy reads of a wired array go to ngspice itself."""
    config = CircuitConfig.preset("ideal").replace(**{"wires.row_ohm": 2.0, "wires.col_ohm": 2.0})
    h = random_spd(6, seed=8)
    g = np.random.default_rng(8).standard_normal((6, 3))
    array = InvArray(config).program(h)
    np.testing.assert_allclose(array.read(g).x, array.solve(g).x, rtol=0, atol=1e-8 * np.abs(array.solve(g).x).max())
    assert np.linalg.norm(array.read(g).x - np.linalg.solve(h, g)) > 1e-6      # the wires matter


def test_analyses_print_their_spice_card():
    from amc.hw.netlist import OperatingPoint, QuasiStaticBatch, Transient
    assert OperatingPoint().card() == ".op" and repr(OperatingPoint()) == "OperatingPoint(.op)"
    assert Transient(1e-9, 2e-6).card() == ".tran 1.0000000000000001e-09 1.9999999999999999e-06 0 1.0000000000000001e-09 uic"
    assert QuasiStaticBatch(5).card() == ".tran 1 4 0 1" and "QuasiStaticBatch(.tran 1 4 0 1)" == repr(QuasiStaticBatch(5))
    array = InvArray(CircuitConfig.preset("ideal-dynamic")).program(random_spd(3, seed=1))
    assert ".op\n" in array.deck(np.ones(3)) and " uic\n" in array.deck(np.ones(3), transient=True)


def test_read_keeps_the_op_amp_offset():
    config = CircuitConfig.preset("rram").replace(**{"device.levels": None, "opamp.offset_v": 2e-3})
    h = random_spd(6, seed=12)
    g = np.random.default_rng(12).standard_normal((6, 2))
    array = InvArray(config).program(h)
    spice = array.solve(g).x
    np.testing.assert_allclose(array.read(g).x, spice, rtol=0, atol=1e-6 * np.abs(spice).max())


def test_a_failed_solve_carries_what_the_arrays_did_and_is_not_written_again():
    from amc.errors import AmcError
    config = RRAM.replace(**{"device.levels": 4})
    h = kfac_like_factor(24, 3)
    solver = MethodSolver(config, method={"name": "hp-inv", "refinement": "pcg", "equilibrate": True, "iterations": 2})
    with pytest.raises(AmcError) as first:
        solver.solve(h, np.ones(24))
    assert first.value.operations.programmings == 1 and first.value.operations.cells_programmed == 2 * 24 * 24
    with pytest.raises(AmcError) as again:
        solver.solve(h, np.ones(24))
    assert again.value.__class__ is first.value.__class__ and not hasattr(again.value, "operations")


def test_repast_reports_the_analog_inverse_error_not_the_refined_one():
    h = kfac_like_factor(16, 4)
    g = np.random.default_rng(4).standard_normal(16)
    sol = MethodSolver(RRAM, method={"preset": "repast", "iterations": 2, "operators": "extracted"}).solve(h, g)
    assert sol.analog_error > 2 * sol.relative_error and sol.lambda_min is not None
    assert sol.operations.inv_settles >= 16 and sol.operations.mvm_reads > 0
