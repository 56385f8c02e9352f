"""Figures of a results directory (PNG and SVG), chosen from the swept keys and the metrics, or asked for by
``amc plot DIR --x KEY --y METRIC [--hue KEY]``.

Every figure draws one curve per combination of the swept keys it is not plotted against; only Monte Carlo
seeds (``seed``, ``*.seed``) are averaged (mean with a ±1 std error bar). Failed points are left out and counted
in the title. Each figure's subtitle states the sweep, its circuit preset and fixed conditions. A sweep file may
name its figures (``plots: [...]``); otherwise each figure whose keys were swept and whose metrics exist is drawn.
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
    "matrix.lambda_min": "λ_min of H (normalised)",
    "wires.row_ohm": "wire resistance per segment (ohm)",
    "wires.col_ohm": "column wire resistance per segment (ohm)",
    "device.program_sigma": "programming error sigma (relative)",
    "device.read_noise_sigma": "read noise sigma (relative)",
    "device.stuck_rate": "stuck-device rate",
    "seed": "Monte Carlo seed",
    "inverse_lambda_min": "1 / λ_min of the mapped loop matrix",
    "n": "matrix size n",
    "analog.lr": "learning rate α",
    "analog.write.wire_ohm": "write-line wire resistance per segment (ohm)",
}
METRICS = {  # name: (label, scale factor, log axis)
    "relative_error": ("relative error |x - x*| / |x*|", 1.0, True),
    "relative_residual": ("relative residual |Hx - g| / |g|", 1.0, True),
    "settling_time_s": ("settling time (µs)", 1e6, True),
    "energy_j": ("energy per solve (nJ)", 1e9, True),
    "static_power_w": ("static power (mW)", 1e3, False),
    "final_test_accuracy": ("final test accuracy (%)", 100.0, False),
    "epochs_to_target": ("epochs to target accuracy", 1.0, False),
    "loss_tail": ("error: mean f(W) over the last 20 % of iterations", 1.0, True),
}
LOG_KEYS = {"opamp.gain", "opamp.gbw_hz", "matrix.condition", "inverse_lambda_min", "device.levels", "analog.lr"}


# ---- data ----------------------------------------------------------------------------------------
def load(directory: Path) -> tuple[list[dict], dict]:
    from amc.errors import ConfigError
    from .store import RECORDS, check_intact, latest_by_id, read_records
    check_intact(Path(directory) / RECORDS, ConfigError)
    records, _ = read_records(Path(directory) / RECORDS)
    meta_path = Path(directory) / "sweep.json"
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{meta_path}: not the JSON the sweep engine writes (damaged?); delete it and rerun the "
                          "sweep command to rewrite it") from None
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


def _is_seed(key: Optional[str]) -> bool:
    return bool(key) and (key == "seed" or key.endswith(".seed"))


def conditions(meta: dict, records: list[dict]) -> str:
    """One or two lines: the sweep, its circuit preset and the conditions every point shares."""
    spec = meta.get("spec") or {}
    base = spec.get("base") or {}
    swept = set(meta.get("grid_keys") or []) | {k for r in records for k in (r.get("params") or {})}
    parts = []
    if meta.get("name"):
        parts.append(f"sweep {meta['name']}")
    circuit = base.get("circuit")
    if isinstance(circuit, dict):
        circuit = circuit.get("preset") or circuit.get("name") or "custom circuit"
    if circuit and not any(k.startswith(("circuit", "preset")) for k in swept):
        parts.append(f"preset {circuit}")
    # a point key "device.levels" overrides the base's "circuit.device.levels": that value is not shared by all
    swept_too = swept | {f"circuit.{k}" for k in swept} | {f"{k}.preset" for k in swept if k == "circuit"}
    fixed = []
    for key, value in _flat(base).items():
        if key.startswith("circuit") and not key.startswith("circuit."):
            continue
        if key not in swept_too and not isinstance(value, (dict, list)):
            fixed.append(f"{key} = {_fmt(value)}")
    seeds = sorted({k for k in swept if _is_seed(k)})
    if seeds:
        fixed.append("mean ± std over " + ", ".join(seeds))
    if not parts and not fixed:
        return ""
    text = "; ".join(parts + fixed)
    return _wrap(text, 85)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _wrap(text: str, width: int) -> str:
    """Every line of the conditions (never cut: a figure states them all; the figure grows instead)."""
    import textwrap
    return "\n".join(line for part in text.split("\n") for line in textwrap.wrap(part, width))


# ---- drawing -------------------------------------------------------------------------------------
def _new_figure(title: str, subtitle: str = ""):
    import matplotlib.pyplot as plt  # the backend is the caller's: inline in Jupyter, a file writer elsewhere
    title = _wrap(title, 80)         # a long title is wrapped, never clipped at the figure's edge
    lines = title.count("\n") + (subtitle.count("\n") + 1 if subtitle else 0)
    fig, ax = plt.subplots(figsize=(6.4, 4.4 + 0.16 * lines), dpi=110)
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=9 if subtitle else 10)
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
                title: Optional[str] = None, subtitle: str = "") -> list[Path]:
    """Metric vs a swept key, one curve per value of group_key and of every other swept key but seeds;
    mean ± std over the seeds."""
    label, scale, logy = METRICS.get(metric, (metric, 1.0, False))
    # device.levels: null means continuous cells: drawn as a level line per curve, not dropped
    continuous = [r for r in records if r.get("status") == "ok" and x_key == "device.levels"
                  and _value(r, x_key) is None and _finite(_value(r, metric))]
    ok = [r for r in records if r.get("status") == "ok" and _finite(_value(r, x_key)) and _finite(_value(r, metric))]
    failed = sum(1 for r in records if r.get("status") != "ok")
    if not ok:
        return []
    # Averaging over a swept setting would hide the very effect a reader looks for: split it into curves.
    others = sorted(k for k in {k for r in ok for k in (r.get("params") or {})}
                    if k not in (x_key, group_key) and not _is_seed(k) and _swept(ok, k))
    curve_keys = ([group_key] if group_key else []) + others
    groups: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ok:
        g = tuple(_value(r, k) for k in curve_keys)
        groups[g][float(_value(r, x_key))].append(float(_value(r, metric)) * scale)
    flat: dict[tuple, list[float]] = defaultdict(list)
    for r in continuous:
        flat[tuple(_value(r, k) for k in curve_keys)].append(float(_value(r, metric)) * scale)
    if _is_seed(x_key) or _is_seed(group_key):      # a seed drawn on an axis is not averaged over
        subtitle = _drop_seed(subtitle, {x_key, group_key})
    averaged = any(len(v) > 1 for grp in groups.values() for v in grp.values())
    extra = f" ({failed} failed point(s) not shown)" if failed else ""
    main = (title or f"{label} vs {KEY_LABELS.get(x_key, x_key)}") + extra
    fig, ax = _new_figure(main, subtitle)

    def order(values: tuple):
        return tuple((v is None, v if _finite(v) else str(v)) for v in values)

    import matplotlib.pyplot as plt
    ordered = sorted(groups, key=order)
    palette = plt.get_cmap("tab10" if len(ordered) <= 10 else "tab20").colors
    markers = "osD^vP*Xph"
    drawn: list[tuple[tuple, list, np.ndarray]] = []
    for i, g in enumerate(ordered):
        xs = sorted(groups[g])
        means = np.array([np.mean(groups[g][x]) for x in xs])
        stds = np.array([np.std(groups[g][x]) for x in xs])
        curve = ", ".join(f"{_short(k)} = {_fmt(v)}" for k, v in zip(curve_keys, g)) or None
        twin = next((c for c, cx, cm in drawn if cx == xs and np.allclose(cm, means, rtol=1e-9, atol=0)), None)
        if twin is not None and curve:      # drawn on top of an earlier one: say so rather than hide it
            curve += " (identical to " + ", ".join(f"{_fmt(v)}" for v in twin) + ")"
        colour = palette[i % len(palette)]
        ax.errorbar(xs, means, yerr=stds if np.any(stds > 0) else None, marker=markers[i % len(markers)], ms=4,
                    capsize=3, label=curve, color=colour, ls="--" if twin is not None else "-")
        drawn.append((g, xs, means))
        if g in flat:
            ax.axhline(np.mean(flat[g]), color=colour, ls=":", lw=1,
                       label=(curve + ": " if curve else "") + "continuous cells (levels: null)")
    for g in flat:
        if g not in groups:
            ax.axhline(np.mean(flat[g]), color="k", ls=":", lw=1, label="continuous cells (levels: null)")
    ax.set_xlabel(KEY_LABELS.get(x_key, x_key))
    ax.set_ylabel(label + (" (mean ± std)" if averaged else ""))
    if x_key in LOG_KEYS and all(x > 0 for grp in groups.values() for x in grp):
        ax.set_xscale("log", base=2 if x_key == "device.levels" else 10)
    if logy and all(m > 0 for grp in groups.values() for vals in grp.values() for m in vals):
        ax.set_yscale("log")
    elif "(%)" in label:
        # Accuracies: never zoom a difference of one or two test images into a steep slope; show at least 10
        # percentage points around the data.
        lo, hi = ax.get_ylim()
        if hi - lo < 10:
            mid = (hi + lo) / 2
            ax.set_ylim(max(0.0, mid - 5), min(100.0, max(0.0, mid - 5) + 10))
    if curve_keys or flat:
        if len(groups) > 6:         # beside the axes, not over the data
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
            fig.set_size_inches(fig.get_size_inches()[0] + 3.2, fig.get_size_inches()[1])
        else:
            ax.legend(fontsize=8)
    _tidy_log_axes(ax)
    return _save(fig, out, name)


def _drop_seed(subtitle: str, keys: set) -> str:
    """The conditions without 'mean ± std over KEY' for a seed key that is an axis or the curves."""
    import re
    flat = subtitle.replace("\n", " ")
    found = re.search(r"mean ± std over ([^;]+)$", flat)
    if not found:
        return subtitle
    rest = [k.strip() for k in found.group(1).split(",") if k.strip() not in keys]
    head = flat[:found.start()].rstrip("; ")
    text = head + (("; " if head else "") + "mean ± std over " + ", ".join(rest) if rest else "")
    return _wrap(text, 85)


def _short(key: str) -> str:
    return KEY_LABELS.get(key, key) if len(KEY_LABELS.get(key, key)) <= 28 else key


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


def training_curves(records: list[dict], out: Path, name: str = "training_curves", subtitle: str = "") -> list[Path]:
    """Test accuracy vs epoch per optimiser: mean ± std over seeds."""
    runs = [r for r in records if r.get("status") == "ok" and (r.get("curves") or {}).get("test_accuracy")]
    if not runs:
        return []
    by_opt: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by_opt[_run_label(r)].append(r["curves"])
    fig, ax = _new_figure("test accuracy vs epoch (mean ± std over seeds)", subtitle)
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


def epochs_to_target(records: list[dict], out: Path, name: str = "epochs_to_target", subtitle: str = "") -> list[Path]:
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
                          "test accuracy (mean ± std over the seeds that reached it)", subtitle)
    reached = [l for l in labels if by_opt[l]]
    top = max([np.mean(by_opt[l]) + np.std(by_opt[l]) for l in reached] or [1.0]) * 1.1
    for i, l in enumerate(labels):
        n_runs = len(by_opt[l]) + missed[l]
        if by_opt[l]:
            ax.bar(i, np.mean(by_opt[l]), yerr=np.std(by_opt[l]), capsize=4, color="tab:blue", alpha=0.8)
            if missed[l]:
                ax.annotate(f"{missed[l]}/{n_runs} run(s) missed", (i, np.mean(by_opt[l])), ha="center",
                            va="bottom", fontsize=8, xytext=(0, 4), textcoords="offset points")
        else:
            # Never a zero-height "best" bar: a target nobody reached is drawn as missing.
            ax.bar(i, top, color="none", edgecolor="tab:gray", hatch="//", linewidth=1)
            ax.text(i, top / 2, f"n/r\n(0/{n_runs} reached)", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(labels)), [_wrap(l, 22) for l in labels], rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("optimiser")
    ax.set_ylabel("epochs to target accuracy")
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
    def draw(records, out, name, subtitle=""):
        g = group if group and _swept(records, group) else None
        if g is None:  # fall back on another swept key as the curve parameter
            g = next((k for k in also if _swept(records, k) and k != x), None)
        return line_figure(records, x, metric, g, out, name, subtitle=subtitle)

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
    "loss_tail_vs_lr": _line("analog.lr", "loss_tail", "analog.algorithm"),
    "loss_tail_vs_wire_resistance": _line("analog.write.wire_ohm", "loss_tail", "analog.algorithm"),
    "training_curves": (lambda records, out, name, subtitle="": training_curves(records, out, name, subtitle),
                        lambda records, keys: any((r.get("curves") or {}).get("test_accuracy") for r in records)),
    "epochs_to_target": (lambda records, out, name, subtitle="": epochs_to_target(records, out, name, subtitle),
                         lambda records, keys: any("epochs_to_target" in (r.get("metrics") or {}) for r in records)),
}


def plot_results(directory: str | Path, sweep_plots: Optional[list[str]] = None, x: Optional[str] = None,
                 y: Optional[str] = None, hue: Optional[str] = None) -> list[Path]:
    """Draw the figures that apply (or the named ones, or one ``y`` vs ``x`` figure) into DIRECTORY/figures;
    return the files written."""
    from amc.errors import ConfigError
    directory = Path(directory)
    records, meta = load(directory)
    if not records:
        return []
    subtitle = conditions(meta, records)
    out = directory / "figures"
    if x or y:
        if not (x and y):
            raise ConfigError("--x and --y go together (and --hue is optional)")
        known = sorted({k for r in records for k in (r.get("params") or {})} |
                       {k for r in records for k, v in (r.get("metrics") or {}).items() if _finite(v)})
        for option, key in (("--x", x), ("--y", y), ("--hue", hue)):
            if key is not None and key not in known:
                raise ConfigError(f"{option} {key!r} is in no record of {directory}; keys there: {', '.join(known)}")
        name = f"{_slug(y)}_vs_{_slug(x)}" + (f"_by_{_slug(hue)}" if hue else "")
        written = line_figure(records, x, y, hue, out, name, subtitle=subtitle)
        if not written:
            raise ConfigError(f"no successful record has numeric values of both {x!r} and {y!r}")
        return written
    keys = set(meta.get("grid_keys") or [])
    for r in records:
        keys.update((r.get("params") or {}).keys())
    names = sweep_plots or meta.get("plots") or [n for n, (_, applies) in FIGURES.items() if applies(records, keys)]
    written: list[Path] = []
    for name in names:
        if name not in FIGURES:
            raise ConfigError(f"unknown figure {name!r}; known: {', '.join(sorted(FIGURES))}")
        draw, _ = FIGURES[name]
        written += draw(records, out, name, subtitle)
    return written


def _slug(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key).strip("_")
