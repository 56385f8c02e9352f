"""Epochs-to-target study: every optimiser, tuned on a small learning-rate grid, over several seeds.

``run_compare(cfg) -> dict`` (also ``amc compare CONFIG`` / ``python -m training.cli compare CONFIG``).

1. Tuning: for each entry with more than one ``lr_grid`` value, one run per lr on seed ``tune.seed``, trained
   on the training set minus a stratified validation split of ``tune.n_val`` images and scored on that
   validation split (``tune.split: test`` scores on the test set instead). Each tuning run stops at the target.
   Best lr: fewest epochs to the target; runs that never reach it rank after, by final accuracy.
2. Final runs: each entry at its best lr for every seed in ``seeds``, on the full training set, scored on the
   test set, up to ``train.epochs`` (``train.stop_at_accuracy`` stops earlier if set).
3. Epochs to target: first crossing of ``target_accuracy``, linearly interpolated between evaluations
   (``train.evals_per_epoch`` per epoch, default quarter-epoch resolution). Runs that never reach it are
   counted (``reached k/n``) and excluded from the mean; all-unreached shows "not reached".

Outputs under ``out_dir`` (default ``results/compare/NAME/``): ``runs.jsonl`` (one record per finished run;
an interrupted study resumes from it), ``runs/`` (each run's metrics log and checkpoint), ``summary.json``,
``results.md`` and ``compare.png``.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from .report import fallback_mark, hardware_line
from .config import CompareConfig, Config
from .data import load_data, stratified_split


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


def _run_key(phase, label, lr, seed) -> str:
    return f"{phase}|{label}|{lr:.6g}|{seed}"


def _one_run(job: dict) -> dict:
    """Worker: train one configuration and return its record (runs in a subprocess when jobs > 1)."""
    from .loop import TrainingError, train

    cfg: Config = job["cfg"]
    t0 = time.perf_counter()
    rec = {"key": job["key"], "phase": job["phase"], "label": job["label"], "lr": cfg.optimizer.lr,
           "seed": cfg.train.seed}
    try:
        res = train(cfg, data=job["data"], out_dir=job["out_dir"])
        hist = [{"epoch": h["epoch"], "test_acc": h["test_acc"], "train_acc": h["train_acc"], "loss": h["loss"]}
                for h in res.history]
        epochs_run = res.steps / res.steps_per_epoch
        rec.update(ok=True, history=hist, epochs_to_target=epochs_to_target(hist, job["target"]),
                   final_test_acc=res.final.get("test_acc"), epochs_run=epochs_run,
                   train_time_s=res.final.get("train_time_s"),
                   sec_per_epoch=(res.final.get("train_time_s", 0.0) / epochs_run) if epochs_run else None,
                   stopped=res.stopped, optimizer_stats=res.optimizer_stats, hardware=res.final.get("hardware"))
    except (TrainingError, FloatingPointError) as exc:
        rec.update(ok=False, error=str(exc), history=[], epochs_to_target=None, final_test_acc=None)
    rec["wall_time_s"] = time.perf_counter() - t0
    return rec


def _mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0


def run_compare(cfg: CompareConfig, out_dir=None, progress: Optional[bool] = None, jobs: Optional[int] = None,
                log=print) -> dict:
    out = Path(out_dir) if out_dir is not None else cfg.out_path
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.jsonl"
    done = {}
    if runs_path.exists():
        for ln in runs_path.read_text().splitlines():
            if ln.strip():
                r = json.loads(ln)
                done[r["key"]] = r
    jobs = jobs or cfg.jobs
    if progress is None:
        progress = cfg.train.progress and jobs == 1

    train_set, test_set = load_data(cfg.data)
    log(f"[compare {cfg.name}] data {train_set.label}: {len(train_set)} train / {len(test_set)} test, "
        f"{train_set.n_classes} classes; target {cfg.target_accuracy:.1%}; seeds {cfg.seeds}")
    if cfg.tune.split == "validation":
        tr_idx, va_idx = stratified_split(train_set.y, len(train_set) - cfg.tune.n_val, cfg.tune.n_val,
                                          seed=cfg.tune.seed + 1000)
        tune_data = (train_set.subset(tr_idx), train_set.subset(va_idx, name=train_set.name + "-validation"))
    else:
        tune_data = (train_set, test_set)

    def make_job(phase, entry, lr, seed, data, epochs, stop_at):
        opt = copy.deepcopy(entry.optimizer)
        opt.lr = float(lr)
        tc = dataclasses.replace(cfg.train, seed=int(seed), epochs=float(epochs), progress=progress,
                                 stop_at_accuracy=stop_at, resume=True)
        name = f"{entry.label}-lr{lr:g}-s{seed}"
        c = Config(name=f"{cfg.name}/{phase}/{name}", data=cfg.data, model=cfg.model, optimizer=opt, train=tc)
        key = _run_key(phase, entry.label, float(lr), int(seed))
        return {"key": key, "phase": phase, "label": entry.label, "cfg": c, "data": data,
                "out_dir": str(out / "runs" / phase / name), "target": cfg.target_accuracy}

    def execute(job_list):
        todo = [j for j in job_list if j["key"] not in done]
        for j in job_list:
            if j["key"] in done:
                log(f"  {j['key']}: done earlier (runs.jsonl)")
        if not todo:
            return

        def record(r):
            done[r["key"]] = r
            with open(runs_path, "a") as f:
                f.write(json.dumps(r, default=_json_default) + "\n")
                f.flush()
                os.fsync(f.fileno())
            ett = r.get("epochs_to_target")
            log(f"  {r['key']}: " + (f"error: {r['error']}" if not r.get("ok") else
                f"epochs to target {'not reached' if ett is None else f'{ett:.2f}'}, final test acc "
                f"{r['final_test_acc']:.4f}, {r.get('sec_per_epoch') or 0:.1f} s/epoch"))

        if jobs > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for r in pool.map(_one_run, todo):
                    record(r)
        else:
            for j in todo:
                record(_one_run(j))

    # ---- 1. tuning --------------------------------------------------------------------------------------
    tune_epochs = cfg.tune.epochs or cfg.train.epochs
    tune_jobs = [make_job("tune", e, lr, cfg.tune.seed, tune_data, tune_epochs, cfg.target_accuracy)
                 for e in cfg.optimizers if len(e.lr_grid) > 1 for lr in e.lr_grid]
    if tune_jobs:
        log(f"[compare {cfg.name}] tuning {len(tune_jobs)} runs on "
            f"{'a validation split' if cfg.tune.split == 'validation' else 'the test set'} (seed {cfg.tune.seed})")
    execute(tune_jobs)
    best_lr, tuning = {}, {}
    for e in cfg.optimizers:
        if len(e.lr_grid) <= 1:
            best_lr[e.label] = float(e.lr_grid[0]) if e.lr_grid else float(e.optimizer.lr)
            continue
        rows = [done[_run_key("tune", e.label, float(lr), cfg.tune.seed)] for lr in e.lr_grid]
        tuning[e.label] = [{"lr": r["lr"], "epochs_to_target": r["epochs_to_target"],
                            "final_acc": r["final_test_acc"], "ok": r.get("ok", False)} for r in rows]
        ok = [r for r in rows if r.get("ok")]
        if not ok:
            best_lr[e.label] = float(e.lr_grid[0])
            continue
        best = min(ok, key=lambda r: (r["epochs_to_target"] is None, r["epochs_to_target"] or 0.0,
                                      -(r["final_test_acc"] or 0.0)))
        best_lr[e.label] = float(best["lr"])
    log(f"[compare {cfg.name}] learning rates: " + ", ".join(f"{k} {v:g}" for k, v in best_lr.items()))

    # ---- 2. final runs ----------------------------------------------------------------------------------
    final_jobs = [make_job("final", e, best_lr[e.label], s, (train_set, test_set), cfg.train.epochs,
                           cfg.train.stop_at_accuracy) for e in cfg.optimizers for s in cfg.seeds]
    execute(final_jobs)

    # ---- 3. summary -------------------------------------------------------------------------------------
    summary = {"name": cfg.name, "dataset": train_set.label, "synthetic": train_set.synthetic,
               "n_train": len(train_set), "n_test": len(test_set), "target_accuracy": cfg.target_accuracy,
               "seeds": list(cfg.seeds), "max_epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
               "evals_per_epoch": cfg.train.evals_per_epoch, "tuning_split": cfg.tune.split,
               "optimizers": {}, "config": cfg.to_dict()}
    for e in cfg.optimizers:
        runs = [done[_run_key("final", e.label, best_lr[e.label], int(s))] for s in cfg.seeds]
        ett = [r.get("epochs_to_target") for r in runs]
        m, sd = _mean_std(ett)
        fm, fsd = _mean_std([r.get("final_test_acc") for r in runs])
        spe, _ = _mean_std([r.get("sec_per_epoch") for r in runs])
        entry = {"lr": best_lr[e.label], "optimizer": dataclasses.asdict(e.optimizer) | {"lr": best_lr[e.label]},
                 "epochs_to_target": ett, "epochs_mean": m, "epochs_std": sd,
                 "reached": sum(x is not None for x in ett), "runs": len(runs), "final_acc_mean": fm,
                 "final_acc_std": fsd, "sec_per_epoch": spe, "errors": [r["error"] for r in runs if not r.get("ok")],
                 "tuning": tuning.get(e.label, []),
                 "curves": [[(h["epoch"], h["test_acc"]) for h in r.get("history", [])] for r in runs]}
        stats = [r.get("optimizer_stats", {}) for r in runs]
        if any("solver" in s for s in stats):
            entry["solver_stats"] = [s.get("solver") for s in stats]
            entry["fallbacks"] = [s.get("fallbacks") for s in stats]
        hardware = [r.get("hardware") for r in runs]
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

    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=_json_default))
    md = markdown_table(summary)
    (out / "results.md").write_text(md)
    try:
        plot_compare(summary, out / "compare.png")
    except Exception as exc:  # a figure problem must not lose the study
        log(f"[compare {cfg.name}] figure failed: {exc}")
    log(md)
    log(f"[compare {cfg.name}] wrote {out / 'results.md'}, {out / 'summary.json'}, {out / 'compare.png'}")
    return summary


def _json_default(o):
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
