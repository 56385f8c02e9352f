"""`amc sweep`: run a YAML sweep study on the engine (workflow/engine.py)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from amc.errors import ConfigError


def sweep_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="amc sweep",
        description="Run a YAML sweep study (configs/sweeps/*.yaml). Every finished point is appended at once to "
                    "OUT/records.jsonl; rerunning the same command resumes where it stopped.")
    parser.add_argument("sweep", help="sweep file (YAML)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes, one ngspice each (default: number of CPUs, at most the points)")
    parser.add_argument("--out", help="results directory (default results/sweeps/NAME)")
    parser.add_argument("--dry-run", action="store_true", help="list the points (and which are done) and exit")
    parser.add_argument("--executor", choices=["process", "dask", "serial"], default="process",
                        help="process pool (default), an existing dask.distributed cluster, or this process")
    parser.add_argument("--scheduler", help="dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --executor dask)")
    parser.add_argument("--connect-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to try to reach the dask scheduler (default 30)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed points again")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the figures at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--start-method", choices=["spawn", "forkserver"], default="spawn",
                        help="how worker processes start (default spawn)")
    args = parser.parse_args(argv)

    from workflow.engine import default_out_dir, pending_points, run_sweep
    from workflow.spec import load_sweep

    sweep = load_sweep(args.sweep)
    out_dir = Path(args.out) if args.out else default_out_dir(sweep)
    for note in sweep.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.dry_run:
        from workflow.engine import _refuse_another_sweep
        from workflow.store import RECORDS, read_records
        _refuse_another_sweep(sweep, out_dir, read_records(out_dir / RECORDS)[0])
        todo, latest = pending_points(sweep, out_dir, args.retry_failed)
        todo_ids = {p.id for p in todo}
        print(f"sweep {sweep.name!r} ({sweep.kind}) from {args.sweep}: {len(sweep)} point(s), "
              f"{len(sweep) - len(todo)} done, {len(todo)} to run; results in {out_dir}")
        if sweep.description:
            print("  " + sweep.description.replace("\n", "\n  "))
        for p in sweep.points:
            status = "todo" if p.id in todo_ids else latest[p.id].get("status", "done")
            print(f"{p.index:4d}  {p.id}  {status:5s}  {p.label()}")
        return 0
    if args.executor == "dask" and not args.scheduler:
        raise ConfigError("--executor dask needs --scheduler ADDRESS")
    if args.scheduler and args.executor != "dask":
        args.executor = "dask"
    workers = args.workers if args.workers is not None else max(1, min(os.cpu_count() or 1, len(sweep)))
    report = run_sweep(sweep, out_dir=out_dir, workers=workers, executor=args.executor, scheduler=args.scheduler,
                       retry_failed=args.retry_failed, progress=not args.no_progress, plot=not args.no_plots,
                       connect_timeout_s=args.connect_timeout)
    print(report.summary())
    if report.failed:
        print(f"{report.failed} point(s) failed: see the 'error' column of {out_dir / 'records.csv'}")
    if report.figures:
        print(f"figures: {len(report.figures)} file(s) in {out_dir / 'figures'}")
    return 130 if report.interrupted else 0
