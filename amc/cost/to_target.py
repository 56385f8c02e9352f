"""Whole training runs priced to a target: the digital work around the preconditioner, and a study's epochs.

A K-FAC training step is forward + backward + the factor statistics (with an extra backward pass for the G factors,
labels sampled from the model: training/optimizers.py) + the preconditioner. Everything but the preconditioner runs
on the same digital baseline in both runs (analog and all-digital); the preconditioner is the analog arrays in one
and the digital baseline in the other. Energy to target = epochs to target x steps per epoch x per-step energy;
the Amdahl share is the preconditioner's part of the step.

Study records are the sweep engine's (workflow/training_adapter.py): ``metrics.epochs_to_target`` (NaN when missed),
``metrics.steps``, the run's ``hardware`` account (INV settles, programmings, ``loop_lambda_min_by_size``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from amc.errors import InputError


@dataclass(frozen=True)
class CnnShape:
    """The letter CNN of training/model.py: conv k x k C_in -> C (bias), max-pool P, linear -> classes (bias)."""

    channels: int = 7
    pool: int = 8
    kernel: int = 5
    classes: int = 13
    image: int = 28
    in_channels: int = 1
    batch: int = 64

    def gemms(self) -> dict:
        """The step's matrix products (m, k, n) by part (m k n MACs each; pooling, activations and the loss are
        elementwise and left out). Backward: weight gradients of both layers and the input gradient of the linear
        layer (the conv layer's input needs none); the G statistics need one more backward pass with sampled labels.
        Statistics: A = a a^T over every sample and position, G = g g^T likewise (conv by im2col)."""
        positions = (self.image - self.kernel + 1) ** 2
        if positions % self.pool ** 2 and (self.image - self.kernel + 1) % self.pool:
            raise InputError(f"conv output {self.image - self.kernel + 1} is not a multiple of pool {self.pool}")
        conv_in = self.in_channels * self.kernel ** 2 + 1
        fc_in = self.channels * (positions // self.pool ** 2) + 1
        b, bp, c, k = self.batch, self.batch * positions, self.channels, self.classes
        backward = [(conv_in, bp, c), (fc_in, b, k), (b, k, fc_in)]
        return {"forward": [(bp, conv_in, c), (b, fc_in, k)], "backward": backward, "sampled backward": backward,
                "factor statistics": [(conv_in, bp, conv_in), (c, bp, c), (fc_in, b, fc_in), (k, b, k)]}

    def step_macs(self) -> dict:
        return {part: float(sum(m * k * n for m, k, n in mats)) for part, mats in self.gemms().items()}


@dataclass(frozen=True)
class LayeredCnnShape:
    """A stack of conv stages (conv k x k -> ReLU -> max-pool, bias) then linear layers (bias): training/cnn.py's
    LayeredCNN. ``stages``: (C_out, kernel, pool) per conv; ``hidden``: widths of the hidden linear layers.
    ``cnn4()`` is the ledger's 4-layer CNN (amc.cost.workloads.cnn4)."""

    stages: tuple = ((32, 5, 2), (64, 5, 2))
    hidden: tuple = (128,)
    classes: int = 13
    image: int = 28
    in_channels: int = 1
    batch: int = 64

    @classmethod
    def cnn4(cls, classes: int = 13, batch: int = 64) -> "LayeredCnnShape":
        return cls(classes=classes, batch=batch)

    def layers(self) -> list:
        """(A dim with bias, outputs, positions per sample) per layer, in order."""
        out, side, c_in = [], self.image, self.in_channels
        for c_out, k, pool in self.stages:
            conv_out = side - k + 1
            if conv_out <= 0 or conv_out % pool:
                raise InputError(f"conv output {conv_out} (input {side}, kernel {k}) is not a multiple of pool {pool}")
            out.append((c_in * k * k + 1, c_out, conv_out ** 2))
            side, c_in = conv_out // pool, c_out
        dims = [c_in * side * side, *self.hidden, self.classes]
        out += [(d_in + 1, d_out, 1) for d_in, d_out in zip(dims[:-1], dims[1:])]
        return out

    def gemms(self) -> dict:
        """The step's matrix products (m, k, n), as CnnShape.gemms: forward per layer; backward the weight gradient
        of every layer and the input gradient of every layer but the first (its input is the image); the sampled
        backward again; statistics A = a a^T and G = g g^T over every sample and position."""
        layers, b = self.layers(), self.batch
        forward = [(b * t, a, g) for a, g, t in layers]
        backward = [(a, b * t, g) for a, g, t in layers] + [(b * t, g, a - 1) for a, g, t in layers[1:]]
        stats = [m for a, g, t in layers for m in ((a, b * t, a), (g, b * t, g))]
        return {"forward": forward, "backward": backward, "sampled backward": backward, "factor statistics": stats}

    def step_macs(self) -> dict:
        return {part: float(sum(m * k * n for m, k, n in mats)) for part, mats in self.gemms().items()}


@dataclass
class StudyOutcome:
    """Epochs to target of the runs of one kind in a study, and what the analog runs measured."""

    epochs: list = field(default_factory=list)          # per reached run
    runs: int = 0
    steps_per_epoch: Optional[float] = None
    settles_per_step: Optional[float] = None
    programmings_per_step: Optional[float] = None
    lambda_by_size: dict = field(default_factory=dict)  # size -> geometric mean over runs

    @property
    def reached(self) -> int:
        return len(self.epochs)

    @property
    def mean_epochs(self) -> Optional[float]:
        return sum(self.epochs) / len(self.epochs) if self.epochs else None

    def describe(self) -> str:
        if not self.runs:
            return "no runs"
        if not self.epochs:
            return f"did not reach the target (0/{self.runs} runs)"
        sd = (sum((e - self.mean_epochs) ** 2 for e in self.epochs) / len(self.epochs)) ** 0.5
        return f"{self.mean_epochs:.2f} ± {sd:.2f} epochs to target ({self.reached}/{self.runs} runs)"


def read_study(directory) -> dict:
    """{"digital": StudyOutcome of the runs with exact (numpy) solves, "analog": of the circuit runs, "archs": the
    networks its runs trained} of a finished training sweep (records.jsonl). Raises InputError naming the problem."""
    path = Path(directory) / "records.jsonl"
    if not path.is_file():
        raise InputError(f"{directory}: no records.jsonl (is it a finished training sweep directory?)")
    out = {"digital": StudyOutcome(), "analog": StudyOutcome(), "archs": set()}
    logs: dict = {}
    counts: dict = {"analog": [], "digital": []}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path}:{number}: not a JSON record") from None
        if record.get("kind") != "training" or record.get("status") != "ok":
            continue
        metrics, hardware = record.get("metrics") or {}, record.get("hardware") or {}
        # the network trained (training/config.py model.arch); records written before it existed are the reference's
        out["archs"].add(str(metrics.get("model_arch", "reference")))
        kind = "analog" if hardware.get("inv_settles") else "digital"
        o = out[kind]
        o.runs += 1
        epochs, steps = metrics.get("epochs_to_target"), metrics.get("steps")
        if isinstance(epochs, (int, float)) and math.isfinite(epochs):
            o.epochs.append(float(epochs))
        if steps and metrics.get("epochs"):
            counts[kind].append((float(steps), float(metrics["epochs"]), hardware))
        for size, entry in (hardware.get("loop_lambda_min_by_size") or {}).items():
            logs.setdefault(int(size), []).append(math.log(entry["geomean"]))
    if not out["digital"].runs and not out["analog"].runs:
        raise InputError(f"{path}: no finished training records")
    for kind, rows in counts.items():
        if rows:
            steps = sum(r[0] for r in rows)
            out[kind].steps_per_epoch = steps / sum(r[1] for r in rows)
            if kind == "analog":
                out[kind].settles_per_step = sum(r[2].get("inv_settles", 0) for r in rows) / steps
                out[kind].programmings_per_step = sum(r[2].get("programmings", 0) for r in rows) / steps
    out["analog"].lambda_by_size = {n: math.exp(sum(v) / len(v)) for n, v in sorted(logs.items())}
    return out


