"""`amc compare CONFIG`: the epochs-to-target study of optimisers (workflow/compare_study.py on the sweep engine)."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from amc.cli.train import add_config_arguments, load_with_overrides


def compare_main(argv: Optional[Sequence[str]] = None) -> int:
    from training.config import load_compare_config
    from workflow.compare_study import run_compare

    ap = argparse.ArgumentParser(prog="amc compare",
                                 description="Epochs-to-target comparison of optimisers over seeds.")
    add_config_arguments(ap)
    ap.add_argument("--jobs", type=int, default=None, help="parallel runs (processes)")
    ap.add_argument("--executor", choices=["process", "dask", "serial"], default=None,
                    help="how the runs execute (sweep engine; default: process when --jobs > 1, else serial)")
    ap.add_argument("--scheduler", default=None, help="Dask scheduler address (with --executor dask)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    cfg = load_with_overrides(args, load_compare_config)
    run_compare(cfg, out_dir=args.out, jobs=args.jobs, executor=args.executor, scheduler=args.scheduler)
    return 0
