"""Training algorithms for weights that live in pulsed analog arrays (one layer's weight matrix each).

Every algorithm owns its arrays and exposes ``weights`` (what the layer computes with) and ``step(d, x, lr)``
for a gradient given as a sum of outer products G = d xᵀ (d: (m, B), x: (n, B)), or ``step_matrix(grad, lr)`` for a
gradient matrix (applied as rank-one cycles row-free: one cycle with d = 1 for a single-row layer, mean-field
otherwise).

- ``digital-sgd``  W ← W - lr·G in float64: the reference, no device.
- ``analog-sgd``   one tile, pulsed: W ← W ⊕ (-lr·G), ⊕ the device's response (Wu et al.'s Analog SGD).
- ``tiki-taka``    fast tile A ⊕ (-lr_fast·G) every step; every ``transfer_every`` steps ``columns_per_transfer``
                   columns of A are read through the periphery (one-hot forward reads) and pulsed into the slow
                   tile C with ``lr_transfer``; the layer uses W = γ·A + C (Gokmen & Haensch 2020; Wu et al. 2024's
                   analysis uses γ = 0, every column every step).
- ``c-ttv2``       chopped, buffered Tiki-Taka (Rasch et al., Nat. Commun. 2024 / arXiv 2303.04721): A ⊕ (-lr_fast·c·G)
                   with a chopper c = ±1 that flips every ``chop_every`` transfers; the read column, minus A's
                   reading recorded at the last flip (AGAD's on-the-fly reference from the same paper: it removes
                   what A held before the flip and A's symmetric-point offset), times c and lr_transfer, is
                   accumulated in a digital buffer H; whole multiples of C's step leave H as pulses into C.
                   ``chop_every: 0`` is TTv2 (buffer, no chopper, reference recorded once at the start).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from amc.errors import ConfigError
from amc.hw.counters import OperationCounts

ALGORITHMS = ("digital-sgd", "analog-sgd", "tiki-taka", "c-ttv2")


class DigitalSGD:
    name = "digital-sgd"

    def __init__(self, shape: tuple, w0: float = 0.0):
        self.w = np.full(shape, float(w0))
        self.counts = OperationCounts()

    @property
    def weights(self) -> np.ndarray:
        return self.w

    def step_matrix(self, grad: np.ndarray, lr: float) -> None:
        self.w -= lr * grad
        self.counts.add(digital_flops=2 * grad.size)


def _apply(tile, grad: np.ndarray, lr: float) -> None:
    """ΔW = -lr·grad on a tile: one rank-one pulse cycle for a single-row layer, the mean field otherwise."""
    array = tile.array
    if array.mode == "pulsed":
        if grad.shape[0] != 1:
            raise ConfigError("a gradient matrix with several rows cannot be one pulse cycle: pass its outer "
                              "products to step(d, x, lr)")
        array.update(np.ones(1), grad[0], -lr)
    else:
        array.apply_mean_field(-lr * grad)


class AnalogSGD:
    name = "analog-sgd"

    def __init__(self, tile):
        self.tile = tile

    @property
    def weights(self) -> np.ndarray:
        return self.tile.array.weights

    @property
    def counts(self) -> OperationCounts:
        return self.tile.counts

    def step_matrix(self, grad: np.ndarray, lr: float) -> None:
        _apply(self.tile, grad, lr)

    def step(self, d: np.ndarray, x: np.ndarray, lr: float) -> None:
        self.tile.array.update_batch(d, x, -lr)


class TikiTaka:
    name = "tiki-taka"

    def __init__(self, fast, slow, lr_fast: Optional[float] = None, lr_transfer: float = 1.0, gamma: float = 0.0,
                 transfer_every: int = 1, columns_per_transfer: Optional[int] = None, scale_with_lr: bool = True):
        self.a, self.c = fast, slow
        self.lr_fast, self.lr_transfer = lr_fast, lr_transfer
        self.gamma = float(gamma)
        if isinstance(transfer_every, bool) or not isinstance(transfer_every, int) or transfer_every < 1:
            raise ConfigError(f"transfer_every must be a positive integer, got {transfer_every!r}")
        self.transfer_every = transfer_every
        n = fast.array.shape[1]
        self.columns_per_transfer = n if columns_per_transfer is None else int(columns_per_transfer)
        if not 1 <= self.columns_per_transfer <= n:
            raise ConfigError(f"columns_per_transfer must be in 1..{n}, got {columns_per_transfer!r}")
        self.scale_with_lr = bool(scale_with_lr)
        self._step = 0
        self._next_column = 0

    @property
    def weights(self) -> np.ndarray:
        w = self.c.array.weights
        return w + self.gamma * self.a.array.weights if self.gamma else w

    @property
    def counts(self) -> OperationCounts:
        return self.a.counts + self.c.counts

    def _rates(self, lr: float) -> tuple[float, float]:
        fast = lr if self.lr_fast is None else self.lr_fast
        transfer = self.lr_transfer * lr if self.scale_with_lr else self.lr_transfer
        return fast, transfer

    def step_matrix(self, grad: np.ndarray, lr: float) -> None:
        fast, transfer = self._rates(lr)
        _apply(self.a, grad, fast)
        self._after_update(transfer)

    def step(self, d: np.ndarray, x: np.ndarray, lr: float) -> None:
        fast, transfer = self._rates(lr)
        self.a.array.update_batch(d, x, -fast)
        self._after_update(transfer)

    def _columns(self) -> np.ndarray:
        n = self.a.array.shape[1]
        if self.columns_per_transfer == n:
            if getattr(self, "_all", None) is None:
                self._all = np.arange(n)
            return self._all
        cols = (self._next_column + np.arange(self.columns_per_transfer)) % n
        self._next_column = int((cols[-1] + 1) % n)
        return cols

    def _after_update(self, transfer: float) -> None:
        self._step += 1
        if self._step % self.transfer_every:
            return
        cols = self._columns()
        read = self.a.read_columns(cols)                    # (m, k): A's columns through the periphery
        self._transfer(cols, read, transfer)

    def _transfer(self, cols: np.ndarray, read: np.ndarray, transfer: float) -> None:
        array = self.c.array
        m, n = array.shape
        if array.mode == "mean-field":
            delta = np.zeros((m, n))
            delta[:, cols] = transfer * read
            array.apply_mean_field(delta)
            return
        for k, j in enumerate(cols):            # one pulse cycle per column: C[:, j] ⊕ transfer·read
            e = np.zeros(n)
            e[j] = 1.0
            array.update(read[:, k], e, transfer)


class ChoppedTikiTaka(TikiTaka):
    name = "c-ttv2"

    def __init__(self, fast, slow, chop_every: int = 1, buffer_threshold: float = 1.0, **kwargs):
        super().__init__(fast, slow, **kwargs)
        if isinstance(chop_every, bool) or not isinstance(chop_every, int) or chop_every < 0:
            raise ConfigError(f"chop_every must be a non-negative integer (0: no chopper), got {chop_every!r}")
        if not buffer_threshold > 0:
            raise ConfigError(f"buffer_threshold must be positive (in steps of the slow tile), got {buffer_threshold!r}")
        self.chop_every = chop_every
        self.buffer_threshold = float(buffer_threshold)
        self.buffer = np.zeros(slow.array.shape)
        self.chopper = 1.0
        self._transfers = 0
        self.reference = None

    def step_matrix(self, grad: np.ndarray, lr: float) -> None:
        fast, transfer = self._rates(lr)
        _apply(self.a, grad, fast * self.chopper)
        self._after_update(transfer)

    def step(self, d: np.ndarray, x: np.ndarray, lr: float) -> None:
        fast, transfer = self._rates(lr)
        self.a.array.update_batch(d, x, -fast * self.chopper)
        self._after_update(transfer)

    def _transfer(self, cols: np.ndarray, read: np.ndarray, transfer: float) -> None:
        array = self.c.array
        step = array.device.step
        if self.reference is None:
            self.reference = self.a.read_columns(range(self.a.array.shape[1]))
        self.buffer[:, cols] += transfer * self.chopper * (read - self.reference[:, cols])
        self.c.counts.add(digital_flops=2 * read.size)
        whole = np.trunc(self.buffer[:, cols] / (self.buffer_threshold * step)) * self.buffer_threshold
        if np.any(whole):
            self.buffer[:, cols] -= whole * step
            counts = np.zeros(array.shape, dtype=np.int64)
            sign = np.ones(array.shape)
            counts[:, cols] = np.abs(whole).astype(np.int64)
            sign[:, cols] = np.where(whole < 0, -1.0, 1.0)
            if array.mode == "mean-field":
                array.apply_mean_field(np.where(counts > 0, sign * counts * step, 0.0))
            else:
                array.w = array.cells.apply_pulses(array.w, counts, sign, array.rng)
                # deterministic trains, one column at a time: each row line carries its cell's pulses, the
                # column line the longest of them
                array.counts.add(update_cycles=len(cols), cell_pulses=int(counts.sum()),
                                 driver_pulses=int(counts.sum() + counts[:, cols].max(axis=0).sum()))
        self._transfers += 1
        if self.chop_every and self._transfers % self.chop_every == 0:
            self.chopper = -self.chopper
            self.reference = self.a.read_columns(range(self.a.array.shape[1]))
