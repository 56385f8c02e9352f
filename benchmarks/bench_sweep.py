"""Sweep throughput: a 16-point circuit sweep (n = 40..64, .op + .tran) with 1 and 2 worker processes, and on a
two-worker dask LocalCluster. Prints a Markdown table (wall time, speed-up, overhead per point).

    .venv/bin/python benchmarks/bench_sweep.py [--sizes 40 48 56 64] [--seeds 4] [--skip-dask]

Overhead per point = (wall time x workers - sum of the points' own run times) / points: what the executor adds
(process start-up, pickling, scheduling, idle workers at the end) on top of the simulations themselves.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from workflow.engine import run_sweep
from workflow.spec import build_sweep
from workflow.store import read_records


def make_sweep(sizes, seeds):
    return build_sweep({
        "name": "bench_sweep",
        "base": {"circuit": {"preset": "rram", "device": {"levels": None}},
                 "matrix": {"kind": "spd", "condition": 10}, "solve": {"transient": True}},
        # seed outer, n inner: sizes alternate, so both workers get a mix of long and short points
        "grid": {"matrix.seed": list(range(seeds)), "matrix.n": list(sizes)},
        "timeout_s": 600}, source="bench")


def idle_fraction(seconds: float = 2.0) -> float:
    """Share of CPU time the whole machine spent idle over the next `seconds` (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            values = [float(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)
    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(total1 - total0, 1e-9)


def wait_idle(limit: float) -> None:
    """Wait (up to `limit` s) until other processes leave the CPUs alone, so the timings measure this sweep."""
    deadline = time.time() + limit
    while time.time() < deadline:
        idle = idle_fraction()
        if idle > 0.9:
            return
        print(f"  waiting for idle CPUs ({100 * idle:.0f}% idle)...", flush=True)
        time.sleep(5)
    print("  CPUs still busy: measuring anyway (numbers include the contention)", flush=True)


def timed(sweep, workers, executor="process", scheduler=None, idle_wait: float = 0.0):
    if idle_wait:
        wait_idle(idle_wait)
    out = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        t0 = time.perf_counter()
        report = run_sweep(sweep, out, workers=workers, executor=executor, scheduler=scheduler, progress=False,
                           plot=False)
        wall = time.perf_counter() - t0
        records, _ = read_records(out / "records.jsonl")
        compute = sum(r.get("wall_time_s") or 0.0 for r in records)
        assert report.ok == len(sweep), report.summary()
        return wall, compute
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 48, 56, 64])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each measurement wait up to SECONDS for the CPUs to be idle (shared machines)")
    args = parser.parse_args()
    sweep = make_sweep(args.sizes, args.seeds)
    n = len(sweep)
    print(f"{n}-point sweep: n in {args.sizes}, {args.seeds} matrices each, .op + .tran, preset rram (continuous)", flush=True)
    print(f"  load average before: {os.getloadavg()[0]:.2f} (other processes on this machine slow both runs; "
          "'sum of point times' growing with workers means the cores were shared)", flush=True)
    rows = []
    w1, c1 = timed(sweep, 1, idle_wait=args.wait_idle)
    rows.append(("process pool", 1, w1, c1))
    print(f"  1 worker: {w1:.1f} s", flush=True)
    w2, c2 = timed(sweep, 2, idle_wait=args.wait_idle)
    rows.append(("process pool", 2, w2, c2))
    print(f"  2 workers: {w2:.1f} s", flush=True)
    if not args.skip_dask:
        try:
            from distributed import LocalCluster
        except ImportError:
            print('  dask: not installed (pip install "dask[distributed]"); skipped')
        else:
            if args.wait_idle:
                wait_idle(args.wait_idle)
            t0 = time.perf_counter()
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=40) as cluster:
                startup = time.perf_counter() - t0
                wd, cd = timed(sweep, 2, executor="dask", scheduler=cluster.scheduler_address)
            rows.append((f"dask LocalCluster (start-up {startup:.1f} s not included)", 2, wd, cd))
            print(f"  dask, 2 workers: {wd:.1f} s", flush=True)
    print(f"  load average after: {os.getloadavg()[0]:.2f}")
    print()
    print("| executor | workers | wall time (s) | speed-up vs 1 worker | sum of point times (s) | overhead per point (s) |")
    print("|---|---|---|---|---|---|")
    for name, workers, wall, compute in rows:
        overhead = (wall * workers - compute) / n
        print(f"| {name} | {workers} | {wall:.1f} | {w1 / wall:.2f}x | {compute:.1f} | {overhead:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