def measure_cpu_rest(shape: CnnShape, repeats: int = 5, dtype=None) -> tuple[float, int]:
    """(best time s, BLAS threads) of the step's matrix products (``CnnShape.gemms``) in NumPy on this CPU
    (float32), the faster of every core and one core (as digital.measure_cpu_kfac)."""
    import os
    from amc.blas import with_blas_threads
    runs = [(with_blas_threads(n, lambda: _time_gemms(shape, repeats, dtype)), n)
            for n in sorted({os.cpu_count() or 1, 1}, reverse=True)]
    return min(runs)


def _time_gemms(shape: CnnShape, repeats: int, dtype) -> float:
    import time
    import numpy as np
    dtype = dtype or np.float32
    rng = np.random.default_rng(0)
    pairs = [(rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype))
             for mats in shape.gemms().values() for m, k, n in mats]
    for x, y in pairs:
        x @ y
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x, y in pairs:
            x @ y
        best = min(best, time.perf_counter() - t0)
    return best


def to_target(per_step_j: float, per_step_s: float, epochs: Optional[float], steps_per_epoch: float) -> dict:
    """Energy and time to target (None when the target was not reached)."""
    if epochs is None:
        return {"energy_to_target_j": None, "time_to_target_s": None, "epochs_to_target": None}
    steps = epochs * steps_per_epoch
    return {"energy_to_target_j": per_step_j * steps, "time_to_target_s": per_step_s * steps,
            "epochs_to_target": epochs}
