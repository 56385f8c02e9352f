"""The circuit against numpy and against the finite-gain closed form (DESIGN.md section 1)."""
import numpy as np
import pytest

from amc import AnalogSolver, CircuitConfig
from amc.hw.mapping import map_matrix
from workflow.matrices import random_spd


@pytest.mark.parametrize("n", [2, 3, 8, 16, 32, 64])
def test_ideal_circuit_equals_numpy_for_spd(n):
    h = random_spd(n, seed=n)
    g = np.random.default_rng(100 + n).standard_normal(n)
    solution = AnalogSolver("ideal").solve(h, g)
    assert solution.error_against(np.linalg.solve(h, g)) <= 1e-9
    assert solution.relative_residual <= 1e-9
    assert not solution.saturated_any


@pytest.mark.parametrize("n", [4, 12, 24])
def test_ideal_circuit_equals_numpy_for_nonsymmetric_stable(n):
    rng = np.random.default_rng(n)
    h = np.eye(n) * 2.0 + 0.4 * rng.standard_normal((n, n)) / np.sqrt(n)
    assert np.linalg.eigvals(h).real.min() > 0 and not np.allclose(h, h.T)
    g = rng.standard_normal(n)
    assert AnalogSolver("ideal").solve(h, g).error_against(np.linalg.solve(h, g)) <= 1e-9


@pytest.mark.parametrize("gain", [1e2, 1e3, 1e4])
def test_finite_gain_matches_closed_form(gain):
    """With ideal inverters the row node sits at -V_i/A0: ngspice must solve (G + diag(S)/A0) V = -I exactly."""
    n = 16
    h = random_spd(n, seed=3)
    g = np.random.default_rng(4).standard_normal(n)
    config = CircuitConfig.preset("ideal").replace(**{"opamp.gain": gain})
    solution = AnalogSolver(config).solve(h, g)
    mapped = map_matrix(h, config.device)
    x_closed = mapped.g0 * np.linalg.solve(mapped.effective_conductance(gain), g)
    assert np.linalg.norm(solution.x - x_closed) / np.linalg.norm(x_closed) <= 1e-9
    # and the finite gain really matters at this level
    assert solution.error_against(np.linalg.solve(h, g)) > 1e-4 / gain * 10


def test_opamp_inverter_departs_from_closed_form_by_order_one_over_gain():
    """A real inverting amplifier outputs -V*A/(A+2): the closed form (ideal inverters) is off by ~2/A0."""
    n, gain = 12, 1e3
    h = random_spd(n, seed=5)
    g = np.random.default_rng(6).standard_normal(n)
    config = CircuitConfig.preset("ideal").replace(**{"opamp.gain": gain, "inverter.kind": "opamp"})
    solution = AnalogSolver(config).solve(h, g)
    mapped = map_matrix(h, config.device)
    x_closed = mapped.g0 * np.linalg.solve(mapped.effective_conductance(gain), g)
    deviation = np.linalg.norm(solution.x - x_closed) / np.linalg.norm(x_closed)
    assert 1e-5 < deviation < 50 / gain


def test_multiple_rhs_on_one_programmed_array_equal_separate_solves():
    n = 10
    h = random_spd(n, seed=7)
    g = np.random.default_rng(8).standard_normal((n, 4))
    solver = AnalogSolver("rram")
    together = solver.solve(h, g)
    separate = np.stack([AnalogSolver("rram").solve(h, g[:, c]).x for c in range(4)], axis=1)
    assert together.x.shape == (n, 4)
    np.testing.assert_allclose(together.x, separate, rtol=1e-9, atol=1e-12)


def test_numpy_backend_has_the_same_api():
    h = random_spd(6, seed=9)
    g = np.random.default_rng(10).standard_normal((6, 2))
    solution = AnalogSolver("rram", backend="numpy").solve(h, g)
    np.testing.assert_allclose(solution.x, np.linalg.solve(h, g), rtol=1e-12)
    assert solution.relative_residual < 1e-14 and solution.netlist is None


def _mean_error(config, n, seeds=3):
    errors = []
    for seed in range(seeds):
        h = random_spd(n, seed=seed, lam_min=0.3)
        g = np.random.default_rng(seed + 50).standard_normal(n)
        errors.append(AnalogSolver(config).solve(h, g).error_against(np.linalg.solve(h, g)))
    return float(np.mean(errors))


