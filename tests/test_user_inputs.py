"""Nothing a user writes is ignored: each input that was silently dropped or mislabelled is honoured or refused,
each traceback is one line with exit code 2, and `amc cost study` reads what the engine writes."""
import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from amc import CircuitConfig, ConfigError, MethodSolver, solve_system
from amc.config import DeviceConfig
from amc.methods.config import MethodConfig
from amc.cli import main as amc_main
from workflow.matrices import random_spd

ROOT = Path(__file__).resolve().parents[1]


def amc(capsys, *argv):
    """Run `amc ARGV` in this process: (exit code, stdout, stderr)."""
    rc = amc_main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def refused(capsys, *argv, says: str):
    rc, out, err = amc(capsys, *argv)
    assert rc == 2, (out, err)
    assert says in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 or err.startswith("usage"), err
    return err


@pytest.fixture
def system(tmp_path):
    h = random_spd(6, seed=0)
    g = np.random.default_rng(1).standard_normal(6)
    np.save(tmp_path / "H.npy", h)
    np.save(tmp_path / "g.npy", g)
    return h, g, tmp_path / "H.npy", tmp_path / "g.npy"


def solve_json(capsys, m, r, *extra):
    rc, out, err = amc(capsys, "solve", "--matrix", m, "--rhs", r, "--json", *extra)
    assert rc == 0, err
    return json.loads(out)


# ---- amc solve: the direct path honours the method fields, as the Python API does -------------------------
@pytest.mark.parametrize("flags, method", [
    (["--shift", "0.5"], {"name": "direct", "shift": 0.5}),
    (["--shift", "auto"], {"name": "direct", "shift": "auto"}),
    (["--equilibrate", "true"], {"name": "direct", "equilibrate": True}),
    (["--shift", "1e-3"], {"name": "direct", "shift": 1e-3}),
])
def test_solve_direct_applies_method_fields_like_the_api(capsys, system, flags, method):
    h, g, m, r = system
    plain = solve_json(capsys, m, r)["x"]
    x = solve_json(capsys, m, r, *flags)["x"]
    api = solve_system(h, g, method=method, config="rram").x
    np.testing.assert_allclose(x, api, rtol=1e-12, atol=1e-15)     # the same code path as the API
    assert not np.allclose(x, plain, rtol=1e-9)                      # and not the unshifted answer


def test_shift_on_an_indefinite_matrix_reports_the_shifted_array(capsys, tmp_path):
    h = np.diag([1.0, 1.0, -0.4, 1.0]) + 0.05
    np.save(tmp_path / "H.npy", h)
    np.save(tmp_path / "g.npy", np.ones(4))
    rec = solve_json(capsys, tmp_path / "H.npy", tmp_path / "g.npy", "--preset", "ideal", "--shift", "10")
    assert rec["lambda_min"] > 0          # what the array holds: H + 10 diag|H| is positive definite


def test_exponent_notation_is_a_number_for_shift():
    assert MethodConfig.from_spec(yaml.safe_load("{name: direct, shift: 1e-3}")).shift == pytest.approx(1e-3)
    assert MethodConfig.from_spec({"name": "direct", "shift": "2.5E+1"}).shift == 25.0
    with pytest.raises(ConfigError, match="shift must be"):
        MethodConfig.from_spec({"name": "direct", "shift": "-1e-3"})


def test_numpy_backend_does_not_wear_a_method_label(capsys, system):
    h, g, m, r = system
    refused(capsys, "solve", "--matrix", m, "--rhs", r, "--backend", "numpy", "--method", "hpinv-pcg",
            "--iterations", "3", says="--backend numpy solves exactly")
    refused(capsys, "solve", "--matrix", m, "--rhs", r, "--backend", "numpy", "--shift", "0.5",
            says="--shift would not be applied")
    sol = MethodSolver("rram", method="hpinv-pcg", backend="numpy", iterations=3).solve(h, g)
    assert sol.method == "numpy" and not sol.history


