"""Training points: a short training run (training/loop.py) with the sweep's circuit in the loop.

The point's ``training`` mapping is a training configuration (``training.config.Config``: name, data, model,
optimizer, train) plus the sweep key ``target_accuracy`` (for epochs-to-target). The solve method is spelt as in a
training config, ``training.optimizer.solver.method`` (e.g. ``{preset: hpinv-pcg, iterations: 3}``). The sweep's
circuit (``base.circuit`` and the ``device.* opamp.* ...`` keys) becomes ``optimizer.solver.circuit`` when
``optimizer.solver.backend`` is ``circuit`` (so writing ``training.optimizer.solver.circuit`` is an error: it
would have no effect); the sweep's ``seed`` becomes ``train.seed`` (weights, batches,
K-FAC label sampling) as well as the device seed. Runs write their metrics log to a temporary directory; the
record carries the learning curves, so a point needs nothing from the worker's disk (dask workers elsewhere).
"""
from __future__ import annotations

from amc.hw.counters import OperationCounts

import copy
import math
import shutil
import tempfile
from typing import Any, Mapping

from amc.errors import ConfigError

SWEEP_ONLY = ("target_accuracy",)
# Every training point runs quietly, from scratch, without checkpoints.
FORCED = {"progress": False, "checkpoint": False, "resume": False}


def _training():
    try:
        from training import config as tconfig, loop
    except ImportError as exc:
        raise ConfigError(f"training points need the training package (training/loop.py): {exc}") from None
    return tconfig, loop


def validate(spec: Mapping[str, Any], where: str) -> dict:
    """Normalised training mapping (all defaults filled in) or ConfigError naming the key."""
    tconfig, _ = _training()
    data = copy.deepcopy(dict(spec))
    target = data.pop("target_accuracy", None)
    if "circuit_method" in data:
        raise ConfigError(f"{where}: training.circuit_method is no longer read; write the method as "
                          "training.optimizer.solver.method (e.g. {preset: hpinv-pcg, iterations: 3})")
    solver = (data.get("optimizer") or {}).get("solver") or {}
    if isinstance(solver, Mapping) and "circuit" in solver:
        raise ConfigError(f"{where}: training.optimizer.solver.circuit has no effect in a sweep: the point's circuit "
                          "is base.circuit with the sweep's device.*/opamp.* keys")
    if target is not None:
        try:
            target = float(target)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: training.target_accuracy must be a number in (0, 1], got {target!r}") from None
        if not 0 < target <= 1:
            raise ConfigError(f"{where}: training.target_accuracy must be in (0, 1], got {target}")
    try:
        cfg = tconfig.config_from_dict(data, source=where)
    except tconfig.ConfigError as exc:
        message = str(exc)
        # name keys as the sweep file spells them (training.optimizer.lr)
        raise ConfigError(message.replace("unknown key '", "unknown key 'training.")) from None
    out = cfg.to_dict()
    out["train"].update(FORCED)
    out["target_accuracy"] = target
    return out


def optimizer_label(opt: Mapping[str, Any]) -> str:
    """'sgd-momentum', 'adam', 'kfac-exact' or 'kfac-circuit <dataflow>' (the method's own label)."""
    name = opt["name"]
    if name == "sgd" and opt.get("momentum"):
        name = "sgd-momentum"
    if name == "kfac":
        solver = opt.get("solver", {})
        if solver.get("backend") != "circuit":
            return "kfac-exact"
        from amc.methods import method_config
        name = f"kfac-circuit {method_config(solver.get('method'), {}).label}"
    return name


