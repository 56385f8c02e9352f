"""An epochs-to-target study of optimisers, run on the sweep engine (the command: ``amc compare``).

Two sweeps of training points (``workflow.training_adapter``): the tuning sweep (every ``lr_grid`` value of
every entry with more than one, on seed ``tune.seed``, trained on the training set minus a stratified validation
split and scored on it; ``tune.split: test`` scores on the test set) and, once the best learning rates are known,
the final sweep (every entry at its best lr, every seed, full training set, test set). Both get the engine's
guarantees: one complete record per finished run appended to ``tune/records.jsonl`` and ``final/records.jsonl``
(an interrupted study resumes where it stopped), process or Dask executors, failure records, progress. The
summary, table and figure come from ``training.compare``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

from training.compare import json_default, markdown_table, plot_compare, reached_epochs, summarise
from training.config import CompareConfig

from .engine import run_sweep
from .spec import Point, Sweep
from .store import RECORDS, latest_by_id, read_records

TIMEOUT_S = 24 * 3600.0   # a training run is long; a stuck one is still recorded as failed, not waited on forever


def _point(cfg: CompareConfig, phase: str, entry, lr: float, seed: int, validation: Optional[dict],
           epochs: float, stop_at: Optional[float], index: int) -> Point:
    optimizer = entry.optimizer
    opt = {**_plain(optimizer), "lr": float(lr)}
    model = _plain(cfg.model)
    if model["arch"] == "reference":   # the point ids of studies written before model.arch existed stay valid
        del model["arch"]
    training = {"name": f"{cfg.name}-{phase}-{entry.label}", "data": _plain(cfg.data), "model": model,
                "optimizer": opt, "train": {**_plain(cfg.train), "seed": int(seed), "epochs": float(epochs),
                                            "stop_at_accuracy": stop_at, "progress": False, "checkpoint": False,
                                            "resume": False},
                "target_accuracy": cfg.target_accuracy}
    if validation is not None:
        training["validation"] = validation
    spec = {"training": training, "circuit": opt["solver"].get("circuit"), "seed": int(seed)}
    params = {"phase": phase, "label": entry.label, "lr": float(lr), "seed": int(seed)}
    ident = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Point(id=ident, kind="training", params=params, spec=spec, index=index)


def _plain(dc) -> dict:
    import dataclasses
    return json.loads(json.dumps(dataclasses.asdict(dc), default=str))


def _sweep(cfg: CompareConfig, phase: str, points: list[Point]) -> Sweep:
    return Sweep(name=f"{cfg.name}-{phase}", kind="training", path=None,
                 description=f"{cfg.name}: {phase} runs of the epochs-to-target comparison", points=points,
                 grid_keys=["label", "lr", "seed"], timeout_s=TIMEOUT_S, plots=None,
                 raw={"compare": cfg.to_dict(), "phase": phase})


def _records(out: Path) -> dict:
    records, _ = read_records(out / RECORDS)
    return latest_by_id(records)


def run_compare(cfg: CompareConfig, out_dir=None, progress: Optional[bool] = None, jobs: Optional[int] = None,
                log: Callable[[str], None] = print, executor: Optional[str] = None, scheduler=None) -> dict:
    from training.data import load_data
    out = Path(out_dir) if out_dir is not None else cfg.out_path
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs or cfg.jobs
    progress = cfg.train.progress if progress is None else progress
    executor = executor or ("process" if jobs > 1 else "serial")
    train_set, test_set = load_data(cfg.data)        # once, for the header: each run loads its own copy
    dataset = {"dataset": train_set.label, "synthetic": train_set.synthetic, "n_train": len(train_set),
               "n_test": len(test_set)}
    log(f"[compare {cfg.name}] data {train_set.label}: {len(train_set)} train / {len(test_set)} test, "
        f"{train_set.n_classes} classes; target {cfg.target_accuracy:.1%}; seeds {cfg.seeds}")

    # ---- 1. tuning ----------------------------------------------------------------------------------
    validation = ({"n_val": cfg.tune.n_val, "seed": cfg.tune.seed + 1000} if cfg.tune.split == "validation"
                  else None)
    tune_epochs = cfg.tune.epochs or cfg.train.epochs
    tune_points = [_point(cfg, "tune", e, lr, cfg.tune.seed, validation, tune_epochs, cfg.target_accuracy, i)
                   for i, (e, lr) in enumerate((e, lr) for e in cfg.optimizers if len(e.lr_grid) > 1
                                               for lr in e.lr_grid)]
    best_lr, tuning = {}, {}
    if tune_points:
        log(f"[compare {cfg.name}] tuning {len(tune_points)} runs on "
            f"{'a validation split' if validation else 'the test set'} (seed {cfg.tune.seed})")
        report = run_sweep(_sweep(cfg, "tune", tune_points), out / "tune", workers=jobs, executor=executor,
                           scheduler=scheduler, progress=progress, plot=False)
        log(f"[compare {cfg.name}] tuning: {report.summary()}")
    tuned = _records(out / "tune") if tune_points else {}
    for e in cfg.optimizers:
        if len(e.lr_grid) <= 1:
            best_lr[e.label] = float(e.lr_grid[0]) if e.lr_grid else float(e.optimizer.lr)
            continue
        rows = [tuned.get(p.id) for p in tune_points if p.params["label"] == e.label]
        rows = [r for r in rows if r is not None]
        tuning[e.label] = [{"lr": r["params"]["lr"], "epochs_to_target": reached_epochs(r),
                            "final_acc": (r.get("metrics") or {}).get("final_test_accuracy"),
                            "ok": r.get("status") == "ok"} for r in rows]
        ok = [t for t in tuning[e.label] if t["ok"]]
        best = min(ok, key=lambda t: (t["epochs_to_target"] is None, t["epochs_to_target"] or 0.0,
                                      -(t["final_acc"] or 0.0))) if ok else None
        best_lr[e.label] = float(best["lr"]) if best else float(e.lr_grid[0])
    log(f"[compare {cfg.name}] learning rates: " + ", ".join(f"{k} {v:g}" for k, v in best_lr.items()))

    # ---- 2. final runs ------------------------------------------------------------------------------
    final_points = [_point(cfg, "final", e, best_lr[e.label], s, None, cfg.train.epochs, cfg.train.stop_at_accuracy,
                           i) for i, (e, s) in enumerate((e, s) for e in cfg.optimizers for s in cfg.seeds)]
    report = run_sweep(_sweep(cfg, "final", final_points), out / "final", workers=jobs, executor=executor,
                       scheduler=scheduler, progress=progress, plot=False)
    log(f"[compare {cfg.name}] final runs: {report.summary()}")
    final = _records(out / "final")
    runs = {e.label: [final[p.id] for p in final_points if p.params["label"] == e.label and p.id in final]
            for e in cfg.optimizers}

    # ---- 3. summary ---------------------------------------------------------------------------------
    summary = summarise(cfg, dataset, best_lr, tuning, runs)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=json_default))
    tmp.replace(out / "summary.json")
    md = markdown_table(summary)
    (out / "results.md").write_text(md)
    try:
        plot_compare(summary, out / "compare.png")
    except Exception as exc:  # a figure problem must not lose the study
        log(f"[compare {cfg.name}] figure failed: {exc}")
    log(md)
    log(f"[compare {cfg.name}] wrote {out / 'results.md'}, {out / 'summary.json'}, {out / 'compare.png'}")
    return summary
