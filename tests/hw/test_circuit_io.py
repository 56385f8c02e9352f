"""Decks, CLI, configs, bad input and the ngspice session's robustness."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from amc import (AnalogSolver, CircuitConfig, ConfigError, InputError, MappingError, SimulationError,
                 SingularMatrixError)
from amc.hw.runner import session
from workflow.matrices import random_spd

ROOT = Path(__file__).resolve().parents[2]
AMC = [sys.executable, "-m", "amc.cli"]


def _write_system(tmp_path, n=6, seed=0):
    h = random_spd(n, seed=seed)
    g = np.random.default_rng(seed + 1).standard_normal(n)
    np.save(tmp_path / "H.npy", h)
    np.save(tmp_path / "g.npy", g)
    return h, g


def _header_number(text, name):
    return float(re.search(rf"{re.escape(name)} = ([-+0-9.eE]+)", text).group(1))


def test_deck_from_cli_travels_and_its_header_turns_v_back_into_x(tmp_path):
    """A deck copied into a directory with a space in its path runs with `ngspice -b`, and x follows from its
    header alone (G0, I0, max|g|), with wires on."""
    h, g = _write_system(tmp_path, n=6)
    g = g * 3.7  # max|g| != 1, so a header without it gives the wrong x
    np.save(tmp_path / "g.npy", g)
    deck = tmp_path / "out.cir"
    wires = ["--set", "wires.row_ohm=2", "--set", "wires.col_ohm=2"]
    subprocess.run(AMC + ["netlist", "--matrix", str(tmp_path / "H.npy"), "--rhs", str(tmp_path / "g.npy"),
                          "--preset", "ideal", *wires, "-o", str(deck)], check=True, cwd=ROOT, capture_output=True)
    text = deck.read_text()
    assert ".include" not in text and ".subckt amc_opamp " in text
    assert "wire grid" in text and "rp_i_j = 1/G+_ij (row i to out_j)" not in text  # the comment matches the wires
    away = tmp_path / "another machine" / "deck dir"
    away.mkdir(parents=True)
    (away / "out.cir").write_text(text)
    run = subprocess.run(["ngspice", "-b", "out.cir"], capture_output=True, text=True, cwd=away)
    assert run.returncode == 0, run.stdout + run.stderr
    volts = {m.group(1): float(m.group(2)) for m in re.finditer(r"^v\((out_\d+)\) = (\S+)$", run.stdout, re.M)}
    assert len(volts) == 6 and len(run.stdout.splitlines()) < 40   # the outputs and x, not every node and device
    g0, i0, gmax = (_header_number(text, k) for k in ("G0", "I0 = max|I|", "max|g|"))
    x_deck = -np.array([volts[f"out_{j}"] for j in range(6)]) * g0 / i0 * gmax
    config = CircuitConfig.preset("ideal").replace(**{"wires.row_ohm": 2, "wires.col_ohm": 2})
    x_solver = AnalogSolver(config).solve(h, g).x
    np.testing.assert_allclose(x_deck, x_solver, rtol=1e-9)         # the deck prints 12 digits
    printed_x = [float(v) for v in re.findall(r"^x_\d+ = (\S+)$", run.stdout, re.M)]
    np.testing.assert_allclose(printed_x, x_solver, rtol=1e-9)      # ngspice itself turns V back into x
    (away / "ngspice.out").write_text(run.stdout)
    back = subprocess.run(AMC + ["readback", str(away / "out.cir"), str(away / "ngspice.out"), "--json"],
                          cwd=ROOT, capture_output=True, text=True)
    assert back.returncode == 0, back.stderr
    np.testing.assert_allclose(json.loads(back.stdout)["x"], x_solver, rtol=1e-9)


@pytest.mark.slow
def test_transient_deck_prints_every_output(tmp_path):
    _write_system(tmp_path, n=12)
    deck = tmp_path / "tran.cir"
    subprocess.run(AMC + ["netlist", "--matrix", str(tmp_path / "H.npy"), "--rhs", str(tmp_path / "g.npy"),
                          "--preset", "ideal-dynamic", "--set", "simulation.tran_points=50", "--transient",
                          "-o", str(deck)], check=True, cwd=ROOT, capture_output=True)
    run = subprocess.run(["ngspice", "-b", deck.name], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    printed = set(re.findall(r"v\((out_\d+)\)", run.stdout))
    assert printed == {f"out_{j}" for j in range(12)}


def test_package_model_library_matches_the_users_copy():
    from amc.hw.netlist import LIBRARY_PATH
    assert LIBRARY_PATH.read_text() == (ROOT / "netlists" / "amc_opamps.lib").read_text()


@pytest.mark.parametrize("example", sorted((ROOT / "netlists" / "examples").glob("*.cir")))
def test_shipped_example_decks_run_in_ngspice(example):
    run = subprocess.run(["ngspice", "-b", example.name], capture_output=True, text=True, cwd=example.parent)
    assert run.returncode == 0 and "error" not in (run.stdout + run.stderr).lower(), run.stdout[-2000:] + run.stderr[-2000:]
    if ".control" in example.read_text():      # .op decks print the outputs and x, compactly
        expected = [float(v) for v in re.search(r"expected x = H\^-1 g = (.+)", example.read_text()).group(1).split()]
        printed = [float(v) for v in re.findall(r"^x_\d+ = (\S+)$", run.stdout, re.M)]
        assert len(printed) == len(expected) and len(run.stdout.splitlines()) < 60
        if "preset ideal" in example.read_text():
            np.testing.assert_allclose(printed, expected, rtol=1e-5)


def test_cli_solve_json_with_matrix_market(tmp_path):
    h, g = _write_system(tmp_path, n=5)
    scipy.io.mmwrite(str(tmp_path / "H.mtx"), h)
    out = subprocess.run(AMC + ["solve", "--matrix", str(tmp_path / "H.mtx"), "--rhs", str(tmp_path / "g.npy"),
                                "--preset", "ideal-dynamic", "--transient", "--json"],
                         check=True, cwd=ROOT, capture_output=True, text=True).stdout
    record = json.loads(out)
    for key in ("x", "relative_residual", "saturated", "static_power_w", "settling_time_s", "energy_j"):
        assert key in record
    np.testing.assert_allclose(record["x"], np.linalg.solve(h, g), rtol=1e-4)
    assert record["settling_time_s"] > 0 and record["energy_j"] > 0


def test_cli_reports_bad_input_in_one_line(tmp_path):
    np.save(tmp_path / "H.npy", np.ones((3, 4)))
    np.save(tmp_path / "g.npy", np.ones(3))
    run = subprocess.run(AMC + ["solve", "--matrix", str(tmp_path / "H.npy"), "--rhs", str(tmp_path / "g.npy")],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2
    assert "H must be square" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("h, g, error, message", [
    (np.ones((2, 3)), np.ones(2), InputError, "square"),
    (np.zeros((0, 0)), np.ones(0), InputError, "empty"),
    (np.eye(3), np.ones(4), InputError, "shape"),
    (np.eye(3), np.ones((3, 2, 1)), InputError, "shape"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), np.ones(2), InputError, "NaN"),
    (np.eye(2), np.array([1.0, np.inf]), InputError, "non-finite"),
    (np.array([[1.0, 2.0], [2.0, 4.0]]), np.ones(2), SingularMatrixError, "singular"),
    (np.diag([1.0, 1e-4]), np.ones(2), MappingError, "loses rank"),
    (np.eye(2) * (1 + 1j), np.ones(2), InputError, "H is complex"),
    (np.eye(2), np.array([1.0, 1j]), InputError, "g is complex"),
    (np.eye(2).astype(object) + 0.5j, np.ones(2), InputError, "H .*complex"),
])
def test_bad_input_is_refused_and_session_stays_usable(h, g, error, message):
    with pytest.raises(error, match=message):
        AnalogSolver("rram").solve(h, g)
    hh = random_spd(4, seed=1)
    assert AnalogSolver("ideal").solve(hh, np.ones(4)).error_against(np.linalg.solve(hh, np.ones(4))) < 1e-9


def _ngspice_parse_failure_deck():
    # With an .include, the undefined subcircuit reaches ngspice's own parser (no pre-check can rule it out).
    from amc.hw.netlist import LIBRARY_PATH
    return f"* broken\n.include {LIBRARY_PATH}\nr1 a 0 1k\nxq a b undefined_subckt\n.op\n.end\n"


def test_ngspice_parse_failure_carries_ngspice_lines_and_session_recovers():
    with pytest.raises(SimulationError) as info:
        session().load(_ngspice_parse_failure_deck())
    assert info.value.ngspice_output and "ngspice" in str(info.value)
    hh = random_spd(3, seed=2)
    assert AnalogSolver("ideal").solve(hh, np.ones(3)).relative_residual < 1e-9


FAILURES_SCRIPT = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from amc import AnalogSolver, SimulationError
from amc.hw.runner import session
from test_circuit_io import _ngspice_parse_failure_deck
def rss_kb():
    return int(open('/proc/self/statm').read().split()[1]) * 4
h = np.diag([2.0, 3.0, 4.0])
s = session()
ngspice_deck = _ngspice_parse_failure_deck()
caught_deck = "* broken\nr1 a 0 1k\nxq a b undefined_subckt\n.op\n.end\n"
analysis_deck = "* singular\nv1 a 0 1\nr1 a 0 1k\nr2 b c 1k\n.op\n.end\n"
def fail(deck, run=False):
    try:
        s.load(deck)
        s.run(["v(a)"])
    except SimulationError:
        return
    raise AssertionError("expected a failure")
for i in range(610):  # the control stack of ngspice is 256 deep
    fail(ngspice_deck)
x = AnalogSolver("ideal").solve(h, np.ones(3)).x
assert np.allclose(x, 1 / np.diag(h)), x
growth = []
for deck in (caught_deck, analysis_deck):
    for i in range(100):
        fail(deck)
    start = rss_kb()
    for i in range(1000):
        fail(deck)
    growth.append(rss_kb() - start)
print(*growth)
"""


