"""One K-FAC layer's factors and their preconditioning, in float64 NumPy (no torch here).

A ``KFACLayer`` holds the running Kronecker factors of one layer (A over its inputs, with the homogeneous bias
coordinate when the layer has a bias; G over its pre-activation gradients), forms the damped factors that a circuit
programs at an inverse update, and applies G_d^-1 dW A_d^-1 by two (block) solves through a ``solve(H, B, what)``
callable. The conventions are the NumPy loop's (``training.optimizers.KFAC``), so both give the same update:

    A_new = sum a a^T / rows          rows: samples x positions (conv) -- mean over samples and positions
    G_new = sum g g^T / samples       sum over positions, mean over samples (KFC, Grosse & Martens 2016)
    A <- eps A + (1 - eps) A_new      eps: see ``decay`` (running mean, then the EMA; Martens & Grosse 2015 sec. 5)
    pi = sqrt((tr A / dim A) / (tr G / dim G)); A_d = A + pi sqrt(lambda) I, G_d = G + sqrt(lambda)/pi I
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np


def decay(k: int, factor_decay: float, warmup: bool) -> float:
    """Weight of the old factor at the k-th (1-based) factor update: 0 at the first; with ``warmup`` a plain running
    mean while 1 - 1/k < factor_decay, then factor_decay (the NumPy loop's ``ema_warmup``)."""
    if k <= 1:
        return 0.0
    return min(1.0 - 1.0 / k, factor_decay) if warmup else factor_decay


def slices(sizes: Sequence[int]) -> list[slice]:
    edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class KFACLayer:
    """Factors, damped factors and preconditioning of one layer (weights as an (out, in[+1]) matrix)."""

    def __init__(self, name: str, in_dim: int, out_dim: int, bias: bool,
                 a_blocks: Optional[Sequence[int]] = None, g_blocks: Optional[Sequence[int]] = None):
        self.name, self.in_dim, self.out_dim, self.bias = name, int(in_dim), int(out_dim), bool(bias)
        self.a_dim = self.in_dim + (1 if bias else 0)
        self.a_blocks = slices(a_blocks or [self.a_dim])
        self.g_blocks = slices(g_blocks or [self.out_dim])
        if self.a_blocks[-1].stop != self.a_dim or self.g_blocks[-1].stop != self.out_dim:
            raise ValueError(f"{name}: blocks {a_blocks} / {g_blocks} do not cover A {self.a_dim} / G {out_dim}")
        self.A: Optional[np.ndarray] = None
        self.G: Optional[np.ndarray] = None
        self.Ad: Optional[np.ndarray] = None      # the damped factors: what the arrays hold until the next update
        self.Gd: Optional[np.ndarray] = None
        self.factor_updates = 0

    def __repr__(self) -> str:
        a = [s.stop - s.start for s in self.a_blocks]
        g = [s.stop - s.start for s in self.g_blocks]
        blocks = "" if len(a) == len(g) == 1 else f" (blocks A {a}, G {g})"
        return f"KFACLayer({self.name}: A {self.a_dim}x{self.a_dim}, G {self.out_dim}x{self.out_dim}{blocks})"

    def update_factors(self, A_new: np.ndarray, G_new: np.ndarray, eps: float) -> None:
        """Blend this batch's factors in with weight 1 - eps on the new ones."""
        if A_new.shape != (self.a_dim, self.a_dim) or G_new.shape != (self.out_dim, self.out_dim):
            raise ValueError(f"{self.name}: factor shapes {A_new.shape}, {G_new.shape} differ from "
                             f"({self.a_dim}, {self.a_dim}), ({self.out_dim}, {self.out_dim})")
        if eps == 0.0 or self.A is None:
            self.A, self.G = np.array(A_new, dtype=np.float64), np.array(G_new, dtype=np.float64)
        else:
            self.A = eps * self.A + (1 - eps) * A_new
            self.G = eps * self.G + (1 - eps) * G_new
        self.factor_updates += 1

    def damp(self, damping: float, pi_correction: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Form (and keep) the damped factors A_d, G_d: the matrices the solver programs at this inverse update."""
        if self.A is None:
            raise RuntimeError(f"{self.name}: no factors yet (no training forward/backward pass was recorded)")
        pi = 1.0
        if pi_correction:
            ta, tg = np.trace(self.A) / self.a_dim, np.trace(self.G) / self.out_dim
            if ta > 0 and tg > 0:
                pi = float(np.sqrt(ta / tg))
        r = np.sqrt(damping)
        self.Ad = self.A + pi * r * np.eye(self.a_dim)
        self.Gd = self.G + (r / pi) * np.eye(self.out_dim)
        return self.Ad, self.Gd

    def precondition(self, dW: np.ndarray, solve: Callable[[np.ndarray, np.ndarray, str], np.ndarray]) -> np.ndarray:
        """G_d^-1 dW A_d^-1 (dW: (out, in[+1])): A_d^-1 dW^T, then G_d^-1 of its transpose, block by block."""
        if self.Ad is None:
            raise RuntimeError(f"{self.name}: the damped factors were never formed (no inverse update yet)")
        dW = np.asarray(dW, dtype=np.float64)
        Y = np.empty((self.a_dim, self.out_dim))
        for s in self.a_blocks:
            Y[s] = solve(self.Ad[s, s], dW[:, s].T, f"{self.name} A block {s.start}:{s.stop}")
        V = np.empty_like(dW)
        for s in self.g_blocks:
            V[s] = solve(self.Gd[s, s], Y[:, s].T, f"{self.name} G block {s.start}:{s.stop}")
        return V
