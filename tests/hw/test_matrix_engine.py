"""Matrix engine (issue 9): ngspice's own MNA matrix, factored once, against ngspice's .op for every RHS."""
import logging
import os
import tempfile

import numpy as np
import pytest

from amc import AnalogSolver, CircuitConfig, ConfigError
from amc.hw.mapping import map_matrix
from amc.hw.mna import CircuitMatrix, MatrixExportError, parse_matrix, parse_rhs
from amc.hw.netlist import build_deck, crosspoint_nodes, input_node, output_node
from amc.hw.runner import matrix_operating_points, session
from workflow.matrices import random_spd

SUPPLIES = ("vcc#branch", "vee#branch")


def _save_all(deck: str) -> str:
    return "\n".join(line for line in deck.splitlines() if not line.startswith(".save ")) + "\n"


def _ngspice_op(mapped, currents, config):
    """Plain ngspice: one deck and one .op for one right-hand side."""
    n = mapped.n
    ng = session()
    ng.load(build_deck(mapped, currents, config))
    try:
        raw = ng.run([output_node(j) for j in range(n)] + list(SUPPLIES))
    finally:
        ng.clean()
    return np.array([raw[output_node(j)][-1] for j in range(n)]), np.array([raw[s][-1] for s in SUPPLIES])


def _inputs(mapped, config, k, volts, seed):
    """k right-hand sides (A) whose largest output is about `volts`."""
    g = np.random.default_rng(seed).standard_normal((mapped.n, k))
    v = np.linalg.solve(mapped.effective_conductance(config.opamp.gain), g)
    return g * volts / np.max(np.abs(v), axis=0)


def _engine(mapped, currents, config, rtol=1e-9):
    n, o = mapped.n, config.opamp
    return matrix_operating_points(_save_all(build_deck(mapped, currents[:, 0], config)),
                                   [input_node(i) for i in range(n)], currents,
                                   [output_node(j) for j in range(n)], SUPPLIES,
                                   quiescent_a=o.quiescent_current_a, v_sat=o.v_sat,
                                   sharpness=o.saturation_sharpness, rtol=rtol)


