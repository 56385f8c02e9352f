"""Entry point ``train_main(argv) -> int`` (dispatched by ``amc train``), also ``python -m training.cli train CONFIG
[--set k=v ...]``. A compare study runs on the sweep engine, so ``amc compare`` lives in workflow/compare_study.py:
training/ does not import workflow/.

Exit codes: 0 success, 1 training or solver failure (non-finite values, a solver stop), 2 bad configuration,
arguments or data (missing/corrupt files, an unusable $AMC_DATA_DIR), or an output directory that cannot be
written, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("config", help="YAML configuration file")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value with a dotted key, e.g. --set optimizer.lr=0.01 (repeatable)")
    ap.add_argument("--out", default=None, help="output directory (default from the config)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_and_load(ap: argparse.ArgumentParser, argv, loader, extra_overrides=lambda args: []):
    """Parse the arguments and load the config with its ``--set`` overrides; (args, config) or (args, None)
    after printing the configuration error."""
    from .config import ConfigError

    args = ap.parse_args(list(argv) if argv is not None else None)
    overrides = list(args.overrides) + (["train.progress=false"] if args.no_progress else []) + extra_overrides(args)
    try:
        return args, loader(args.config, overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return args, None


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    from .config import load_config
    from .data import DataError

    ap = argparse.ArgumentParser(prog="amc train", description="Train the letter classifier (SGD, Adam or K-FAC).")
    _common(ap)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    args, cfg = _parse_and_load(ap, argv, load_config, lambda a: ["train.resume=false"] if a.fresh else [])
    if cfg is None:
        return 2
    from .loop import TrainingError, train

    try:
        res = train(cfg, out_dir=args.out)
    except DataError as exc:
        print(f"data error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:     # a run that could not go on (diverged, circuit failure with stop): rc 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only or full output directory
        print(f"error: cannot write {exc.filename or 'the results'}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: {exc} (the circuit backend needs the amc package and ngspice)", file=sys.stderr)
        return 2
    except Exception as exc:
        from amc.errors import AmcError
        if not isinstance(exc, AmcError):
            raise
        print(f"error: {exc}", file=sys.stderr)     # e.g. ngspice missing: never silently digital
        return 2
    f = res.final
    print(f"{cfg.name}: {res.stopped} after {res.steps} steps ({res.steps / res.steps_per_epoch:.2f} epochs); "
          f"test accuracy {f.get('test_acc', float('nan')):.4f}, train accuracy {f.get('train_acc', float('nan')):.4f}, "
          f"{f.get('dataset')}; log {res.out_dir / 'metrics.jsonl'}")
    if res.optimizer_stats:
        print(f"optimizer stats: {res.optimizer_stats}")
    if f.get("hardware"):
        from .report import hardware_line
        print(f"hardware ({f['hardware']['method']}): {hardware_line(f['hardware'])}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": train_main}
    if not argv or argv[0] not in commands:
        print("usage: python -m training.cli train CONFIG [--set key=value ...] (a compare study: amc compare)",
              file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