def test_drift_needs_its_clock_and_then_acts(capsys, system):
    h, g, m, r = system
    refused(capsys, "solve", "--matrix", m, "--rhs", r, "--set", "device.drift_nu=0.05",
            says="--seconds-since-programming")
    refused(capsys, "solve", "--matrix", m, "--rhs", r, "--seconds-since-programming", "100",
            says="needs conductance drift")
    at = {}
    for t in ("2", "1e6"):
        at[t] = solve_json(capsys, m, r, "--preset", "ideal", "--set", "device.drift_nu=0.05", "--operators",
                           "extracted", "--seconds-since-programming", t)["x"]
    # ideal cells, nu = 0.05 each: G(t) = G(t0) t^-0.05, so x grows by t^0.05 (to the op-amp gain's precision)
    np.testing.assert_allclose(np.array(at["1e6"]) / np.array(at["2"]), (1e6 / 2) ** 0.05, rtol=1e-6)
    with pytest.raises(ConfigError, match="drift"):
        from amc import AnalogSolver
        AnalogSolver(CircuitConfig.preset("rram").replace(**{"device.drift_nu": 0.05}))


@pytest.mark.parametrize("key, value, says", [
    ("device.read_noise_sigma", 1e6, "must be below 1"),
    ("device.program_sigma", 1.5, "must be below 1"),
    ("io.i0_a", 1e-320, "between 1e-15 A and 1 A"),
    ("opamp.gain", 1e-320, "at least 1"),
])
def test_absurd_device_values_are_refused(capsys, system, key, value, says):
    h, g, m, r = system
    with pytest.raises(ConfigError, match=says):
        CircuitConfig.preset("rram").replace(**{key: value})
    refused(capsys, "solve", "--matrix", m, "--rhs", r, "--set", f"{key}={value}", says=says)


# ---- amc cost: every flag checked before any work ---------------------------------------------------------
@pytest.mark.parametrize("argv, says", [
    (["cost", "circuit", "--matrix", "H.npy", "--n", "4"], "give one or the other"),
    (["cost", "circuit", "--matrix", "H.npy", "--lambda-min", "0.1"], "give one or the other"),
    (["cost", "circuit", "--n", "64", "--lambda-min", "inf"], "--lambda-min must be a finite positive"),
    (["cost", "solve", "--array-size", "0"], "--array-size must be"),
    (["cost", "training", "configs/train/synthetic-kfac.yaml", "--channels", "0"], "--channels must be"),
    (["cost", "training", "configs/train/synthetic-kfac.yaml", "--classes", "0"], "--classes must be"),
    (["cost", "training", "configs/train/synthetic-kfac.yaml", "--pool", "7"], "does not divide"),
    (["cost", "network", "resnet18", "--array-size", "0"], "--array-size must be"),
    (["cost", "network", "cnn4", "--repeats", "0"], "--repeats must be"),
    (["cost", "solve", "--figure", "x.txt"], "must end in .png"),
    (["cost", "circuit", "--matrix", "H.npy", "--rhs", "g7.npy"], "shape"),
    (["cost", "study", "H.npy"], "not a directory"),
])
def test_cost_flags_are_checked_at_once(capsys, system, monkeypatch, argv, says):
    h, g, m, r = system
    np.save(m.parent / "g7.npy", np.ones(7))
    monkeypatch.chdir(ROOT)
    argv = [str(m.parent / a) if a.endswith(".npy") else a for a in argv]
    start = time.perf_counter()
    refused(capsys, *argv, says=says)
    assert time.perf_counter() - start < 10          # refused before the CPU timing, not after 77 s


# ---- amc cost study reads what the engine writes ----------------------------------------------------------
def test_cost_study_prices_engine_written_direct_hpinv_and_blockamc_points(capsys, tmp_path):
    from workflow.engine import run_sweep
    from workflow.spec import build_sweep
    sweep = build_sweep({"name": "mixed", "kind": "circuit",
                         "base": {"circuit": "rram", "matrix": {"n": 8, "kind": "spd", "condition": 5, "seed": 0}},
                         "points": [{"solve.method": "direct"},
                                    {"solve.method": "hpinv-pcg", "solve.iterations": 2},
                                    {"solve.method": "blockamc", "solve.array_size": 4, "circuit.preset": "ideal"}]},
                        source="test")
    out = tmp_path / "mixed"
    report = run_sweep(sweep, out, executor="serial", progress=False, plot=False)
    assert report.ok == 3
    rc, text, err = amc(capsys, "cost", "study", out, "--json")
    assert rc == 0, err
    priced = {r["id"]: r for r in json.loads(text)["records"]}
    records = {json.loads(l)["id"]: json.loads(l) for l in (out / "records.jsonl").read_text().splitlines()}
    assert len(priced) == 3
    for rid, rec in records.items():
        m = rec["metrics"]
        cost = priced[rid]
        # the counts the engine wrote are the counts priced: one programming write-verify per array pair
        assert cost["array_n"] == m["ops_array_n"] == (4 if "blockamc" in json.dumps(rec["params"]) else 8)
        assert cost["cost"]["energy_j"] > 0 and cost["cost"]["breakdown"]["programming"] > 0
        assert m["ops_programmings"] >= 1 and m["ops_inv_settles"] >= 1
    direct = next(r for r in records.values() if r["params"].get("solve.method") == "direct")
    assert priced[direct["id"]]["lambda_min_measured"] and direct["metrics"]["ops_inv_settles"] == 1


