"""Figures of a results directory (PNG and SVG, matplotlib Agg), chosen from the swept keys and the metrics.

Every figure aggregates the records that share its x value and curve: mean with a +-1 std error bar over the
rest (Monte Carlo seeds, other swept keys). Failed points are left out and counted in the title. A sweep file
may name its figures (``plots: [...]``); otherwise each figure whose keys were swept and whose metrics exist
is drawn.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

KEY_LABELS = {
    "device.levels": "conductance levels per device",
    "opamp.gain": "op-amp open-loop gain A0 (V/V)",
    "opamp.gbw_hz": "op-amp gain-bandwidth (Hz)",
    "matrix.n": "matrix size n",
    "matrix.condition": "condition number of H",
    "matrix.lambda_min": "lambda_min of H (normalised)",
    "wires.row_ohm": "wire resistance per segment (ohm)",
    "wires.col_ohm": "column wire resistance per segment (ohm)",
    "device.program_sigma": "programming error sigma (relative)",
    "device.read_noise_sigma": "read noise sigma (relative)",
    "device.stuck_rate": "stuck-device rate",
    "seed": "Monte Carlo seed",
    "inverse_lambda_min": "1 / lambda_min of the mapped loop matrix",
    "n": "matrix size n",
}
METRICS = {  # name: (label, scale factor, log axis)
    "relative_error": ("relative error |x - x*| / |x*|", 1.0, True),
    "relative_residual": ("relative residual |Hx - g| / |g|", 1.0, True),
    "settling_time_s": ("settling time (us)", 1e6, True),
    "energy_j": ("energy per solve (nJ)", 1e9, True),
    "static_power_w": ("static power (mW)", 1e3, False),
    "final_test_accuracy": ("final test accuracy (%)", 100.0, False),
    "epochs_to_target": ("epochs to target accuracy", 1.0, False),
}
LOG_KEYS = {"opamp.gain", "opamp.gbw_hz", "matrix.condition", "inverse_lambda_min", "device.levels"}


# ---- data ----------------------------------------------------------------------------------------
def load(directory: Path) -> tuple[list[dict], dict]:
    from .store import RECORDS, latest_by_id, read_records
    records, _ = read_records(Path(directory) / RECORDS)
    meta_path = Path(directory) / "sweep.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return list(latest_by_id(records).values()), meta


def _value(record: dict, key: str) -> Any:
    if key in (record.get("params") or {}):
        return record["params"][key]
    return (record.get("metrics") or {}).get(key)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _swept(records: list[dict], key: str) -> bool:
    values = {json.dumps(_value(r, key), default=str) for r in records if _value(r, key) is not None}
    return len(values) > 1


# ---- drawing -------------------------------------------------------------------------------------
def _new_figure(title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return fig, ax


def _save(fig, out: Path, name: str) -> list[Path]:
    import matplotlib.pyplot as plt
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    fig.tight_layout()
    for ext in ("png", "svg"):
        path = out / f"{name}.{ext}"
        tmp = out / f".{name}.tmp.{ext}"
        fig.savefig(tmp, format=ext)
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def line_figure(records: list[dict], x_key: str, metric: str, group_key: Optional[str], out: Path, name: str,
                title: Optional[str] = None) -> list[Path]:
    """Metric vs a swept key, one curve per value of group_key; mean +- std over everything else."""
    label, scale, logy = METRICS.get(metric, (metric, 1.0, False))
    ok = [r for r in records if r.get("status") == "ok" and _finite(_value(r, x_key)) and _finite(_value(r, metric))]
    failed = sum(1 for r in records if r.get("status") != "ok")
    if not ok:
        return []
    groups: dict[Any, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ok:
        g = _value(r, group_key) if group_key else None
        groups[g][float(_value(r, x_key))].append(float(_value(r, metric)) * scale)
    extra = f"\n({failed} failed point(s) not shown)" if failed else ""
    fig, ax = _new_figure((title or f"{label} vs {KEY_LABELS.get(x_key, x_key)}") + extra)
    for g in sorted(groups, key=lambda v: (v is None, v if _finite(v) else str(v))):
        xs = sorted(groups[g])
        means = np.array([np.mean(groups[g][x]) for x in xs])
        stds = np.array([np.std(groups[g][x]) for x in xs])
        curve = None if group_key is None else f"{KEY_LABELS.get(group_key, group_key)} = {_fmt(g)}"
        ax.errorbar(xs, means, yerr=stds if np.any(stds > 0) else None, marker="o", ms=4, capsize=3, label=curve)
    ax.set_xlabel(KEY_LABELS.get(x_key, x_key))
    ax.set_ylabel(label)
    if x_key in LOG_KEYS and all(x > 0 for grp in groups.values() for x in grp):
        ax.set_xscale("log", base=2 if x_key == "device.levels" else 10)
    if logy and all(m > 0 for grp in groups.values() for vals in grp.values() for m in vals):
        ax.set_yscale("log")
    if group_key is not None:
        ax.legend(fontsize=8)
    _tidy_log_axes(ax)
    return _save(fig, out, name)


def _tidy_log_axes(ax) -> None:
    """No crowded minor tick labels on log axes (matplotlib labels them when a decade is short)."""
    from matplotlib.ticker import NullFormatter
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "log":
            axis.set_minor_formatter(NullFormatter())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return "continuous" if v is None else str(v)


def training_curves(records: list[dict], out: Path, name: str = "training_curves") -> list[Path]:
    """Test accuracy vs epoch per optimiser: mean +- std over seeds."""
    runs = [r for r in records if r.get("status") == "ok" and (r.get("curves") or {}).get("test_accuracy")]
    if not runs:
        return []
    by_opt: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by_opt[_run_label(r)].append(r["curves"])
    fig, ax = _new_figure("test accuracy vs epoch (mean +- std over seeds)")
    for label in sorted(by_opt):
        curves = by_opt[label]
        length = min(len(c["test_accuracy"]) for c in curves)
        acc = np.array([c["test_accuracy"][:length] for c in curves]) * 100.0
        epochs = np.asarray(curves[0].get("epoch", list(range(1, length + 1)))[:length], dtype=float)
        mean, std = acc.mean(axis=0), acc.std(axis=0)
        line, = ax.plot(epochs, mean, marker="o", ms=3, label=f"{label} (n={len(curves)})")
        if len(curves) > 1:
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    target = next((r["metrics"].get("target_accuracy") for r in runs if (r.get("metrics") or {}).get("target_accuracy")), None)
    if target:
        ax.axhline(100 * target, color="k", ls=":", lw=1, label=f"target {100 * target:g}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    return _save(fig, out, name)


def epochs_to_target(records: list[dict], out: Path, name: str = "epochs_to_target") -> list[Path]:
    runs = [r for r in records if r.get("status") == "ok" and "epochs_to_target" in (r.get("metrics") or {})]
    if not runs:
        return []
    by_opt: dict[str, list[float]] = defaultdict(list)
    missed: dict[str, int] = defaultdict(int)
    for r in runs:
        label = _run_label(r)
        value = r["metrics"]["epochs_to_target"]
        if _finite(value):
            by_opt[label].append(float(value))
        else:
            missed[label] += 1
    labels = sorted(set(by_opt) | set(missed))
    target = next((r["metrics"].get("target_accuracy") for r in runs if r["metrics"].get("target_accuracy")), None)
    fig, ax = _new_figure("epochs to reach " + (f"{100 * target:g}% " if target else "the target ") +
                          "test accuracy (mean +- std over seeds)")
    means = [np.mean(by_opt[l]) if by_opt[l] else 0.0 for l in labels]
    stds = [np.std(by_opt[l]) if by_opt[l] else 0.0 for l in labels]
    bars = ax.bar(range(len(labels)), means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
    for i, l in enumerate(labels):
        if missed[l]:
            ax.annotate(f"{missed[l]} run(s) missed", (i, means[i]), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 4), textcoords="offset points")
    ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
    ax.set_xlabel("optimiser")
    ax.set_ylabel("epochs to target accuracy")
    del bars
    return _save(fig, out, name)


def _run_label(record: dict) -> str:
    params = record.get("params") or {}
    metrics = record.get("metrics") or {}
    label = str(metrics.get("optimizer") or params.get("training.optimizer") or "run")
    others = [f"{k.split('.')[-1]}={_fmt(v)}" for k, v in params.items()
              if k != "seed" and not k.startswith("training.")]
    return label + (" " + ", ".join(others) if others else "")


# ---- registry ------------------------------------------------------------------------------------
def _line(x: str, metric: str, group: Optional[str] = None, also: Iterable[str] = ()) -> Callable:
    def draw(records, out, name):
        g = group if group and _swept(records, group) else None
        if g is None:  # fall back on another swept key as the curve parameter
            g = next((k for k in also if _swept(records, k) and k != x), None)
        return line_figure(records, x, metric, g, out, name)

    def applies(records, keys):
        return _swept(records, x) and any(_finite(_value(r, metric)) for r in records)
    return draw, applies


FIGURES: dict[str, tuple[Callable, Callable]] = {
    "error_vs_levels": _line("device.levels", "relative_error", "opamp.gain", also=("matrix.n", "device.program_sigma")),
    "error_vs_gain": _line("opamp.gain", "relative_error", "device.levels", also=("matrix.n",)),
    "settling_vs_inverse_lambda_min": _line("inverse_lambda_min", "settling_time_s", "matrix.n"),
    "settling_vs_n": _line("matrix.n", "settling_time_s", "matrix.lambda_min", also=("matrix.condition",)),
    "energy_vs_n": _line("matrix.n", "energy_j", "matrix.lambda_min", also=("matrix.condition",)),
    "error_vs_wire_resistance": _line("wires.row_ohm", "relative_error", "matrix.n"),
    "error_vs_n": _line("matrix.n", "relative_error", "wires.row_ohm", also=("device.levels", "device.program_sigma")),
    "error_vs_program_sigma": _line("device.program_sigma", "relative_error", "matrix.n", also=("device.levels",)),
    "error_vs_read_noise": _line("device.read_noise_sigma", "relative_error", "matrix.n"),
    "accuracy_vs_program_sigma": _line("device.program_sigma", "final_test_accuracy", "optimizer"),
    "training_curves": (lambda records, out, name: training_curves(records, out, name),
                        lambda records, keys: any((r.get("curves") or {}).get("test_accuracy") for r in records)),
    "epochs_to_target": (lambda records, out, name: epochs_to_target(records, out, name),
                         lambda records, keys: any("epochs_to_target" in (r.get("metrics") or {}) for r in records)),
}


def plot_results(directory: str | Path, sweep_plots: Optional[list[str]] = None) -> list[Path]:
    """Draw the figures that apply (or the named ones) into DIRECTORY/figures; return the files written."""
    directory = Path(directory)
    records, meta = load(directory)
    if not records:
        return []
    keys = set(meta.get("grid_keys") or [])
    for r in records:
        keys.update((r.get("params") or {}).keys())
    names = sweep_plots or meta.get("plots") or [n for n, (_, applies) in FIGURES.items() if applies(records, keys)]
    out = directory / "figures"
    written: list[Path] = []
    for name in names:
        if name not in FIGURES:
            from amc.errors import ConfigError
            raise ConfigError(f"unknown figure {name!r}; known: {', '.join(sorted(FIGURES))}")
        draw, _ = FIGURES[name]
        written += draw(records, out, name)
    return written
