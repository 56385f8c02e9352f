"""Training loop: epochs, evaluation every 1/evals_per_epoch epoch, JSON Lines metrics, resumable checkpoints.

``train(cfg, data=None, solver=None) -> TrainResult``

- Metrics: ``<out_dir>/metrics.jsonl``, one complete JSON object per line, flushed after each write. Events:
  ``start`` (config, data set, model), ``eval`` (step, epoch, loss = mean batch loss since the previous eval,
  train_loss/train_acc on a fixed training subset, test_loss/test_acc, wall_time_s, train_time_s, solver
  stats when present), ``resume``, ``error``, ``end``.
- Checkpoint: ``<out_dir>/checkpoint.npz`` (params, optimiser state, step, times) at every evaluation, written
  atomically (temp file + ``os.replace``). Everything random is a function of (seed, epoch) or (seed, step),
  so a resumed run continues exactly as an uninterrupted one.
- A non-finite loss, gradient or parameter stops the run with ``TrainingError`` naming the step and cause;
  the log stays parseable and the last good checkpoint stays in place.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from amc.blas import limit_blas_threads
from amc.errors import AmcError
from .config import Config
from .data import Dataset, load_data
from .model import build_model
from .optimizers import SolverStop, make_optimizer

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
# config keys that may change between a checkpoint and its resumption
_RESUME_FREE = {"train.epochs", "train.progress", "train.resume", "train.max_steps", "train.stop_at_accuracy",
                "train.out_dir", "name"}


class TrainingError(AmcError, RuntimeError):
    """Training stopped: non-finite values (message names the step and cause), solver stop, bad checkpoint."""


@dataclass
class TrainResult:
    history: list                      # eval records, in order
    params: dict
    stopped: str                       # completed | target | max_steps
    out_dir: Path
    steps: int
    steps_per_epoch: int
    optimizer_stats: dict = field(default_factory=dict)

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


class JsonlLog:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(_plain(record), allow_nan=False, default=str) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def read_log(path, allow_partial_last: bool = False) -> list[dict]:
    """All records of a metrics log; a damaged line raises TrainingError naming it.

    ``allow_partial_last``: a last line cut short (no newline: the process died mid-write) is dropped.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            if allow_partial_last and number == len(lines) and not line.endswith("\n"):
                break
            raise TrainingError(f"{path}: line {number} is damaged ({exc}); repair or delete that line, or start "
                                f"over with --fresh (train.resume=false)") from None
        records.append(record)
    return records


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


# ---- checkpoints ---------------------------------------------------------------------------------------------
def _flatten(tree: dict, prefix: str, out: dict) -> dict:
    for k, v in tree.items():
        key = f"{prefix}/{k}"
        if isinstance(v, dict):
            out[key + "/"] = np.zeros(0)       # marks a (possibly empty) sub-dict
            _flatten(v, key, out)
        else:
            out[key] = np.asarray(v)
    return out


def _unflatten(arrays: dict, prefix: str) -> dict:
    tree: dict = {}
    for key in sorted(arrays):
        if not key.startswith(prefix + "/"):
            continue
        parts = key[len(prefix) + 1:].split("/")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if parts[-1] == "":
            continue
        v = arrays[key]
        node[parts[-1]] = v.item() if v.ndim == 0 else v
    return tree