def run(spec: Mapping[str, Any]) -> tuple[dict, dict]:
    """Run the training of one point; return (metrics, extra record fields: curves)."""
    tconfig, loop = _training()
    from training.compare import epochs_to_target

    data = copy.deepcopy(dict(spec["training"]))
    target = data.pop("target_accuracy", None)
    # Compare studies tune on a stratified validation split carved from the training set ({n_val, seed}).
    validation = data.pop("validation", None)
    if data["optimizer"]["solver"]["backend"] == "circuit" and spec.get("circuit") is not None:
        data["optimizer"]["solver"]["circuit"] = copy.deepcopy(spec["circuit"])
    if spec.get("seed") is not None:
        data["train"]["seed"] = int(spec["seed"])
    cfg = tconfig.config_from_dict(data, source="training point")
    split = None
    if validation is not None:
        from training.data import load_data, stratified_split
        train_set, _ = load_data(cfg.data)
        tr_idx, va_idx = stratified_split(train_set.y, len(train_set) - int(validation["n_val"]),
                                          int(validation["n_val"]), seed=int(validation["seed"]))
        split = (train_set.subset(tr_idx), train_set.subset(va_idx, name=train_set.name + "-validation"))
    tmp = tempfile.mkdtemp(prefix="amc-train-")
    try:
        result = loop.train(cfg, data=split, out_dir=tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    history = result.history
    accs = [h["test_acc"] for h in history]
    metrics: dict[str, Any] = {
        "optimizer": optimizer_label(data["optimizer"]),
        "lr": cfg.optimizer.lr,
        "final_test_accuracy": accs[-1] if accs else None,
        "best_test_accuracy": max(accs) if accs else None,
        "final_train_loss": history[-1].get("train_loss") if history else None,
        "epochs": history[-1]["epoch"] if history else 0,
        "steps": result.steps,
        "stopped": result.stopped,
        "train_time_s": history[-1].get("train_time_s") if history else None,
        "model_arch": cfg.model.arch,     # the cost ledger refuses to price a study of another network
    }
    if target is not None:
        metrics["target_accuracy"] = target
        reached = epochs_to_target(history, target)
        metrics["epochs_to_target"] = reached if reached is not None else math.nan
    stats = result.optimizer_stats or {}
    solver = stats.get("solver") or {}
    for key in ("solves", "rhs_columns", "failures", "exceptions", "saturation_events", "rel_err_mean",
                "rel_err_max", "residual_mean", "residual_max"):
        if key in solver:
            metrics[f"solver_{key}"] = solver[key]
    for key in ("fallbacks", "inverse_updates"):
        if key in stats:
            metrics[key] = stats[key]
    hardware = history[-1].get("hardware") if history else None
    if hardware:
        from training.report import fallback_mark
        for key in ("inv_settles", "mvm_reads", "programmings", "cells_programmed", "conversions", "ngspice_runs",
                    "digital_flops", "fallbacks", "fallback_fraction", "analog_error_mean", "analog_error_max",
                    "programmings_verified", "programmings_restamped",
                    "final_error_mean", "bias_error_mean", "device_error_mean", "step_cosine_mean", "step_cosine_min"):
            metrics[f"hw_{key}"] = hardware.get(key)
        for key, value in (hardware.get("clipping") or {}).items():
            metrics[f"hw_clipping_{key}"] = value
        for key, value in (hardware.get("controller") or {}).items():
            metrics[f"hw_controller_{key}"] = value
        metrics["hw_method"] = hardware.get("method")
        metrics["fallback_mark"] = fallback_mark(hardware)
        steps = max(result.steps, 1)
        for key in ("inv_settles", "mvm_reads", "digital_flops"):
            metrics[f"hw_{key}_per_step"] = hardware.get(key, 0) / steps
        from amc.record_schema import COUNT_FIELDS, operation_metrics
        sizes = [int(k) for k in (solver.get("sizes") or {})]
        counts = OperationCounts(**{k: hardware.get(k, 0) for k in COUNT_FIELDS})
        metrics.update(operation_metrics(counts, max(sizes) if sizes else 1))
        cost = hardware.get("cost") or {}
        if "energy_j" in cost:
            metrics["cost_time_s_per_step"] = cost["time_s"] / steps
            metrics["cost_energy_j_per_step"] = cost["energy_j"] / steps
            for part, joules in cost["breakdown"].items():
                metrics[f"cost_energy_j_per_step.{part}"] = joules / steps
    curves = {"epoch": [h["epoch"] for h in history], "test_accuracy": accs,
              "train_loss": [h.get("train_loss") for h in history]}
    return metrics, {"curves": curves, "hardware": hardware}