@pytest.mark.slow
def test_cost_study_prices_an_engine_written_training_study(capsys, tmp_path):
    from workflow.engine import run_sweep
    from workflow.spec import build_sweep
    training = {"data": {"source": "synthetic-letters", "n_classes": 4, "n_train": 64, "n_test": 32},
                "model": {"channels": 2, "pool": 4},
                "optimizer": {"name": "kfac", "inverse_every": 2, "max_block": 16,
                              "solver": {"backend": "circuit", "method": {"name": "direct", "equilibrate": True}}},
                "train": {"epochs": 0.5, "batch_size": 16, "evals_per_epoch": 1, "train_eval_size": 16}}
    sweep = build_sweep({"name": "tiny", "kind": "training", "base": {"circuit": {"preset": "rram",
                         "device": {"levels": 16}}, "training": training},
                         "points": [{"seed": 0}, {"seed": 1, "training.optimizer.solver.backend": "numpy",
                                                  "training.optimizer.solver.method": "direct"}]}, source="test")
    out = tmp_path / "tiny"
    assert run_sweep(sweep, out, executor="serial", progress=False, plot=False).ok == 2
    rc, text, err = amc(capsys, "cost", "study", out, "--json")
    assert rc == 0, err
    data = json.loads(text)
    assert len(data["records"]) == 1 and data["skipped"]["no analog operations"] == 1   # the exact run
    circuit = next(json.loads(l) for l in (out / "records.jsonl").read_text().splitlines()
                   if json.loads(l)["metrics"].get("hw_method"))
    assert circuit["metrics"]["ops_programmings"] == circuit["metrics"]["hw_programmings"] > 0
    assert data["records"][0]["array_n"] == circuit["metrics"]["ops_array_n"] <= 16


def test_cost_study_refuses_damaged_and_foreign_records(capsys, tmp_path):
    (tmp_path / "records.jsonl").write_text('{"id": "a", "status": "ok", "metrics": {}}\nnot json\n{"id": "b"}\n')
    refused(capsys, "cost", "study", tmp_path, says="line 2: not a JSON record")
    (tmp_path / "records.jsonl").write_text('{"id": "a", "status": "ok", "metrics": {"ops_programmings": 1}}\n')
    refused(capsys, "cost", "study", tmp_path, says="operation counts incomplete")
    (tmp_path / "records.jsonl").write_text('[1, 2]\n')
    refused(capsys, "cost", "study", tmp_path, says="not a study record")