@pytest.mark.slow
def test_session_survives_600_parse_failures_and_failures_do_not_grow_memory():
    out = subprocess.run([sys.executable, "-c", FAILURES_SCRIPT, str(Path(__file__).parent)], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    parse_kb, analysis_kb = map(int, out.stdout.split())
    # 1,000 failures each; the old paths leaked 2-10 KB per failure (2-10 MB here). Allow allocator noise.
    assert parse_kb < 400 and analysis_kb < 400, (parse_kb, analysis_kb)


def test_missing_ngspice_library_gives_install_hint():
    code = ("from amc import AnalogSolver\nimport numpy as np\n"
            "try:\n    AnalogSolver('ideal').solve(np.eye(2), np.ones(2))\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    env = dict(os.environ, NGSPICE_LIBRARY_PATH="/nonexistent/libngspice.so")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT).stdout
    assert out.startswith("NgspiceUnavailableError") and "make install" in out


def test_transient_needs_a_finite_bandwidth():
    with pytest.raises(ConfigError, match="gain-bandwidth"):
        AnalogSolver("ideal").solve(np.eye(2) * 2, np.ones(2), transient=True)


def test_config_rejects_unknown_and_misspelt_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("device:\n  levles: 8\n")
    with pytest.raises(ConfigError, match="levles"):
        CircuitConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match="opamps"):
        CircuitConfig.from_dict({"opamps": {}})
    with pytest.raises(ConfigError, match="levels"):
        CircuitConfig.from_dict({"device": {"levels": 1}})
    with pytest.raises(ConfigError, match="g_max"):
        CircuitConfig.from_dict({"device": {"g_min": 1e-5, "g_max": 1e-6}})
    with pytest.raises(ConfigError, match="unknown circuit preset"):
        CircuitConfig.preset("nope")


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "circuits").glob("*.yaml")))
def test_shipped_circuit_configs_load(path):
    config = CircuitConfig.from_yaml(path)
    assert config.name == path.stem


