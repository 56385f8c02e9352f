"""Command-line problems end in one line naming the problem and exit 2 (Ctrl-C: 130), never a traceback."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from amc.cli import main

ROOT = Path(__file__).resolve().parents[1]
AMC = [sys.executable, "-m", "amc.cli"]


@pytest.fixture
def system(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    np.save(tmp_path / "H.npy", a @ a.T / 6 + np.eye(6))
    np.save(tmp_path / "g.npy", rng.standard_normal(6))
    return ["--matrix", str(tmp_path / "H.npy"), "--rhs", str(tmp_path / "g.npy")]


def _one_line_error(capsys, code, expected_code=2):
    err = capsys.readouterr().err.strip()
    assert code == expected_code and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("directory, message", [
    ("missing/deeper", "does not exist"),
    ("/proc", "cannot write the deck"),  # read-only even for root
])
def test_netlist_into_a_missing_or_read_only_directory(system, tmp_path, capsys, directory, message):
    out = Path(directory) if directory.startswith("/") else tmp_path / directory
    err = _one_line_error(capsys, main(["netlist", *system, "--preset", "ideal", "-o", str(out / "deck.cir")]))
    assert message in err and str(out) in err


@pytest.mark.parametrize("command", ["solve", "sweep", "train"])
def test_yaml_that_is_not_utf8(tmp_path, system, capsys, command):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: r\xe9sistance\n".encode("latin-1"))
    argv = {"solve": ["solve", *system, "--config", str(bad)], "sweep": ["sweep", str(bad)],
            "train": ["train", str(bad)]}[command]
    err = _one_line_error(capsys, main(argv))
    assert "not UTF-8" in err and "latin1.yaml" in err


def test_preset_given_as_a_list(tmp_path, system, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("preset: [rram]\n")
    err = _one_line_error(capsys, main(["solve", *system, "--config", str(bad)]))
    assert "unknown preset ['rram']" in err


def test_version_and_set(system, capsys):
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("amc 0.")
    assert main(["solve", *system, "--preset", "ideal", "--set", "device.levels=64", "--json"]) == 0
    assert '"config": "ideal (modified: device.levels)"' in capsys.readouterr().out
    err = _one_line_error(capsys, main(["solve", *system, "--set", "device.levles=64"]))
    assert "device.levles" in err


def test_accuracy_warning_is_one_line(system, capsys):
    from amc.hw import mapping
    mapping._ACCURACY_WARNED.clear()
    assert main(["solve", *system, "--preset", "rram", "--set", "device.levels=3"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the programmed array differs from H")
    mapping._ACCURACY_WARNED.clear()
    assert main(["solve", *system, "--preset", "rram", "--set", "device.levels=3", "--json"]) == 0
    import json
    assert json.loads(capsys.readouterr().out)["warnings"][0].startswith("the programmed array differs")


def test_plot_and_train_into_read_only_directories(tmp_path, capsys):
    config = tmp_path / "t.yaml"
    config.write_text("data: {n_train: 52, n_test: 26}\ntrain: {epochs: 0.1}\n")
    err = _one_line_error(capsys, main(["train", str(config), "--out", "/proc/amc-train", "--no-progress"]))
    assert "/proc/amc-train" in err
    err = _one_line_error(capsys, main(["plot", "/proc", "--x", "n", "--y", "relative_error"]))
    assert "/proc" in err


@pytest.mark.slow
def test_wrong_ngspice_library(system):
    env = dict(os.environ, NGSPICE_LIBRARY_PATH=str(Path(np.__file__).parent / "core" / "_multiarray_umath."
                                                     f"{sys.implementation.cache_tag}-x86_64-linux-gnu.so"))
    libm = sorted(Path("/usr/lib").glob("*/libm.so.6")) or sorted(Path("/lib").glob("*/libm.so.6"))
    env["NGSPICE_LIBRARY_PATH"] = str(libm[0])
    run = subprocess.run(AMC + ["solve", *system, "--preset", "ideal"], capture_output=True, text=True, env=env,
                         cwd=ROOT)
    assert run.returncode == 2 and "is not the ngspice shared library" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("argv, after", [
    # read noise and plain ngspice: one .op per right-hand side, ~1 s each (the matrix engine, or one quasi-static
    # batch, would finish before the signal comes)
    (["solve", "--matrix", "{H}", "--rhs", "{G}", "--preset", "ideal", "--set", "simulation.engine=ngspice",
      "--set", "device.read_noise_sigma=0.01"], 2.0),
    (["train", str(ROOT / "configs" / "train" / "synthetic-kfac.yaml"), "--out", "{OUT}", "--no-progress"], 2.0),
])
@pytest.mark.slow
def test_ctrl_c_is_one_line_and_130(tmp_path, argv, after):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((128, 128))
    np.save(tmp_path / "H.npy", a @ a.T / 128 + np.eye(128))
    np.save(tmp_path / "G.npy", rng.standard_normal((128, 16)))  # a few seconds of ngspice: the signal lands in it
    argv = [a.format(H=tmp_path / "H.npy", G=tmp_path / "G.npy", OUT=tmp_path / "run") for a in argv]
    # A test run started in the background (make test &) ignores SIGINT, and children inherit that: undo it.
    proc = subprocess.Popen(AMC + argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "interrupted", err[-2000:]
    assert not list(tmp_path.rglob("*.tmp"))


def test_bench_runner_help():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_runner.py"), "--help"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and "usage" in run.stdout and "Traceback" not in run.stderr


def test_train_with_an_unusable_amc_data_dir_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AMC_DATA_DIR", str(tmp_path / "nowhere"))
    config = tmp_path / "t.yaml"
    config.write_text("data: {source: emnist}\n")
    err = _one_line_error(capsys, main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]))
    assert "AMC_DATA_DIR" in err and "no such directory" in err


def test_transient_deck_without_a_bandwidth_is_one_line(system, capsys, tmp_path):
    err = _one_line_error(capsys, main(["netlist", *system, "--preset", "ideal", "--transient",
                                        "-o", str(tmp_path / "t.cir")]))
    assert "gain-bandwidth" in err and not (tmp_path / "t.cir").exists()
