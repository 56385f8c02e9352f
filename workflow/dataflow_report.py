"""Report of a circuit-in-the-loop training study: one row per dataflow and circuit setting, mean over seeds.

    python -m workflow.dataflow_report results/sweeps/kfac64_dataflows [--out DIR]

Writes ``report.md`` (the table: epochs to target, what the arrays did per step, the analog error before any
refinement, fallbacks, the ledger's cost per step) and two figures into DIR/figures: epochs to target against
conductance levels, one line per dataflow (a missed target drawn as an open marker at the epoch budget, never
as a value), and the mean test-accuracy curves. Rows with more than 1 % fallbacks are marked wherever shown.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

NOISE_KEYS = ("device.read_noise_sigma", "device.drift_nu", "device.program_sigma")


def _row_key(record: dict, base_levels: Optional[int] = None) -> tuple:
    m, p = record["metrics"], record["params"]
    label = m.get("optimizer", "?")
    method = p.get("training.optimizer.solver.method")
    if isinstance(method, dict) and method.get("shift") not in (None, 0) and "direct" in label:
        label += f", shift {method['shift']}"
    if isinstance(method, dict) and "direct" in label:
        if method.get("preset") not in (None, "direct"):
            label += f", {method['preset']}"
        for key, value in method.items():
            if key not in ("preset", "name", "equilibrate", "operators", "shift"):
                label += f", {key} {value}"
    if p.get("training.optimizer.solver.diagonal_shift"):
        label += f" (damping-matched twin: diagonal shift {p['training.optimizer.solver.diagonal_shift']})"
    noise = ", ".join(f"{k.split('.')[-1]} {p[k]:g}" for k in NOISE_KEYS if p.get(k))
    if noise:
        label += f" [{noise}]"
    levels = p.get("device.levels", base_levels) if label.startswith("kfac-circuit") else None
    return label, levels


def rows(records: list[dict], base_levels: Optional[int] = None) -> list[dict]:
    from training.report import fallback_mark
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("status") == "ok" and r.get("metrics"):
            groups[_row_key(r, base_levels)].append(r)
    out = []
    for (label, levels), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        ms = [r["metrics"] for r in rs]
        ett = [m.get("epochs_to_target") for m in ms]
        reached = [e for e in ett if e is not None and math.isfinite(e)]

        def mean(key: str) -> Optional[float]:
            vals = [m[key] for m in ms if m.get(key) is not None and math.isfinite(m[key])]
            return float(np.mean(vals)) if vals else None

        solves = sum(m.get("solver_solves") or 0 for m in ms)
        fallbacks = sum(m.get("hw_fallbacks") or 0 for m in ms)
        hw = {"solves": solves, "fallback_fraction": fallbacks / solves if solves else 0.0}
        out.append({
            "label": label, "levels": levels, "runs": len(rs), "reached": len(reached),
            "epochs_mean": float(np.mean(reached)) if reached else None,
            "epochs_std": float(np.std(reached, ddof=1)) if len(reached) > 1 else (0.0 if reached else None),
            "epochs_each": ett, "final_acc": mean("final_test_accuracy"),
            "analog_error": mean("hw_analog_error_mean"), "settles_per_step": mean("hw_inv_settles_per_step"),
            "reads_per_step": mean("hw_mvm_reads_per_step"), "flops_per_step": mean("hw_digital_flops_per_step"),
            "programmings": mean("hw_programmings"), "ngspice_runs": mean("hw_ngspice_runs"),
            "fallbacks": fallbacks, "solves": solves, "mark": fallback_mark(hw) if solves else "",
            "energy_per_step": mean("cost_energy_j_per_step"), "time_per_step": mean("cost_time_s_per_step"),
            "curves": [r.get("curves") or {} for r in rs], "circuit": label.startswith("kfac-circuit"),
            "final_error": mean("hw_final_error_mean"), "bias_error": mean("hw_bias_error_mean"),
            "device_error": mean("hw_device_error_mean"), "cosine": mean("hw_step_cosine_mean"),
            "cosine_min": mean("hw_step_cosine_min"), "shifted": mean("hw_controller_shifted_programmings"),
            "verified": mean("hw_controller_programmings_verified"), "shift_mean": mean("hw_controller_shift_mean"),
            "controller_settles_per_step": _per_step(ms, "hw_controller_inv_settles"),
            "controller_reads_per_step": _per_step(ms, "hw_controller_mvm_reads"),
            "controller_flops_per_step": _per_step(ms, "hw_controller_digital_flops"),
        })
    return out


def _per_step(ms: list[dict], key: str) -> Optional[float]:
    """Mean over runs of a run total divided by its steps (steps from the run's own settles per step)."""
    vals = [m[key] * m["hw_inv_settles_per_step"] / m["hw_inv_settles"] for m in ms
            if m.get(key) is not None and m.get("hw_inv_settles")]
    return float(np.mean(vals)) if vals else None


def error_split(table: list[dict]) -> str:
    """The analog error split per row: the deliberate shift's bias, the device error, the step direction."""
    head = ("| K-FAC solves | levels | error of x (returned) | deliberate bias (shift, exact arithmetic) | device error | "
            "cos(x, x*) mean / min | shifted / verified programmings | mean shift | controller settles, MVM reads, "
            "flops / step |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def f(v, spec=".3f"):
        return "—" if v is None else format(v, spec)
    for r in table:
        if not r["circuit"]:
            continue
        ctrl = "—" if r["controller_settles_per_step"] is None else (
            f"{r['controller_settles_per_step']:.1f}, {r['controller_reads_per_step']:.1f}, "
            f"{r['controller_flops_per_step']:.3g}")
        shifted = "—" if r["verified"] is None else f"{r['shifted']:.0f} / {r['verified']:.0f}"
        lines.append(f"| {r['label']} | {r['levels']} | {f(r['final_error'])} | {f(r['bias_error'])} | "
                     f"{f(r['device_error'])} | {f(r['cosine'])} / {f(r['cosine_min'])} | {shifted} | "
                     f"{f(r['shift_mean'])} | {ctrl} |")
    return "\n".join(lines) + "\n"


def _si(value: Optional[float], unit: str) -> str:
    if value is None:
        return "—"
    for factor, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def markdown(table: list[dict], target: Optional[float]) -> str:
    head = ("| K-FAC solves | levels | epochs to target (mean ± std) | reached | analog error before refinement | "
            "INV settles / step | MVM reads / step | digital flops / step | programmings / run | ngspice runs / run "
            "| fallbacks | ledger: time, energy / step |")
    lines = [f"Epochs to {100 * target:g} % test accuracy" if target else "", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in table:
        ep = "not reached" if r["epochs_mean"] is None else f"{r['epochs_mean']:.2f} ± {r['epochs_std']:.2f}"
        label = r["label"] + (f" **{r['mark']}**" if r["mark"] else "")
        if not r["circuit"]:
            lines.append(f"| {label} | — | {ep} | {r['reached']}/{r['runs']} | exact | — | — | — | — | — | — | — |")
            continue
        analog = "n/a (no analog INV)" if r["analog_error"] is None else f"{r['analog_error']:.3f}"
        cost = "—" if r["energy_per_step"] is None else f"{_si(r['time_per_step'], 's')}, {_si(r['energy_per_step'], 'J')}"
        lines.append(f"| {label} | {r['levels']} | {ep} | {r['reached']}/{r['runs']} | {analog} | "
                     f"{r['settles_per_step']:.0f} | {r['reads_per_step']:.0f} | {r['flops_per_step']:.3g} | "
                     f"{r['programmings']:.0f} | {r['ngspice_runs']:.0f} | {r['fallbacks']}/{r['solves']} | {cost} |")
    return "\n".join(lines) + "\n"


def figures(table: list[dict], out: Path, target: Optional[float], budget: float, subtitle: str) -> list[Path]:
    from .plots import _new_figure, _save
    written = []
    fig, ax = _new_figure(f"Epochs to {100 * (target or 0):g} % test accuracy vs conductance levels", subtitle)
    by_label: dict[str, list[dict]] = defaultdict(list)
    for r in table:
        if r["circuit"]:
            by_label[r["label"]].append(r)
    for line_index, (label, rs) in enumerate(sorted(by_label.items())):
        rs = sorted(rs, key=lambda r: r["levels"])
        shown = [r for r in rs if r["epochs_mean"] is not None]
        line = ax.errorbar([r["levels"] for r in shown], [r["epochs_mean"] for r in shown],
                           yerr=[r["epochs_std"] for r in shown], marker="o", ms=5, capsize=3, label=label)
        color = line[0].get_color()
        for r in shown:
            if r["mark"]:    # more than 1 % of this point's solves were exact fallbacks: say so on the point
                ax.annotate(r["mark"].replace("FALLBACKS", "fallbacks"), (r["levels"], r["epochs_mean"]),
                            textcoords="offset points", xytext=(6, 4 - 10 * line_index), fontsize=7, color=color)
        missed = [r["levels"] for r in rs if r["reached"] < r["runs"]]
        if missed:   # a run that missed the target: an open marker at the budget, not a value
            ax.plot(missed, [budget] * len(missed), ls="none", marker="o", mfc="none", mec=color,
                    ms=9 + 3 * line_index)
    for r in table:
        if not r["circuit"] and r["epochs_mean"] is not None:
            ax.axhline(r["epochs_mean"], ls="--", lw=1, color="k" if "exact" in r["label"] else "0.5")
            ax.text(40, r["epochs_mean"], f" {r['label']} {r['epochs_mean']:.2f}", fontsize=7, va="top")
    ax.set_xscale("log", base=2)
    levels = sorted({r["levels"] for r in table if r["circuit"]})
    ax.set_xticks(levels)
    ax.set_xticklabels([str(v) for v in levels])
    ax.set_xlabel("conductance levels per cell")
    ax.set_ylabel("epochs to target (mean ± std)")
    ax.text(0.01, 0.01, f"open marker at {budget:g}: a seed missed the target", transform=ax.transAxes, fontsize=7)
    ax.legend(fontsize=7)
    written += _save(fig, out, "epochs_to_target_vs_levels")
    fig, ax = _new_figure("Test accuracy during training, mean over seeds", subtitle)
    for r in table:
        curves = [c for c in r["curves"] if c.get("epoch")]
        if not curves:
            continue
        grid = sorted({e for c in curves for e in c["epoch"]})
        acc = np.array([np.interp(grid, c["epoch"], c["test_accuracy"], right=np.nan) for c in curves])
        label = r["label"] + (f", {r['levels']} levels" if r["levels"] else "") + (f" [{r['mark']}]" if r["mark"] else "")
        ax.plot(grid, 100 * np.nanmean(acc, axis=0), lw=1, label=label)
    if target:
        ax.axhline(100 * target, ls=":", c="k", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(60, 90)
    ax.legend(fontsize=6, loc="lower right")
    written += _save(fig, out, "accuracy_curves")
    return written


def short_conditions(meta: dict) -> str:
    """One line: data, model, circuit preset and device settings of the study's base (what every point shares)."""
    base = (meta.get("spec") or {}).get("base") or {}
    t, c = base.get("training") or {}, base.get("circuit") or {}
    data, model = t.get("data") or {}, t.get("model") or {}
    circuit = c if isinstance(c, str) else c.get("preset", "?")
    device = ", ".join(f"{k} {v}" for k, v in ((c.get("device") or {}) if isinstance(c, dict) else {}).items())
    return (f"{data.get('source', '?')} {data.get('n_train', '?')}/{data.get('n_test', '?')}, conv {model.get('kernel')}x"
            f"{model.get('kernel')} 1->{model.get('channels')}, pool {model.get('pool')}\ncircuit {circuit}"
            f"{' (' + device + ')' if device else ''}; mean ± std over seeds")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.dataflow_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--out", default=None, help="where report.md and figures/ go (default: the directory)")
    args = parser.parse_args(argv)
    from .plots import load
    directory = Path(args.directory)
    records, meta = load(directory)
    if meta.get("point_ids"):       # records of points the sweep file no longer holds (an edited study) are left out
        records = [r for r in records if r.get("id") in set(meta["point_ids"])]
    if not records:
        print(f"error: no records in {directory}", file=sys.stderr)
        return 2
    target = next((r["metrics"].get("target_accuracy") for r in records if r.get("metrics")), None)
    budget = float(((meta.get("spec") or {}).get("base") or {}).get("training", {}).get("train", {}).get("epochs", 8))
    circuit = ((meta.get("spec") or {}).get("base") or {}).get("circuit") or {}
    base_levels = ((circuit.get("device") or {}) if isinstance(circuit, dict) else {}).get("levels")
    table = rows(records, base_levels)
    out = Path(args.out) if args.out else directory
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(table, target) + "\n" + error_split(table)
    (out / "report.md").write_text(text)
    for path in figures(table, out / "figures", target, budget, short_conditions(meta)):
        print(f"figure: {path}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