def test_preset_figures_are_the_datasheet_ones():
    ad823, opa690 = CircuitConfig.preset("rram").opamp, CircuitConfig.preset("rram-fast").opamp
    assert ad823.gbw_hz == 16e6 and ad823.quiescent_current_a == 2.6e-3
    assert opa690.gbw_hz == 500e6 and opa690.v_sat == 4.0 and opa690.quiescent_current_a == 5.5e-3
    assert CircuitConfig.preset("ideal").opamp.gain == 1e12


def test_autoranging_rescales_and_reports_when_the_guess_saturates():
    h = random_spd(8, seed=4)
    g = np.random.default_rng(5).standard_normal(8)
    config = CircuitConfig.preset("rram").replace(**{"device.levels": None, "io.i0_a": 1e-3, "inverter.kind": "ideal"})
    fixed = AnalogSolver(config).solve(h, g)  # fixed I0 far too large: outputs pinned at the rails
    assert fixed.saturated_any and fixed.rescales == 0
    auto = AnalogSolver(config.replace(**{"io.i0_a": None})).solve(h, g)
    assert not auto.saturated_any and auto.error_against(np.linalg.solve(h, g)) < 1e-3
    ranging = AnalogSolver(config.replace(**{"io.i0_a": None, "io.max_rescales": 4}))
    ranging.array.readout.initial_i0 = lambda mapped, col: 1e-3  # force a saturated first pass
    rescued = ranging.solve(h, g)
    assert rescued.rescales >= 1 and not rescued.saturated_any


