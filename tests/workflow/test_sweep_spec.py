"""Grid expansion and strict validation of sweep files."""
from __future__ import annotations

import subprocess

import pytest

from amc.errors import ConfigError
from workflow.spec import build_sweep, load_sweep

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
PYTHON = __import__("sys").executable


def test_product_explicit_points_and_nested_keys(write_sweep):
    path = write_sweep("""
        base: {circuit: rram, matrix: {n: 4}}
        grid:
          device.levels: [4, 8, 16]
          opamp.gain: [1e3, 1e5]
          matrix.n: [4, 6]
        points:
          - {device.levels: null, opamp.gain: 1e12}
          - {device.levels: 4, opamp.gain: 1e3, matrix.n: 4}   # same as a grid point: counted once
    """)
    sweep = load_sweep(path)
    assert len(sweep) == 3 * 2 * 2 + 1
    assert sweep.name == "sweep"
    first = sweep.points[0]
    assert first.params == {"device.levels": 4, "opamp.gain": 1000.0, "matrix.n": 4}
    # nested keys reach the right sections, YAML's "1e3" strings become numbers
    assert first.spec["circuit"]["device"]["levels"] == 4
    assert first.spec["circuit"]["opamp"]["gain"] == 1000.0
    assert first.spec["matrix"]["n"] == 4
    last = sweep.points[-1]
    assert last.spec["circuit"]["device"]["levels"] is None and last.params["opamp.gain"] == 1e12
    assert len({p.id for p in sweep.points}) == len(sweep)
    # ids are stable: the same file gives the same ids
    assert [p.id for p in load_sweep(path).points] == [p.id for p in sweep.points]


def test_seed_tied_keys_and_presets():
    sweep = build_sweep({"base": {"circuit": {"preset": "rram", "opamp": "opa690"}},
                         "grid": {"seed": [0, 1], "wires.row_ohm,wires.col_ohm": [0, 2.5],
                                  "opamp.gain": [1e4]}}, source="inline")
    assert len(sweep) == 4
    p = sweep.points[-1]
    assert p.spec["circuit"]["device"]["seed"] == 1
    assert p.spec["circuit"]["wires"] == {"row_ohm": 2.5, "col_ohm": 2.5}
    assert p.spec["circuit"]["opamp"]["name"] == "opa690" and p.spec["circuit"]["opamp"]["gain"] == 1e4
    assert sweep.grid_keys == ["seed", "wires.row_ohm", "wires.col_ohm", "opamp.gain"]


@pytest.mark.parametrize("text, words", [
    ("grid: {device.levelz: [4, 8]}", ["device.levelz", "levelz"]),
    ("grid: {voltage: [1, 2]}", ["'voltage'"]),
    ("grid: {device.levels: []}", ["device.levels", "empty"]),
    ("grid: {}", ["empty grid"]),
    ("base: {matrix: {n: 4}}", ["empty grid"]),
    ("grid: {device.levels: [4, eight]}", ["device.levels", "eight"]),
    ("grid: {opamp.gain: [1e3, fast]}", ["opamp.gain", "fast"]),
    ("grid: {device.levels: 8}", ["device.levels", "list"]),
    ("grid: {matrix.n: [4, 2.5]}", ["matrix.n", "2.5"]),
    ("grid: {matrix.size: [4]}", ["matrix.size"]),
    ("grid: {solve.transient: [yes-please]}", ["solve.transient"]),
    ("base: {circuit: nowhere/circuit.yaml}\ngrid: {seed: [0]}", ["base.circuit", "nowhere/circuit.yaml"]),
    ("base: {circuit: no-such-preset}\ngrid: {seed: [0]}", ["base.circuit", "no-such-preset"]),
    ("grdi: {seed: [0]}", ["'grdi'"]),
    ("grid: {seed: [0]}\nplots: [no_such_figure]", ["no_such_figure"]),
    ("grid: {seed: [-1]}", ["seed"]),
    ("grid: {seed: [0]}\npoints: [{device.g_maxx: 1}]", ["points[0]", "g_maxx"]),
])
def test_bad_sweep_files_name_key_and_file(write_sweep, text, words):
    path = write_sweep(text, name="bad_sweep.yaml")
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    message = str(info.value)
    assert "bad_sweep.yaml" in message
    for word in words:
        assert word in message, message


def test_missing_sweep_file():
    with pytest.raises(ConfigError, match="not found"):
        load_sweep("/nonexistent/sweep.yaml")


def test_cli_prints_one_line_before_running(write_sweep, tmp_path):
    path = write_sweep("grid: {device.levelz: [4]}", name="oops.yaml")
    out = tmp_path / "out"
    proc = subprocess.run([PYTHON, "-m", "amc.cli", "sweep", str(path), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "oops.yaml" in lines[0] and "levelz" in lines[0], proc.stderr
    assert not (out / "records.jsonl").exists()


def test_dry_run_lists_points(write_sweep, tmp_path):
    path = write_sweep("grid: {device.levels: [4, 8], seed: [0, 1, 2]}")
    proc = subprocess.run([PYTHON, "-m", "amc.cli", "sweep", str(path), "--dry-run", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "6 point(s), 0 done, 6 to run" in proc.stdout
    assert proc.stdout.count("todo") == 6


def test_training_sweep_keys(write_sweep):
    path = write_sweep("""
        kind: training
        base:
          circuit: {preset: rram, device: {levels: null}}
          training: {target_accuracy: 0.5, optimizer: {name: kfac, solver: {backend: circuit}}, train: {epochs: 1}}
        grid: {device.program_sigma: [0, 0.05], training.optimizer.lr: [0.01, 0.03], seed: [0, 1]}
    """, name="train_sweep.yaml")
    sweep = load_sweep(path)
    assert len(sweep) == 8
    p = sweep.points[-1]
    assert p.spec["training"]["optimizer"]["lr"] == 0.03 and p.spec["seed"] == 1
    assert p.spec["circuit"]["device"]["program_sigma"] == 0.05
    assert p.spec["training"]["train"]["progress"] is False  # points run quietly, from scratch
    bad = write_sweep("""
        kind: training
        grid: {training.optimizer.lrr: [0.01]}
    """, name="bad_train.yaml")
    with pytest.raises(ConfigError, match=r"bad_train\.yaml.*lrr"):
        load_sweep(bad)
    matrix_in_training = write_sweep("kind: training\ngrid: {matrix.n: [4]}", name="bad_train2.yaml")
    with pytest.raises(ConfigError, match=r"bad_train2\.yaml.*matrix\.n"):
        load_sweep(matrix_in_training)


def test_a_swept_key_that_replaces_an_explicit_base_value_is_reported():
    from workflow.spec import build_sweep
    sweep = build_sweep({"name": "s", "base": {"circuit": {"preset": "rram", "device": {"levels": 16}},
                                               "matrix": {"n": 4}},
                         "grid": {"device.levels": [8, 32], "opamp.gain": [1e4]}}, source="s.yaml")
    assert len(sweep.notes) == 1 and "device.levels" in sweep.notes[0] and "= 16" in sweep.notes[0]
