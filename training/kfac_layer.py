"""One layer's K-FAC: its Kronecker factors, their damped (programmed) forms, block split and preconditioning.

A ``KFACLayer`` is stateless apart from its shape (the layer spec and the block split); what changes during
training lives in the layer's slice of the optimiser state (a dict of arrays, so it checkpoints with np.savez):
``A``, ``G`` (running factors), ``Ad``, ``Gd`` (damped: what a circuit programs), ``buf`` (momentum) and, with a
linear-response solver, ``Ainv``, ``Ginv``. The layer holds its programmed factor blocks: at an inverse update it
asks the optimiser's ``program(H)`` for one handle per damped block (``handles``, keyed by factor and block start;
a block equal to the one held keeps its handle, so its arrays keep their age) and solves through them. Solves go
through a ``solve(H or handle, B, what)`` callable the optimiser passes in, so the layer never sees a circuit.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

Solve = Callable[[Any, np.ndarray, str], np.ndarray]      # (H or its handle, B, what) -> x
Program = Callable[[np.ndarray], Any]                    # H -> a handle with .h and .solve(B)


def _chunks(n: int, max_block: int) -> list[int]:
    k = -(-n // max_block)
    base, extra = divmod(n, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def block_sizes(groups: Sequence[int], bias: bool, max_block: Optional[int]) -> list[int]:
    """Sizes of the diagonal blocks of a factor (see training/optimizers.py's docstring for the rule)."""
    total = int(sum(groups)) + (1 if bias else 0)
    if max_block is None or total <= max_block:
        return [total]
    sizes, cur = [], 0
    for g in groups:
        if g > max_block:
            if cur:
                sizes.append(cur)
            parts = _chunks(g, max_block)
            sizes += parts[:-1]
            cur = parts[-1]
        elif cur + g > max_block:
            sizes.append(cur)
            cur = g
        else:
            cur += g
    if bias:
        if cur + 1 <= max_block:
            cur += 1
        else:
            sizes.append(cur)
            cur = 1
    if cur:
        sizes.append(cur)
    return sizes


def _slices(sizes: Sequence[int]) -> list[slice]:
    edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class KFACLayer:
    """K-FAC of one Linear/Conv layer (``spec``: name, in_dim, out_dim, in_groups; ``has_bias``, default True)."""

    def __init__(self, spec, max_block: Optional[int] = None):
        self.spec = spec
        self.name = spec.name
        self.bias = bool(getattr(spec, "has_bias", True))   # a torch layer may have none (training.torch)
        self.a_dim, self.g_dim = spec.in_dim + self.bias, spec.out_dim   # A carries the bias coordinate if any
        self.a_blocks = _slices(block_sizes(spec.in_groups, self.bias, max_block))
        self.g_blocks = _slices(block_sizes((spec.out_dim,), False, max_block))
        self.handles: dict = {}          # (factor, block start) -> the programmed damped block's handle

    def __repr__(self) -> str:
        a = [s.stop - s.start for s in self.a_blocks]
        g = [s.stop - s.start for s in self.g_blocks]
        return f"KFACLayer({self.name}: A {self.a_dim} -> blocks {a}, G {self.g_dim} -> blocks {g})"

    def init_state(self, linear_response: bool) -> dict:
        st = {"A": np.zeros((self.a_dim, self.a_dim)), "G": np.zeros((self.g_dim, self.g_dim)),
              "Ad": np.zeros((self.a_dim, self.a_dim)), "Gd": np.zeros((self.g_dim, self.g_dim)),
              "buf": np.zeros((self.g_dim, self.a_dim))}
        if linear_response:
            st["Ainv"], st["Ginv"] = np.zeros((self.a_dim, self.a_dim)), np.zeros((self.g_dim, self.g_dim))
        return st

    @staticmethod
    def batch_factors(inputs: np.ndarray, output_grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A, G) of one batch: A = E[a a^T] over samples and positions (bias coordinate appended), G = sum over
        positions, mean over samples of g g^T (KFC)."""
        a = np.asarray(inputs, dtype=np.float64)
        g = np.asarray(output_grads, dtype=np.float64)
        n = a.shape[0]
        a = a.reshape(-1, a.shape[-1])
        a = np.concatenate([a, np.ones((a.shape[0], 1))], 1)
        g = g.reshape(-1, g.shape[-1])
        return a.T @ a / a.shape[0], g.T @ g / n

    @staticmethod
    def accumulate(st: dict, A: np.ndarray, G: np.ndarray, decay: float) -> None:
        """Running factors: the batch's alone at decay 0, else decay * old + (1 - decay) * new."""
        if decay == 0.0:
            st["A"], st["G"] = A, G
        else:
            st["A"] = decay * st["A"] + (1 - decay) * A
            st["G"] = decay * st["G"] + (1 - decay) * G

    @staticmethod
    def damped(A: np.ndarray, G: np.ndarray, damping: float, pi_correction: bool) -> tuple[np.ndarray, np.ndarray]:
        """The damped factors (what gets programmed): sqrt(damping) split between them by pi."""
        pi = 1.0
        if pi_correction:
            ta, tg = np.trace(A) / A.shape[0], np.trace(G) / G.shape[0]
            if ta > 0 and tg > 0:
                pi = float(np.sqrt(ta / tg))
        r = np.sqrt(damping)
        return A + pi * r * np.eye(A.shape[0]), G + (r / pi) * np.eye(G.shape[0])

    def inverse_update(self, st: dict, damping: float, pi_correction: bool, solve: Solve,
                       linear_response: bool, program: Optional[Program] = None) -> None:
        """Form the damped factors and hold a handle per block (``program``: the solver programs each at its first
        solve); with a linear response, extract every block's inverse by solving with identity right-hand sides."""
        st["Ad"], st["Gd"] = self.damped(st["A"], st["G"], damping, pi_correction)
        held, self.handles = self.handles, {}
        if program is not None:
            for key, M, blocks in (("A", st["Ad"], self.a_blocks), ("G", st["Gd"], self.g_blocks)):
                for s in blocks:
                    old = held.get((key, s.start))
                    self.handles[(key, s.start)] = old if old is not None and old.holds(M[s, s]) else program(M[s, s])
        if not linear_response:
            return
        for key, M, blocks in (("Ainv", st["Ad"], self.a_blocks), ("Ginv", st["Gd"], self.g_blocks)):
            inv = np.zeros_like(M)
            for s in blocks:
                inv[s, s] = solve(self._block(key[0], M, s, program), np.eye(s.stop - s.start),
                                  f"{self.name} {key[0]} block {s.start}:{s.stop} (inverse)")
            st[key] = inv

    def _block(self, key: str, M: np.ndarray, s: slice, program: Optional[Program]):
        """The held handle of a damped block (made now if the layer holds none, e.g. after a resume), or the
        block itself when the solver takes no handles."""
        handle = self.handles.get((key, s.start))
        if handle is None and program is not None:
            handle = self.handles[(key, s.start)] = program(M[s, s])
        return M[s, s] if handle is None else handle

    def precondition(self, st: dict, dW: np.ndarray, solve: Solve, linear_response: bool,
                     program: Optional[Program] = None) -> np.ndarray:
        """G_d^-1 dW A_d^-1 (dW: (out, in[+1])), block-diagonal where the factors are split."""
        dW = np.asarray(dW, dtype=np.float64)
        if linear_response:
            return st["Ginv"] @ dW @ st["Ainv"]
        Y = np.empty((dW.shape[1], dW.shape[0]))                 # A^-1 dW^T  (in+1, out)
        for s in self.a_blocks:
            Y[s] = solve(self._block("A", st["Ad"], s, program), dW[:, s].T, f"{self.name} A block {s.start}:{s.stop}")
        V = np.empty_like(dW)                                    # G^-1 (A^-1 dW^T)^T = G^-1 dW A^-1
        for s in self.g_blocks:
            V[s] = solve(self._block("G", st["Gd"], s, program), Y[:, s].T, f"{self.name} G block {s.start}:{s.stop}")
        return V

    def apply_flops(self) -> float:
        """Digital work of applying extracted inverses to one gradient: two dense products."""
        return 2.0 * self.g_dim * self.a_dim * (self.a_dim + self.g_dim)