def test_programming_error_is_seeded_and_read_noise_varies_per_solve():
    h = random_spd(6, seed=6)
    g = np.ones(6)
    cfg = CircuitConfig.preset("rram").replace(**{"device.program_sigma": 0.05})
    a, b = AnalogSolver(cfg).solve(h, g).x, AnalogSolver(cfg).solve(h, g).x
    np.testing.assert_array_equal(a, b)
    noisy = AnalogSolver(cfg.replace(**{"device.read_noise_sigma": 0.02}))
    assert noisy.per_solve_noise
    assert not np.allclose(noisy.solve(h, g).x, noisy.solve(h, g).x)


def test_ngspice_convergence_failure_carries_its_lines_and_session_recovers():
    """A node with no DC path (capacitors only): .op fails after gmin and source stepping, whatever the title says."""
    deck = ("* error singular matrix in the title must not count as a failure\n"
            "v1 a 0 DC 5\nr1 a b 1k\nc1 b c 1n\nr2 c d 1k\nc2 d 0 1n\n.op\n.end\n")
    ng = session()
    ng.load(deck)  # the title alone is not a parse failure
    with pytest.raises(SimulationError, match="ngspice analysis failed") as info:
        ng.run(["b"])
    assert any("gmin" in line.lower() for line in info.value.ngspice_output)
    ng.clean()
    hh = random_spd(3, seed=3)
    assert AnalogSolver("ideal").solve(hh, np.ones(3)).relative_residual < 1e-9


def _spd_with_spectrum(n, low, high, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return (q * np.linspace(low, high, n)) @ q.T


def test_spd_matrix_made_indefinite_by_quantisation_gets_the_right_cause_and_remedies():
    from amc import UnstableCircuitError
    with pytest.raises(UnstableCircuitError) as info:
        AnalogSolver("rram").solve(_spd_with_spectrum(64, 1, 10, 0), np.ones(64))
    message = str(info.value)
    assert "although H is symmetric positive-definite" in message and "lost positive definiteness" in message
    assert "8 conductance levels" in message
    for remedy in ("device.levels", "io.equilibrate", "diagonal shift", "hpinv-pcg", "blockamc"):
        assert remedy in message
    assert "solve a symmetric positive-definite system" not in message


def test_a_large_error_that_passes_warns_with_its_cause():
    from amc import AccuracyWarning
    from amc.hw import mapping
    mapping._ACCURACY_WARNED.clear()  # once per size and device setting in a process
    h = _spd_with_spectrum(16, 1, 10, 1)
    g = np.random.default_rng(2).standard_normal(16)
    with pytest.warns(AccuracyWarning, match="8 conductance levels") as caught:
        solution = AnalogSolver("rram").solve(h, g)
    assert solution.error_against(np.linalg.solve(h, g)) > 0.1 and len(caught) == 1
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccuracyWarning)  # an accurate solve stays quiet
        AnalogSolver("ideal").solve(h, g)


def test_a_deck_that_breaks_libngspice_for_good_gives_a_clear_error_not_a_crash():
    """An undefined parameter leaves libngspice unable to parse again ("awaits to be detached"; the next parse
    double-frees and aborts the process): the session refuses further decks with a clear message instead."""
    code = ("import numpy as np\nfrom amc import AnalogSolver, SimulationError\nfrom amc.hw.runner import session\n"
            "try:\n    session().load('* broken\\nr1 a 0 {1/unknownparam}\\n.op\\n.end\\n')\n"
            "except SimulationError as e:\n    print('first', str(e).splitlines()[0])\n"
            "try:\n    AnalogSolver('ideal').solve(np.eye(2) * 2, np.ones(2))\n"
            "except SimulationError as e:\n    print('then', e)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "first ngspice could not parse the deck" in run.stdout
    assert "then the ngspice library cannot recover" in run.stdout and "start a new process" in run.stdout