# (preset, overrides, n, largest output in volts): amplitudes where the limiter is linear to 1e-9 (the low-gain
# rram-fast op-amp bends earlier; test_limiter_error_estimate_* covers the region beyond).
CASES = {
    "ideal-n2": ("ideal", {}, 2, 1.0),
    "ideal-n16": ("ideal", {}, 16, 1.0),
    "rram-n12": ("rram", {}, 12, 1.0),
    "rram-fast-n8": ("rram-fast", {}, 8, 0.3),
    "finite-gain-n10": ("ideal", {"opamp.gain": 1e3}, 10, 1.0),
    "opamp-inverters-n8": ("ideal", {"opamp.gain": 1e4, "inverter.kind": "opamp"}, 8, 1.0),
    "rram-opamp-inverters-n6": ("rram", {"inverter.kind": "opamp"}, 6, 1.0),
    "wires-0.5-n6": ("ideal", {"wires.row_ohm": 0.5, "wires.col_ohm": 0.5}, 6, 1.0),
    "wires-5-n8": ("rram", {"wires.row_ohm": 5.0, "wires.col_ohm": 5.0}, 8, 1.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_equals_ngspice_op_for_every_rhs(case):
    preset, overrides, n, volts = CASES[case]
    config = CircuitConfig.preset(preset).replace(**overrides) if overrides else CircuitConfig.preset(preset)
    mapped = map_matrix(random_spd(n, seed=n), config.device)
    currents = _inputs(mapped, config, 3, volts, seed=n + 1)
    result = _engine(mapped, currents, config)
    assert result.verification.passed and result.accepted.all(), (case, result.limiter_error)
    for c in range(3):
        v, supply = _ngspice_op(mapped, currents[:, c], config)
        assert np.max(np.abs(result.outputs[:, c] - v)) <= 1e-9 * np.max(np.abs(v)), case
        for s, name in enumerate(SUPPLIES):
            assert abs(result.supply[name][c] - supply[s]) <= 1e-9 * abs(supply[s]) + 1e-18, (case, name)


@pytest.mark.slow
@pytest.mark.parametrize("n", [64, 128])
def test_engine_equals_ngspice_at_the_top_sizes(n):
    config = CircuitConfig.preset("ideal")
    mapped = map_matrix(random_spd(n, seed=n), config.device)
    currents = _inputs(mapped, config, n, 1.0, seed=3)
    result = _engine(mapped, currents, config)
    assert result.accepted.all()
    c = n - 1  # a column ngspice did not solve for the engine
    v, supply = _ngspice_op(mapped, currents[:, c], config)
    assert np.max(np.abs(result.outputs[:, c] - v)) <= 1e-9 * np.max(np.abs(v))
    assert abs(result.supply["vcc#branch"][c] - supply[0]) <= 1e-9 * abs(supply[0])


def test_limiter_error_estimate_predicts_the_difference_to_ngspice():
    """Near the swing the limiter bends: the engine says so per column, and its estimate is the real error."""
    config = CircuitConfig.preset("rram-fast")
    mapped = map_matrix(random_spd(8, seed=1), config.device)
    currents = _inputs(mapped, config, 4, 2.0, seed=2)
    result = _engine(mapped, currents, config)
    assert not result.accepted.all()
    for c in np.flatnonzero(~result.accepted):
        v, _ = _ngspice_op(mapped, currents[:, c], config)
        error = np.max(np.abs(result.outputs[:, c] - v)) / np.max(np.abs(result.outputs[:, c]))
        assert 0.5 < error / result.limiter_error[c] < 2.0


@pytest.mark.parametrize("wires", [0.0, 2.0])
def test_perturbed_read_equals_ngspice_on_the_perturbed_deck(wires):
    """Read noise as delta stamps on ngspice's matrix, re-factored, against a deck with the same resistors."""
    n = 10
    config = CircuitConfig.preset("rram").replace(**{"wires.row_ohm": wires, "wires.col_ohm": wires})
    mapped = map_matrix(random_spd(n, seed=4), config.device)
    currents = _inputs(mapped, config, 1, 1.0, seed=5)[:, 0]
    system = session().circuit_matrix(_save_all(build_deck(mapped, currents, config)))
    assert system.verify(1e-9).passed
    noisy = mapped.with_read_noise(0.05, np.random.default_rng(6), config.device)
    a_pos, b_pos, a_neg, b_neg = crosspoint_nodes(n, config.wires.enabled)
    perturbed = system.with_conductances(np.concatenate([a_pos.ravel(), a_neg.ravel()]),
                                         np.concatenate([b_pos.ravel(), b_neg.ravel()]),
                                         np.concatenate([(noisy.g_pos - mapped.g_pos).ravel(),
                                                         (noisy.g_neg - mapped.g_neg).ravel()]))
    x = perturbed.solve(perturbed.rhs)
    v_engine = x[[perturbed.equation(output_node(j)) for j in range(n)]]
    v_ngspice, _ = _ngspice_op(noisy, currents, config)
    assert np.max(np.abs(v_engine - v_ngspice)) <= 1e-9 * np.max(np.abs(v_ngspice))
    v_nominal, _ = _ngspice_op(mapped, currents, config)
    assert np.max(np.abs(v_nominal - v_ngspice)) > 1e-4 * np.max(np.abs(v_ngspice))  # the noise is really there


def test_solver_uses_the_engine_and_matches_plain_ngspice():
    n = 12
    h = random_spd(n, seed=7)
    g = np.random.default_rng(8).standard_normal((n, 5))
    engine = AnalogSolver("ideal")
    plain = AnalogSolver(CircuitConfig.preset("ideal").replace(**{"simulation.engine": "ngspice"}))
    a, b = engine.solve(h, g), plain.solve(h, g)
    assert engine.engine_stats["engine_rhs"] == 5 and a.engine_fallbacks == 0
    assert plain.engine_stats["calls"] == 0
    np.testing.assert_allclose(a.x, b.x, rtol=1e-9, atol=1e-12)
    # Power against one .op per column: the quasi-static batch interpolates the rails' |I| between time points.
    single = [plain.solve(h, g[:, c]).static_power_w for c in range(5)]
    np.testing.assert_allclose(a.static_power_w, single, rtol=1e-9)
    np.testing.assert_allclose(a.x, np.linalg.solve(h, g), rtol=1e-8, atol=1e-10)


def test_saturating_input_falls_back_to_ngspice_and_says_so(caplog):
    config = CircuitConfig.preset("rram").replace(**{"io.i0_a": 1e-3})  # far beyond the swing
    h = random_spd(6, seed=43)
    g = np.random.default_rng(44).standard_normal((6, 3))
    solver = AnalogSolver(config)
    with caplog.at_level(logging.INFO, logger="amc.engine"):
        solution = solver.solve(h, g)
    assert solution.saturated.any(axis=0).all()
    # column 0 is ngspice's own .op (saturated or not); the other two are handed back
    assert solution.engine_fallbacks == 2 and "engine fell back" in solution.summary()
    assert "linear region" in solver.engine_stats["last_fallback"]
    assert any("linear region" in record.getMessage() for record in caplog.records)
    plain = AnalogSolver(config.replace(**{"simulation.engine": "ngspice"})).solve(h, g)
    np.testing.assert_allclose(solution.x, plain.x, rtol=1e-9)


def test_failed_verification_falls_back_loudly(monkeypatch, caplog):
    from amc.hw import mna
    monkeypatch.setattr(mna.CircuitMatrix, "verify",
                        lambda self, rtol: mna.Verification(1.0, 0.0, rtol))
    h = random_spd(5, seed=9)
    g = np.random.default_rng(10).standard_normal((5, 2))
    solver = AnalogSolver("ideal")
    with caplog.at_level(logging.WARNING, logger="amc.engine"):
        solution = solver.solve(h, g)
    assert solution.engine_fallbacks == 2 and solver.engine_stats["engine_rhs"] == 0
    assert any("disagrees with its own .op" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(solution.x, np.linalg.solve(h, g), rtol=1e-8)


def test_config_field_is_validated():
    assert CircuitConfig.preset("rram").simulation.engine == "ngspice-matrix"
    with pytest.raises(ConfigError, match="simulation.engine must be one of"):
        CircuitConfig.preset("rram").replace(**{"simulation.engine": "spectre"})
    with pytest.raises(ConfigError, match="engine_rtol"):
        CircuitConfig.from_dict({"simulation": {"engine_rtol": 0.5}})


def test_matrix_dump_parsing_rejects_bad_exports():
    good = "Circuit Matrix\n2\treal\n1\t1\t2\n2\t2\t4\n1\t2\t-1\n0\t0\t0.0\n"
    m = parse_matrix(good)
    assert m.shape == (2, 2) and m[0, 1] == -1
    with pytest.raises(MatrixExportError):
        parse_matrix(good.replace("0\t0\t0.0\n", ""))
    with pytest.raises(MatrixExportError):
        parse_matrix("Circuit Matrix\n2\tcomplex\n0\t0\t0.0\n")
    with pytest.raises(MatrixExportError):
        parse_rhs("1\n2\n3\n", 2)
    system = CircuitMatrix(m, np.array([1.0, 2.0]), ["a", "b"], reference=np.array([0.6, 0.55]))
    assert system.verify(1e-9).passed is False
    with pytest.raises(MatrixExportError):
        system.equation("c")


def test_temporary_files_are_private_and_removed_even_with_spaces_in_the_path(monkeypatch):
    base = tempfile.mkdtemp(prefix="amc engine test ")
    try:
        monkeypatch.setattr(tempfile, "tempdir", base)
        config = CircuitConfig.preset("ideal")
        mapped = map_matrix(random_spd(4, seed=11), config.device)
        currents = _inputs(mapped, config, 2, 1.0, seed=12)
        assert _engine(mapped, currents, config).accepted.all()
        assert os.listdir(base) == []
    finally:
        os.rmdir(base)


MEMORY_SCRIPT = r"""
rng = np.random.default_rng(0)
a = rng.standard_normal((8, 8)); h = a @ a.T / 8 + np.eye(8)
solver = AnalogSolver('ideal')
for _ in range(50):
    solver.solve(h, rng.standard_normal((8, 2)))
start = rss_mb()
for i in range(1000):
    solver.solve(h + (i // 10) * 1e-4 * np.eye(8), rng.standard_normal((8, 2)))
print(rss_mb() - start, solver.engine_stats['engine_rhs'], solver.engine_stats['fallback_rhs'])
"""


@pytest.mark.slow
def test_memory_is_flat_over_two_thousand_engine_solves():
    from test_circuit_memory import measure
    out = measure(MEMORY_SCRIPT)
    growth, engine_rhs, fallback = float(out[0]), int(out[1]), int(out[2])
    assert engine_rhs >= 2100 and fallback == 0
    assert growth < 20, f"resident memory grew by {growth:.1f} MB over 2,000 engine solves"


def test_noisy_reads_are_stamps_on_ngspices_matrix():
    """With read noise each right-hand side is its own read: engine reads equal ngspice on each read's deck."""
    n, k = 8, 4
    config = CircuitConfig.preset("ideal").replace(**{"device.read_noise_sigma": 0.02})
    h = random_spd(n, seed=13)
    g = np.random.default_rng(14).standard_normal((n, k))
    engine = AnalogSolver(config)
    solution = engine.solve(h, g)
    assert engine.engine_stats["engine_rhs"] == k and solution.engine_fallbacks == 0
    # Same seed, same draws, in the same order: plain ngspice builds one deck per read.
    plain = AnalogSolver(config.replace(**{"simulation.engine": "ngspice"})).solve(h, g)
    np.testing.assert_allclose(solution.x, plain.x, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(solution.static_power_w, plain.static_power_w, rtol=1e-9)
    spread = np.linalg.norm(solution.x - np.linalg.solve(h, g)) / np.linalg.norm(np.linalg.solve(h, g))
    assert spread > 1e-4  # the reads really differ from the noiseless array