# ---- the sweep store, YAML and names --------------------------------------------------------------------------
def test_a_damaged_line_in_the_store_stops_a_resume_and_is_kept(capsys, tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("name: s\nkind: circuit\nbase: {circuit: ideal, matrix: {n: 4, kind: spd, condition: 5}}\n"
                     "grid: {matrix.seed: [0, 1]}\n")
    out = tmp_path / "out"
    rc, _, err = amc(capsys, "sweep", sweep, "--out", out, "--workers", "1", "--no-plots", "--no-progress",
                     "--executor", "serial")
    assert rc == 0, err
    lines = (out / "records.jsonl").read_text().splitlines()
    damaged = "\n".join([lines[0], "\x00garbage\x7f", lines[1]]) + "\n"
    (out / "records.jsonl").write_text(damaged)
    refused(capsys, "sweep", sweep, "--out", out, "--executor", "serial", "--no-progress", says="line 2")
    assert (out / "records.jsonl").read_text() == damaged               # nothing was changed
    refused(capsys, "plot", out, says="line 2")


def test_yaml_duplicate_keys_and_non_string_names_are_refused(tmp_path):
    from workflow.spec import load_sweep
    path = tmp_path / "c.yaml"
    path.write_text("preset: rram\ndevice:\n  levels: 8\n  levels: 16\n")
    with pytest.raises(ConfigError, match="'levels' appears twice"):
        CircuitConfig.from_yaml(path)
    path.write_text("name: [a, b]\npreset: rram\n")
    with pytest.raises(ConfigError, match="name must be a string"):
        CircuitConfig.from_yaml(path)
    sweep = tmp_path / "s.yaml"
    sweep.write_text("name: [a, b]\nkind: circuit\nbase: {circuit: ideal, matrix: {n: 4}}\ngrid: {matrix.seed: [0]}\n")
    with pytest.raises(ConfigError, match="name must be a string"):
        load_sweep(sweep)


def test_figure_conditions_do_not_state_a_value_some_points_override():
    from workflow.plots import conditions
    meta = {"name": "sim", "spec": {"base": {"circuit": {"preset": "rram", "device": {"levels": 8}}}}}
    records = [{"params": {"device.levels": 16, "seed": 0}}, {"params": {"seed": 0}}]
    assert "levels = 8" not in conditions(meta, records)
    assert "levels = 8" in conditions(meta, [{"params": {"seed": 0}}])     # still stated when nobody overrides it


# ---- tracebacks that became one line -------------------------------------------------------------------------
def test_python_api_type_errors_are_config_errors():
    with pytest.raises(ConfigError, match="a method is a preset"):
        solve_system(np.eye(2), np.ones(2), method=5)
    with pytest.raises(ConfigError, match="CircuitConfig.preset"):
        CircuitConfig(device="rram")
    config = CircuitConfig(device=DeviceConfig(levels=np.int64(8)))
    assert config.device.levels == 8 and type(config.device.levels) is int


def test_method_5_in_sweep_and_train_yaml_is_one_line(capsys, tmp_path):
    sweep = tmp_path / "m5.yaml"
    sweep.write_text("name: m5\nkind: circuit\nbase: {circuit: rram, matrix: {n: 4}, solve: {method: 5}}\n"
                     "grid: {matrix.seed: [0]}\n")
    refused(capsys, "sweep", sweep, "--dry-run", says="a method is a preset")
    rc, out, err = amc(capsys, "train", ROOT / "configs/train/synthetic-kfac.yaml", "--set",
                       "optimizer.solver.backend=circuit", "--set", "optimizer.solver.method=5")
    assert rc == 2 and "a method is a preset" in err and "Traceback" not in err


def test_errors_name_their_real_cause(capsys, tmp_path, system):
    h, g, m, r = system
    refused(capsys, "solve", "--matrix", tmp_path, "--rhs", r, says="is a directory")
    sweep = tmp_path / "b.yaml"
    sweep.write_text("name: b\nkind: circuit\nbase: {circuit: {preset: rram, device: {levels: 1}}, "
                     "matrix: {n: 4}}\ngrid: {opamp.gain: [1e4, 1e5]}\n")
    err = refused(capsys, "sweep", sweep, "--dry-run", says="base: device.levels")
    assert "opamp.gain" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "records.jsonl").write_bytes(b"\x89PNG not records")
    refused(capsys, "plot", empty, "--x", "matrix.n", "--y", "relative_error", says="no complete record")


def test_solve_json_cost_names_its_hardware_model(capsys, system):
    h, g, m, r = system
    rec = solve_json(capsys, m, r, "--preset", "rram-ic")
    assert rec["cost"]["hardware_model"].startswith("rram-ic: op-amp cmos-ic") and rec["cost"]["energy_j"] > 0
    rec = solve_json(capsys, m, r, "--preset", "ideal")
    assert "error" in rec["cost"] and "ideal" in rec["cost"]["hardware_model"]


@pytest.mark.slow
def test_train_runtime_errors_exit_2(capsys, tmp_path):
    argv = ["train", ROOT / "configs/train/synthetic-kfac.yaml", "--set", "train.max_steps=1", "--set",
            "data.n_train=64", "--set", "data.n_test=32", "--set", "data.n_classes=4", "--set",
            f"train.out_dir={tmp_path}", "--set", "train.progress=false"]
    rc, _, err = amc(capsys, *argv)
    assert rc == 0, err
    rc, _, err = amc(capsys, *argv, "--set", "model.channels=4")      # resume from another configuration
    assert rc == 2 and "written by a different configuration" in err and "Traceback" not in err
