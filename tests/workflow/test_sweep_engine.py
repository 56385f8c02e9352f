"""Running sweeps: records, failures, resume after a kill, Ctrl-C, figures, dask."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from workflow.engine import run_sweep
from workflow.spec import load_sweep
from workflow.store import read_records

ROOT = Path(__file__).resolve().parents[2]
PYTHON = __import__("sys").executable


def _lines(out: Path) -> list[dict]:
    raw = (out / "records.jsonl").read_text()
    assert raw.endswith("\n")
    return [json.loads(line) for line in raw.splitlines()]  # every line is complete JSON


@pytest.mark.slow
def test_failing_point_is_recorded_and_the_others_finish(write_sweep, tmp_path):
    # 2 levels cannot represent this matrix (MappingError at run time); the other points solve.
    path = write_sweep("""
        name: fails
        base: {circuit: rram, matrix: {n: 6, condition: 100}}
        grid: {device.levels: [2, 64, null], opamp.gain: [1e4, 1e5]}
        timeout_s: 60
    """)
    sweep = load_sweep(path)
    out = tmp_path / "out"
    report = run_sweep(sweep, out, workers=2, progress=False, plot=False)
    assert (report.ran, report.ok, report.failed) == (6, 4, 2)
    records = _lines(out)
    assert sorted(r["id"] for r in records) == sorted(p.id for p in sweep.points)
    failed = [r for r in records if r["status"] == "error"]
    assert {r["params"]["device.levels"] for r in failed} == {2}
    assert all("MappingError" in r["error"] for r in failed)
    ok = [r for r in records if r["status"] == "ok"]
    assert all(0 <= r["metrics"]["relative_error"] < 1 and r["wall_time_s"] > 0 for r in ok)
    continuous = [r for r in ok if r["params"]["device.levels"] is None]
    assert all(r["metrics"]["relative_error"] < 0.01 for r in continuous)
    csv_text = (out / "records.csv").read_text()
    assert csv_text.count("\n") == 7 and "MappingError" in csv_text
    # rerun: nothing left to do; --retry-failed runs the failures again (they fail again, superseding)
    assert run_sweep(sweep, out, workers=1, progress=False, plot=False).ran == 0
    again = run_sweep(sweep, out, workers=1, progress=False, plot=False, retry_failed=True)
    assert again.ran == 2 and again.failed == 2


@pytest.mark.slow
def test_timeout_is_recorded(write_sweep, tmp_path):
    path = write_sweep("""
        base: {circuit: rram, matrix: {n: 24, condition: 20}, solve: {transient: true}}
        grid: {device.levels: [null]}
        timeout_s: 0.3
    """)
    report = run_sweep(load_sweep(path), tmp_path / "out", workers=1, progress=False, plot=False)
    assert report.failed == 1
    (record,) = _lines(tmp_path / "out")
    assert record["error_type"] == "timeout" and "timeout_s = 0.3" in record["error"]


RESUME_SWEEP = """
    name: resume
    base: {circuit: rram, matrix: {n: 16, condition: 10}, solve: {transient: true}}
    grid: {device.levels: [16, 32, 64], opamp.gain: [1e4, 1e5]}
    timeout_s: 120
"""


def _start(path: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "amc.cli", "sweep", str(path), "--out", str(out), "--workers", "1",
                             "--no-plots", "--no-progress", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for_records(out: Path, count: int, proc: subprocess.Popen, limit: float = 90) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        records, _ = read_records(out / "records.jsonl")
        if len(records) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"sweep ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail("no records appeared in time")


@pytest.mark.slow
def test_resume_after_kill(write_sweep, tmp_path):
    path = write_sweep(RESUME_SWEEP)
    sweep = load_sweep(path)
    out = tmp_path / "out"
    proc = _start(path, out)
    _wait_for_records(out, 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, at once, mid-point
    proc.wait(timeout=30)
    finished = len(_lines(out))
    assert 2 <= finished < len(sweep)
    with open(out / "records.jsonl", "a") as f:  # what a kill in the middle of a write would leave
        f.write('{"id": "' + sweep.points[-1].id + '", "status": "ok", "metr')
    proc = _start(path, out)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "partial last record" in stderr
    assert f"{len(sweep) - finished} point(s) run" in stdout and f"{finished} already done" in stdout
    records = _lines(out)
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(p.id for p in sweep.points)  # every point exactly once
    assert all(r["status"] == "ok" for r in records)


@pytest.mark.slow
def test_ctrl_c_keeps_finished_records(write_sweep, tmp_path):
    path = write_sweep(RESUME_SWEEP)
    out = tmp_path / "out"
    proc = _start(path, out)
    _wait_for_records(out, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout
    records = _lines(out)
    assert 1 <= len(records) <= len(load_sweep(path))
    assert (out / "records.csv").exists()


@pytest.mark.slow
def test_plots_for_a_small_sweep(write_sweep, tmp_path):
    path = write_sweep("""
        name: plots
        base: {circuit: rram, matrix: {n: 5, condition: 5}}
        grid: {device.levels: [4, 16], opamp.gain: [1e3, 1e5], seed: [0, 1]}
        points: [{device.levels: 2, opamp.gain: 1e5}]
    """)
    out = tmp_path / "out"
    report = run_sweep(load_sweep(path), out, workers=1, executor="serial", progress=False, plot=True)
    names = {p.name for p in report.figures}
    for figure in ("error_vs_levels", "error_vs_gain"):
        assert {f"{figure}.png", f"{figure}.svg"} <= names
    assert all(p.stat().st_size > 1000 for p in report.figures)
    svg = (out / "figures" / "error_vs_levels.svg").read_text()
    assert "conductance levels per device" in svg and "relative error" in svg
    proc = subprocess.run([PYTHON, "-m", "amc.cli", "plot", str(out)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "error_vs_gain.png" in proc.stdout, proc.stderr


@pytest.mark.slow
def test_dask_local_cluster(write_sweep, tmp_path):
    distributed = pytest.importorskip("distributed")
    path = write_sweep("""
        name: dask
        base: {circuit: rram, matrix: {n: 6, condition: 10}}
        grid: {device.levels: [2, 8, 16, 64]}
    """)
    sweep = load_sweep(path)
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        report = run_sweep(sweep, out, executor="dask", scheduler=cluster.scheduler_address, progress=False, plot=False)
    assert (report.ran, report.ok, report.failed) == (4, 3, 1)
    records = _lines(out)
    assert sorted(r["id"] for r in records) == sorted(p.id for p in sweep.points)
    assert len({r["pid"] for r in records if "pid" in r}) >= 1
    assert os.getpid() not in {r.get("pid") for r in records}  # solved in the cluster, written here
