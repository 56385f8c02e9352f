"""Sweeps that must not leave processes behind, mix two studies, or print tracebacks."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from amc.errors import ConfigError
from workflow.engine import run_sweep
from workflow.spec import load_sweep
from workflow.store import read_records

ROOT = Path(__file__).resolve().parents[2]
PYTHON = __import__("sys").executable

SLOW = """
    name: slow
    base: {circuit: rram, matrix: {n: 16, condition: 10}, solve: {transient: true}}
    grid: {device.levels: [16, 32, 64, 128], opamp.gain: [1e4, 1e5]}
    timeout_s: 120
"""


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_kill_9_of_the_sweep_ends_its_workers_and_resource_tracker(write_sweep, tmp_path):
    path = write_sweep(SLOW)
    proc = subprocess.Popen([PYTHON, "-m", "amc.cli", "sweep", str(path), "--out", str(tmp_path / "out"),
                             "--workers", "2", "--no-plots", "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(_children(proc.pid)) < 2:
            time.sleep(0.1)
        children = _children(proc.pid)
        assert len(children) >= 2, "the sweep did not start its workers"
        time.sleep(0.5)  # let them import and pick up points
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        left = {p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for p in children if _alive(p)}
        assert not left, f"processes outlived the sweep process: {left}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_different_sweep_into_the_same_out_is_refused_naming_both(write_sweep, tmp_path):
    first = write_sweep("""
        name: first
        base: {circuit: ideal, matrix: {n: 4, condition: 10}}
        grid: {device.levels: [null]}
    """, name="first.yaml")
    second = write_sweep("""
        name: second
        base: {circuit: ideal, matrix: {n: 4, condition: 10}}
        grid: {device.levels: [64]}
    """, name="second.yaml")
    out = tmp_path / "out"
    assert run_sweep(load_sweep(first), out, executor="serial", progress=False, plot=False).ok == 1
    with pytest.raises(ConfigError, match=r"another sweep, 'first'.*this sweep is 'second'"):
        run_sweep(load_sweep(second), out, executor="serial", progress=False, plot=False)
    records, _ = read_records(out / "records.jsonl")
    assert [r["sweep"] for r in records] == ["first"]
    assert run_sweep(load_sweep(first), out, executor="serial", progress=False, plot=False).skipped == 1


@pytest.mark.parametrize("extra, message", [
    (["--out", "/proc"], "cannot write to the results directory /proc"),
    (["--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "0.5"], "cannot reach the dask scheduler"),
])
@pytest.mark.slow
def test_sweep_cli_problems_are_one_line(write_sweep, tmp_path, extra, message):
    path = write_sweep(SLOW)
    if "--out" not in extra:
        extra = extra + ["--out", str(tmp_path / "out")]
    run = subprocess.run([PYTHON, "-m", "amc.cli", "sweep", str(path), "--no-progress", "--no-plots", *extra],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