def save_checkpoint(path: Path, params: dict, opt_state: dict, meta: dict) -> None:
    arrays = _flatten(params, "params", {})
    _flatten(opt_state, "opt", arrays)
    arrays["meta"] = np.array(json.dumps(_plain(meta)))
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A full disk or Ctrl-C mid-write: the last good checkpoint stays and no partial file is left behind.
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path) -> tuple[dict, dict, dict]:
    """(params, optimiser state, meta) from a checkpoint written by ``save_checkpoint``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise TrainingError(f"{path}: cannot read checkpoint ({exc})") from None
    meta = json.loads(str(arrays.pop("meta")))
    return _unflatten(arrays, "params"), _unflatten(arrays, "opt"), meta


def _flat_cfg(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat_cfg(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ---- the loop ------------------------------------------------------------------------------------------------
def eval_steps(steps_per_epoch: int, evals_per_epoch: int) -> list[int]:
    """Steps within an epoch (1-based counts) after which to evaluate."""
    return sorted({max(1, math.floor(k * steps_per_epoch / evals_per_epoch + 0.5)) for k in range(1, evals_per_epoch + 1)})


def train(cfg: Config, data: Optional[tuple[Dataset, Dataset]] = None, solver=None, out_dir=None,
          log_name: str = METRICS) -> TrainResult:
    """Train ``cfg`` (see ``training.config.Config``); ``data`` = (train, test) skips loading; ``solver`` is
    injected into K-FAC (default: from ``cfg.optimizer.solver``)."""
    limit_blas_threads()
    t_start = time.perf_counter()
    tc = cfg.train
    out = Path(out_dir) if out_dir is not None else cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / CHECKPOINT, out / log_name
    train_set, test_set = data if data is not None else load_data(cfg.data)

    try:
        model = build_model(cfg.model, n_classes=max(train_set.n_classes, test_set.n_classes),
                            image_size=train_set.x.shape[1])
    except ValueError as exc:  # data of another image size than the 28 x 28 the config check assumes
        raise TrainingError(f"model settings do not fit the data: {exc}") from None
    opt = make_optimizer(cfg.optimizer, layers=model.layers, solver=solver, seed=tc.seed)
    n = len(train_set)
    spe = math.ceil(n / tc.batch_size)
    total = max(1, math.ceil(tc.epochs * spe))
    if tc.max_steps is not None:
        total = min(total, tc.max_steps)
    ev_in_epoch = eval_steps(spe, tc.evals_per_epoch)
    rng_sub = np.random.default_rng([tc.seed, 99])
    sub = (np.arange(n) if not tc.train_eval_size or tc.train_eval_size >= n
           else np.sort(rng_sub.choice(n, tc.train_eval_size, replace=False)))
    cfg_dict = cfg.to_dict()

    params, state, step, train_time, history = None, None, 0, 0.0, []
    if tc.resume and ckpt_path.exists():
        params, state, meta = load_checkpoint(ckpt_path)
        old, new = _flat_cfg(meta.get("config", {})), _flat_cfg(json.loads(json.dumps(_plain(cfg_dict))))
        old.setdefault("model.arch", "reference")   # checkpoints written before model.arch existed
        diff = sorted(k for k in set(old) | set(new) if k not in _RESUME_FREE and old.get(k) != new.get(k))
        if diff:
            raise TrainingError(f"{ckpt_path}: written by a different configuration (differs in {', '.join(diff)}); "
                                f"start over with --fresh (train.resume=false), or use another --out")
        step, train_time = int(meta["step"]), float(meta["train_time_s"])
        if meta.get("hardware") and hasattr(opt, "restore_hardware"):
            opt.restore_hardware(meta["hardware"], state)
        if log_path.exists():   # drop records written after the checkpoint (a crash between log and checkpoint)
            if not log_path.read_bytes().endswith(b"\n") and log_path.stat().st_size:
                print(f"note: {log_path}: removed a partial last line left by an interrupted run", file=sys.stderr)
            keep = [r for r in read_log(log_path, allow_partial_last=True)
                    if r.get("step", -1) <= step and r.get("event") != "error"]
            tmp = log_path.with_name(log_path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
            os.replace(tmp, log_path)
            history = [r for r in keep if r.get("event") == "eval"]
    else:
        for p in (ckpt_path, log_path):
            if p.exists():
                p.unlink()
        params = model.init_params(tc.seed)
        state = opt.init(params)

    log = JsonlLog(log_path)
    base = {"dataset": train_set.label, "synthetic": train_set.synthetic, "optimizer": cfg.optimizer.name,
            "lr": cfg.optimizer.lr, "seed": tc.seed}
    if step == 0:
        log.write({"event": "start", **base, "config": cfg_dict, "model": repr(model), "n_train": n,
                   "n_test": len(test_set), "steps_per_epoch": spe, "total_steps": total,
                   "optimizer_detail": opt.describe() if hasattr(opt, "describe") else opt.name})
    else:
        log.write({"event": "resume", **base, "step": step, "epoch": step / spe})

    def evaluate(step_now: int, running: list) -> dict:
        t0 = time.perf_counter()
        tr_loss, tr_acc = model.evaluate(params, train_set.x[sub], train_set.y[sub])
        te_loss, te_acc = model.evaluate(params, test_set.x, test_set.y)
        rec = {"event": "eval", **base, "step": step_now, "epoch": round(step_now / spe, 6),
               "loss": float(np.mean(running)) if running else tr_loss, "train_loss": tr_loss,
               "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc,
               "wall_time_s": time.perf_counter() - t_start, "train_time_s": train_time,
               "eval_time_s": time.perf_counter() - t0}
        st = opt.stats(state)
        if st:
            rec["optimizer_stats"] = st
        hw = opt.hardware(state)
        if hw is not None:
            rec["hardware"] = hw
        return rec

    def checkpoint(step_now: int) -> None:
        if tc.checkpoint:
            save_checkpoint(ckpt_path, params, state, {"step": step_now, "train_time_s": train_time,
                                                       "config": cfg_dict,
                                                       "hardware": opt.hardware(state)})

    stopped = "completed"
    try:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=step, disable=not tc.progress, desc=f"{cfg.name} [{train_set.label}]",
                   unit="step", leave=False)
        if step == 0:
            rec = evaluate(0, [])
            history.append(rec)
            log.write(rec)
            checkpoint(0)
        running: list = []
        perm, perm_epoch = None, -1
        while step < total:
            epoch, k = divmod(step, spe)
            if epoch != perm_epoch:
                perm, perm_epoch = np.random.default_rng([tc.seed, epoch, 7]).permutation(n), epoch
            idx = perm[k * tc.batch_size:(k + 1) * tc.batch_size]
            t0 = time.perf_counter()
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss, grads, cache = model.loss_and_grads(params, train_set.x[idx], train_set.y[idx])
            where = f"step {step} (epoch {step / spe:.3f})"
            if not math.isfinite(loss):
                raise TrainingError(f"non-finite training loss ({loss}) at {where}: the parameters or the data hold "
                                    f"non-finite values or the logits overflowed (lr {cfg.optimizer.lr:g} too "
                                    f"large?)")
            bad = [key for key, g in grads.items() if not np.all(np.isfinite(g))]
            if bad:
                raise TrainingError(f"non-finite gradient of {', '.join(bad)} at {where}")
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    new_params, state = opt.step(params, grads, state, model=model, cache=cache)
            except SolverStop as exc:
                raise TrainingError(f"solver failure at {where}: {exc}") from None
            except np.linalg.LinAlgError as exc:
                raise TrainingError(f"linear algebra failure at {where}: {exc}") from None
            bad = [key for key, p in new_params.items() if not np.all(np.isfinite(p))]
            if bad:
                raise TrainingError(f"non-finite parameters {', '.join(bad)} after the {cfg.optimizer.name} update "
                                    f"at {where} (lr {cfg.optimizer.lr:g} too large or a solver returned "
                                    f"non-finite values)")
            params = new_params
            train_time += time.perf_counter() - t0
            running.append(loss)
            step += 1
            bar.update(1)
            if (step % spe) in {e % spe for e in ev_in_epoch} or step == total:
                rec = evaluate(step, running)
                running = []
                history.append(rec)
                log.write(rec)
                checkpoint(step)
                postfix = dict(loss=f"{rec['loss']:.3f}", test=f"{rec['test_acc']:.3f}")
                hw = rec.get("hardware")
                if hw and hw["fallbacks"]:
                    postfix["FALLBACKS"] = f"{hw['fallbacks']}/{hw['solves']}"
                bar.set_postfix(**postfix)
                if tc.stop_at_accuracy is not None and rec["test_acc"] >= tc.stop_at_accuracy:
                    stopped = "target"
                    break
        if stopped == "completed" and tc.max_steps is not None and step >= tc.max_steps \
                and step < math.ceil(tc.epochs * spe):
            stopped = "max_steps"
        bar.close()
        end = {"event": "end", **base, "step": step, "epoch": step / spe, "stopped": stopped,
               "wall_time_s": time.perf_counter() - t_start, "train_time_s": train_time}
        hw = opt.hardware(state)
        if hw is not None:
            end["hardware"] = hw
        log.write(end)
    except TrainingError as exc:
        try:
            log.write({"event": "error", **base, "step": step, "epoch": step / spe, "message": str(exc)})
        except OSError:
            pass  # the disk that cannot take this record is reported by the error itself
        raise
    finally:
        log.close()
    return TrainResult(history, params, stopped, out, step, spe, opt.stats(state))
