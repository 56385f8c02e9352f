"""Epochs-to-target study: every optimiser, tuned on a small learning-rate grid, over several seeds.

The study runs on the sweep engine (``workflow.compare_study.run_compare``, also ``amc compare CONFIG``); this
module holds what it reports: epochs to target, the summary, the markdown table and the figure.

1. Tuning: for each entry with more than one ``lr_grid`` value, one run per lr on seed ``tune.seed``, trained
   on the training set minus a stratified validation split of ``tune.n_val`` images and scored on that
   validation split (``tune.split: test`` scores on the test set instead). Each tuning run stops at the target.
   Best lr: fewest epochs to the target; runs that never reach it rank after, by final accuracy.
2. Final runs: each entry at its best lr for every seed in ``seeds``, on the full training set, scored on the
   test set, up to ``train.epochs`` (``train.stop_at_accuracy`` stops earlier if set).
3. Epochs to target: first crossing of ``target_accuracy``, linearly interpolated between evaluations
   (``train.evals_per_epoch`` per epoch, default quarter-epoch resolution). Runs that never reach it are
   counted (``reached k/n``) and excluded from the mean; all-unreached shows "not reached".

Outputs under ``out_dir`` (default ``results/compare/NAME/``): ``tune/`` and ``final/`` (the sweep engine's
resumable ``records.jsonl`` + ``records.csv``: one complete record per finished run, failures recorded, an
interrupted study resumes where it stopped), ``summary.json``, ``results.md`` and ``compare.png``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from .report import fallback_mark, hardware_line
from .config import CompareConfig


def epochs_to_target(history, target: float) -> Optional[float]:
    """First epoch at which test accuracy reaches ``target``, linearly interpolated between evaluations.
    ``history``: records with ``epoch`` and ``test_acc`` (or (epoch, acc) pairs). None if never reached."""
    pts = [(r["epoch"], r["test_acc"]) if isinstance(r, dict) else tuple(r) for r in history]
    pts.sort()
    prev = None
    for e, a in pts:
        if a >= target:
            if prev is None or prev[1] >= target:
                return float(e)
            e0, a0 = prev
            return float(e0 + (target - a0) / (a - a0) * (e - e0))
        prev = (e, a)
    return None


def _mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0


def summarise(cfg: CompareConfig, dataset: dict, best_lr: dict, tuning: dict, runs: dict) -> dict:
    """The study's summary from its final runs: ``runs[label]`` = one record per seed (sweep records of
    ``workflow.compare_study``: metrics, curves, hardware, status)."""
    summary = {"name": cfg.name, **dataset, "target_accuracy": cfg.target_accuracy,
               "seeds": list(cfg.seeds), "max_epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
               "evals_per_epoch": cfg.train.evals_per_epoch, "tuning_split": cfg.tune.split,
               "optimizers": {}, "config": cfg.to_dict()}
    for e in cfg.optimizers:
        recs = runs[e.label]
        ok = [r for r in recs if r.get("status") == "ok"]
        ett = [reached_epochs(r) for r in recs]
        m, sd = _mean_std(ett)
        fm, fsd = _mean_std([r["metrics"].get("final_test_accuracy") for r in ok])
        spe, _ = _mean_std([r["metrics"]["train_time_s"] / r["metrics"]["epochs"] for r in ok
                            if r["metrics"].get("train_time_s") and r["metrics"].get("epochs")])
        entry = {"lr": best_lr[e.label], "optimizer": dataclasses.asdict(e.optimizer) | {"lr": best_lr[e.label]},
                 "epochs_to_target": ett, "epochs_mean": m, "epochs_std": sd,
                 "reached": sum(x is not None for x in ett), "runs": len(recs), "final_acc_mean": fm,
                 "final_acc_std": fsd, "sec_per_epoch": spe,
                 "errors": [r["error"] for r in recs if r.get("status") != "ok"],
                 "tuning": tuning.get(e.label, []),
                 "curves": [list(zip((r.get("curves") or {}).get("epoch", []),
                                     (r.get("curves") or {}).get("test_accuracy", []))) for r in recs]}
        fallbacks = [r["metrics"].get("fallbacks") for r in ok if r["metrics"].get("fallbacks") is not None]
        if fallbacks:
            entry["fallbacks"] = fallbacks
        hardware = [r.get("hardware") for r in recs]
        if any(hardware):
            entry["hardware"] = hardware
            entry["fallback_mark"] = max((fallback_mark(h) for h in hardware if h), key=len, default="")
        summary["optimizers"][e.label] = entry
    for e in summary["optimizers"].values():
        e["speedup_vs"] = {}
        for b in cfg.baselines:
            base = summary["optimizers"].get(b)
            if base and base["epochs_mean"] and e["epochs_mean"]:
                e["speedup_vs"][b] = base["epochs_mean"] / e["epochs_mean"]
            else:
                e["speedup_vs"][b] = None
    return summary


def reached_epochs(record: dict) -> Optional[float]:
    """Epochs to target of a sweep record (None: failed or never reached)."""
    if record.get("status") != "ok":
        return None
    e = record["metrics"].get("epochs_to_target")
    return None if e is None or not math.isfinite(e) else float(e)


def json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _fmt_pm(m, s, fmt="{:.2f}"):
    return "—" if m is None else f"{fmt.format(m)} ± {fmt.format(s or 0.0)}"


def markdown_table(summary: dict) -> str:
    tgt = summary["target_accuracy"]
    base = [b for b in next(iter(summary["optimizers"].values()))["speedup_vs"]] if summary["optimizers"] else []
    lines = [f"# {summary['name']}: epochs to {tgt:.0%} test accuracy",
             "",
             f"Data: **{summary['dataset']}**{' (SYNTHETIC letters, not real handwriting)' if summary['synthetic'] else ''}"
             f", {summary['n_train']} train / {summary['n_test']} test, batch {summary['batch_size']}, "
             f"seeds {summary['seeds']}, at most {summary['max_epochs']:g} epochs, evaluated "
             f"{summary['evals_per_epoch']}x per epoch (interpolated); learning rates tuned on the "
             f"{summary['tuning_split']} split.",
             "",
             "| " + " | ".join(["optimiser", "lr", "epochs to target (mean ± std)", "reached", "final test acc",
                                "s / epoch"] + [f"speed-up vs {b}" for b in base]) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(base)]
    for label, e in summary["optimizers"].items():
        ep = "not reached" if e["epochs_mean"] is None else _fmt_pm(e["epochs_mean"], e["epochs_std"])
        fa = _fmt_pm(None if e["final_acc_mean"] is None else 100 * e["final_acc_mean"],
                     None if e["final_acc_std"] is None else 100 * e["final_acc_std"], "{:.1f}")
        sp = "—" if e["sec_per_epoch"] is None else f"{e['sec_per_epoch']:.2f}"
        ratios = " | ".join("—" if e["speedup_vs"].get(b) is None else f"{e['speedup_vs'][b]:.2f}x" for b in base)
        shown = label + (f" **{e['fallback_mark']}**" if e.get("fallback_mark") else "")
        cells = [shown, f"{e['lr']:g}", ep, f"{e['reached']}/{e['runs']}", f"{fa} %", sp] + ([ratios] if base else [])
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Speed-up = baseline mean epochs / this optimiser's mean epochs (over the seeds that reached "
              "the target). s / epoch: training steps only (no evaluation), this machine."]
    tun = {k: v["tuning"] for k, v in summary["optimizers"].items() if v["tuning"]}
    if tun:
        lines += ["", "## Tuning", ""]
        for k, rows in tun.items():
            cells = ", ".join(f"lr {r['lr']:g}: " + ("not reached" if r["epochs_to_target"] is None
                                                      else f"{r['epochs_to_target']:.2f} ep") for r in rows)
            lines.append(f"- {k}: {cells}")
    for k, v in summary["optimizers"].items():
        runs = [h for h in v.get("hardware") or [] if h]
        if runs:
            lines += ["", f"## What the arrays did: {k} ({runs[0].get('method')})", ""]
            lines += [f"- seed {seed}: {hardware_line(h)}" for seed, h in zip(summary["seeds"], v["hardware"]) if h]
        if v["errors"]:
            lines += ["", f"Errors ({k}): " + "; ".join(v["errors"])]
    return "\n".join(lines) + "\n"


def plot_compare(summary: dict, path) -> None:
    import matplotlib.pyplot as plt  # the caller's backend: inline in a notebook, Agg from the CLI

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = list(summary["optimizers"])
    for i, (label, e) in enumerate(summary["optimizers"].items()):
        curves = [c for c in e["curves"] if c]
        if not curves:
            continue
        grid = sorted({p[0] for c in curves for p in c})
        ys = np.array([np.interp(grid, [p[0] for p in c], [p[1] for p in c], right=np.nan) for c in curves])
        m = np.nanmean(ys, 0)
        s = np.nanstd(ys, 0)
        mark = f" [{e['fallback_mark']}]" if e.get("fallback_mark") else ""
        line, = ax.plot(grid, 100 * m, label=f"{label} (lr {e['lr']:g}){mark}")
        ax.fill_between(grid, 100 * (m - s), 100 * (m + s), alpha=0.2, color=line.get_color())
        if e["epochs_mean"] is not None:
            bx.bar(i, e["epochs_mean"], yerr=e["epochs_std"], color=line.get_color(), capsize=4)
            bx.text(i, e["epochs_mean"], f" {e['epochs_mean']:.2f}\n ({e['reached']}/{e['runs']})", ha="center",
                    va="bottom", fontsize=8)
        else:  # drawn as missing, never as a zero-height (best-looking) bar
            height = max([o["epochs_mean"] + (o["epochs_std"] or 0) for o in summary["optimizers"].values()
                          if o["epochs_mean"] is not None] or [1.0])
            bx.bar(i, height, color="none", edgecolor="tab:gray", hatch="//")
            bx.text(i, height / 2, f"n/r\n(0/{e['runs']})", ha="center", va="center", fontsize=8)
    tgt = 100 * summary["target_accuracy"]
    ax.axhline(tgt, ls="--", c="k", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(max(0, tgt - 40), 100)
    ax.legend(fontsize=8, loc="lower right")
    data = summary["dataset"] + (" [synthetic]" if summary["synthetic"] and "synthetic" not in summary["dataset"] else "")
    ax.set_title(f"{data}: mean ± std over seeds {summary['seeds']}", fontsize=9)
    bx.set_xticks(range(len(labels)))
    bx.set_xticklabels([lab + ("\n" + summary["optimizers"][lab]["fallback_mark"]
                              if summary["optimizers"][lab].get("fallback_mark") else "") for lab in labels],
                       rotation=15, fontsize=8)
    bx.set_ylabel(f"epochs to {tgt:.0f}% test accuracy")
    bx.set_title("epochs to target (mean ± std over seeds that reached it)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
