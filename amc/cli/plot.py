"""`amc plot`: the figures of a results directory (workflow/plots.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from amc.errors import ConfigError


def plot_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="amc plot", description="Draw the figures (PNG and SVG) of a results "
                                                                  "directory of `amc sweep` or `make sim`.")
    parser.add_argument("results", help="results directory (holding records.jsonl)")
    parser.add_argument("--only", nargs="*", help="figure names to draw (default: chosen from the swept keys)")
    parser.add_argument("--x", help="any swept key or metric for the x axis (with --y): one figure of any study")
    parser.add_argument("--y", help="a metric (or key) for the y axis, e.g. relative_error")
    parser.add_argument("--hue", help="a key whose values become separate curves (other swept keys but seeds "
                                      "always do)")
    args = parser.parse_args(argv)
    from workflow.plots import load, plot_results
    directory = Path(args.results)
    if not directory.is_dir():
        raise ConfigError(f"results directory not found: {directory}")
    if (args.x or args.y or args.hue) and args.only:
        raise ConfigError("--only names built-in figures; --x/--y/--hue draw one figure of your choice: use one")
    records_path = directory / "records.jsonl"
    if not records_path.exists():
        raise ConfigError(f"{directory}: no records.jsonl (not the results directory of a sweep or of make sim)")
    if not load(directory)[0]:
        size = records_path.stat().st_size
        raise ConfigError(f"{records_path}: no complete record" + (f" in its {size} bytes (damaged?)" if size else
                                                                     " (empty: the sweep has not finished a point)"))
    figures = plot_results(directory, sweep_plots=args.only, x=args.x, y=args.y, hue=args.hue)
    if not figures:
        print(f"no built-in figure applies to the records in {directory}; draw one with "
              "--x KEY --y METRIC [--hue KEY]")
        return 0
    for path in figures:
        print(path)
    return 0