def test_error_falls_as_conductance_levels_grow():
    base = CircuitConfig.preset("ideal")
    errors = [_mean_error(base.replace(**{"device.levels": levels}), n=12) for levels in (4, 16, 64, 256)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[0] / errors[-1] > 20, errors


def test_error_grows_with_n_at_fixed_levels():
    config = CircuitConfig.preset("ideal").replace(**{"device.levels": 16})
    errors = [_mean_error(config, n=n) for n in (4, 16, 48)]
    assert errors[0] < errors[1] < errors[2], errors


def test_error_grows_with_wire_resistance_and_with_n():
    base = CircuitConfig.preset("ideal")
    by_r = [_mean_error(base.replace(**{"wires.row_ohm": r, "wires.col_ohm": r}), n=12, seeds=2) for r in (0.0, 2.0, 10.0, 50.0)]
    assert by_r[0] < 1e-9 and all(a < b for a, b in zip(by_r, by_r[1:])), by_r
    wired = base.replace(**{"wires.row_ohm": 10.0, "wires.col_ohm": 10.0})
    by_n = [_mean_error(wired, n=n, seeds=2) for n in (4, 12, 24)]
    assert by_n[0] < by_n[1] < by_n[2], by_n


def test_equilibration_keeps_wide_dynamic_range_matrices_mappable():
    """A badly scaled SPD matrix loses rank on 8 levels; Jacobi equilibration (digital I/O gains) rescues it."""
    from amc import MappingError
    rng = np.random.default_rng(21)
    s = np.diag(10.0 ** rng.uniform(-3, 0, 10))
    h = s @ random_spd(10, seed=21, lam_min=0.5) @ s
    g = rng.standard_normal(10)
    config = CircuitConfig.preset("rram")
    with pytest.raises(MappingError):
        AnalogSolver(config).solve(h, g)
    equilibrated = AnalogSolver(config.replace(**{"io.equilibrate": True})).solve(h, g)
    assert equilibrated.error_against(np.linalg.solve(h, g)) < 0.5
    ideal = AnalogSolver(CircuitConfig.preset("ideal").replace(**{"io.equilibrate": True})).solve(h, g)
    assert ideal.error_against(np.linalg.solve(h, g)) < 1e-9


def test_batches_of_rhs_reuse_the_programmed_array_and_stay_exact():
    """Several RHS run as one quasi-static batch; the next batch on the same array only alters the sources."""
    from amc.hw.runner import session
    n = 20
    h = random_spd(n, seed=31)
    solver = AnalogSolver("ideal")
    g1, g2 = np.random.default_rng(32).standard_normal((2, n, 7))
    x1 = solver.solve(h, g1).x
    tag = session().tag
    x2 = solver.solve(h, g2).x
    assert session().tag is tag  # not reloaded
    np.testing.assert_allclose(x1, np.linalg.solve(h, g1), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(x2, np.linalg.solve(h, g2), rtol=1e-8, atol=1e-10)
    # the returned deck is the first right-hand side's, as finally solved: an .op deck anyone can rerun
    assert ".op" in solver.solve(h + np.eye(n), g1).netlist


def test_reprogramming_never_reuses_the_previous_draw_of_device_errors():
    """solve(H1), program(H2), solve(H1): the second H1 is a new programming; ngspice must simulate that one."""
    config = CircuitConfig.preset("ideal").replace(**{"device.program_sigma": 0.05})
    h1, h2 = random_spd(4, seed=41), random_spd(4, seed=42)
    g = np.ones(4)
    solver = AnalogSolver(config)
    solver.solve(h1, g)
    solver.program(h2)
    x = solver.solve(h1, g).x
    held = solver.program(h1).h_mapped  # what the array holds now
    assert np.linalg.norm(x - np.linalg.solve(held, g)) / np.linalg.norm(x) < 1e-9


def test_batch_with_saturating_columns_still_reports_them():
    """With a fixed, too large I0 the batch transient cannot follow the outputs into saturation: the solver falls
    back to one .op per column and reports the saturation instead of failing."""
    config = CircuitConfig.preset("rram").replace(**{"io.i0_a": 1e-3})
    h = random_spd(6, seed=43)
    g = np.random.default_rng(44).standard_normal((6, 3))
    solution = AnalogSolver(config).solve(h, g)
    assert solution.saturated.any(axis=0).all()
    single = AnalogSolver(config).solve(h, g[:, 1])
    np.testing.assert_allclose(solution.x[:, 1], single.x, rtol=1e-9)
