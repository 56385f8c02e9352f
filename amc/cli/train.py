"""`amc train CONFIG [--set k=v ...]`: train the letter classifier (training/loop.py).

The config is read once, by training's own loader (``training.config.load_config``), which `amc cost training`
uses too. Errors take the one path of amc/cli/__init__.py: bad configuration, arguments or data (missing/corrupt
files, an unusable $AMC_DATA_DIR), a run that could not go on (non-finite values, a solver stop, a damaged
checkpoint) or an output directory that cannot be written give one line and exit code 2; Ctrl-C 130.
"""
from __future__ import annotations

import argparse
from typing import Callable, Optional, Sequence


def add_config_arguments(ap: argparse.ArgumentParser) -> None:
    """The arguments `amc train` and `amc compare` share: the YAML file, its --set overrides, --out, --no-progress."""
    ap.add_argument("config", help="YAML configuration file")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value with a dotted key, e.g. --set optimizer.lr=0.01 (repeatable)")
    ap.add_argument("--out", default=None, help="output directory (default from the config)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_with_overrides(args: argparse.Namespace, loader: Callable, extra: Sequence[str] = ()):
    """The config of ``args.config`` through ``loader`` with the --set overrides (and --no-progress) applied."""
    overrides = list(args.overrides) + (["train.progress=false"] if args.no_progress else []) + list(extra)
    return loader(args.config, overrides)


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    from amc.errors import AmcError
    from training.config import load_config

    ap = argparse.ArgumentParser(prog="amc train", description="Train the letter classifier (SGD, Adam or K-FAC).")
    add_config_arguments(ap)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    args = ap.parse_args(list(argv) if argv is not None else None)
    cfg = load_with_overrides(args, load_config, ["train.resume=false"] if args.fresh else [])
    from training.loop import train

    try:
        res = train(cfg, out_dir=args.out)
    except ImportError as exc:
        raise AmcError(f"{exc} (the circuit backend needs the amc package and ngspice)") from None
    f = res.final
    print(f"{cfg.name}: {res.stopped} after {res.steps} steps ({res.steps / res.steps_per_epoch:.2f} epochs); "
          f"test accuracy {f.get('test_acc', float('nan')):.4f}, train accuracy {f.get('train_acc', float('nan')):.4f}, "
          f"{f.get('dataset')}; log {res.out_dir / 'metrics.jsonl'}")
    if res.optimizer_stats:
        print(f"optimizer stats: {res.optimizer_stats}")
    if f.get("hardware"):
        from training.report import hardware_line
        print(f"hardware ({f['hardware']['method']}): {hardware_line(f['hardware'])}")
    return 0
