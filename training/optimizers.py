"""Optimisers with explicit state (optax-like): ``state = opt.init(params)``;
``params, state = opt.step(params, grads, state, model=..., cache=...)``; ``opt.stats(state) -> dict``.

State is a nested dict of NumPy arrays / scalars so the training loop can checkpoint it with ``np.savez``.

- ``SGD(lr, momentum=0.9, nesterov=False, weight_decay=0)``
- ``Adam(lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0)``
- ``KFAC(lr, damping, ema, factor_every, inverse_every, momentum, kl_clip, max_block, pi_correction,
  linear_response, on_circuit_failure, solver, layers, seed, ema_warmup)``: Martens & Grosse 2015 / KFC (Grosse & Martens
  2016). Per layer with input a (bias coordinate appended) and pre-activation gradient g:

    A = E[a a^T]                      conv: mean over samples and output positions
    G = E[g g^T]                      labels sampled from the model's predictive distribution (extra backward
                                      pass); conv: sum over positions, mean over samples (KFC: F ~ A_mean (x) G_sum)
    A, G <- eps * old + (1 - eps) * new           every ``factor_every`` steps; at the k-th factor update
                                                  eps = min(1 - 1/k, ema) (Martens & Grosse 2015, sec. 5:
                                                  a plain running mean over the first 1/(1-ema) updates,
                                                  then the EMA; ``ema_warmup: false``: eps = ema from the
                                                  second update on, i.e. the first batch is kept with weight
                                                  ema^k -- it over-weights the statistics at initialisation)
    pi = sqrt((tr A / dim A) / (tr G / dim G))     every ``inverse_every`` steps the damped factors
    A_d = A + pi sqrt(lambda) I, G_d = G + sqrt(lambda)/pi I    are formed: these are what a circuit programs
    update = G_d^-1 [dW db] A_d^-1                 A_d^-1 applied as solve(A_d, dW^T), G_d^-1 as solve(G_d, .)
    kl_clip (kfac-pytorch): nu = min(1, sqrt(kl_clip / (lr^2 sum(update * grad)))) scales the preconditioned
    gradient; momentum (if any) is then applied to nu * update, like kfac-pytorch followed by torch SGD.

  ``max_block: N``: a factor of dimension > N is treated block-diagonally so every block fits an N x N
  array. Blocks follow the layer's natural input groups: for the linear layer one group per conv channel
  (its P*P pooled pixels, contiguous because features are flattened channel-major); consecutive groups are
  packed while they fit; a group larger than N is cut into near-equal chunks; the bias coordinate joins the
  last block if it fits, else it is its own 1x1 block. E.g. fc A 289x289 with N=64 -> 8 blocks of 36 + 1
  (the last one 37x37 with the bias); N=128 -> 108, 108, 73. G factors (no groups) are cut into near-equal
  chunks. The pi-correction uses the full traces (identical for the block-diagonal factor).

  ``linear_response: true``: once per inverse update, solve with identity right-hand sides to extract the
  (approximate) inverse of every block and apply it by matmul until the next update. Mathematically the same
  for a deterministic linear solver; automatically disabled unless ``solver.deterministic`` and ``solver.linear``.

  Solver failure (``solvers.SolverFailure``): ``on_circuit_failure: fallback`` uses an exact solve for that
  solve and counts it in ``stats``; ``stop`` raises ``SolverStop``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .solvers import NumpySolver, SolverFailure


class SolverStop(RuntimeError):
    """A circuit solve failed and the policy is ``on_circuit_failure: stop``."""


def _is_weight(key: str) -> bool:
    return key.endswith(".W")


class SGD:
    name = "sgd"

    def __init__(self, lr: float = 0.03, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0):
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay

    def init(self, params: dict) -> dict:
        return {"step": 0, "buf": {k: np.zeros_like(v) for k, v in params.items()}}

    def step(self, params: dict, grads: dict, state: dict, **_) -> tuple[dict, dict]:
        new_p, new_buf = {}, {}
        for k, p in params.items():
            g = grads[k] + self.weight_decay * p if (self.weight_decay and _is_weight(k)) else grads[k]
            if self.momentum:
                b = self.momentum * state["buf"][k] + g
                d = g + self.momentum * b if self.nesterov else b
            else:
                b, d = state["buf"][k], g
            new_buf[k] = b.astype(p.dtype)
            new_p[k] = (p - self.lr * d).astype(p.dtype)
        return new_p, {"step": state["step"] + 1, "buf": new_buf}

    def stats(self, state: dict) -> dict:
        return {}

    def hardware(self, state: dict) -> Optional[dict]:
        return None


class Adam:
    name = "adam"

    def __init__(self, lr: float = 1e-2, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.lr, self.beta1, self.beta2, self.eps, self.weight_decay = lr, beta1, beta2, eps, weight_decay

    def init(self, params: dict) -> dict:
        return {"step": 0, "m": {k: np.zeros_like(v) for k, v in params.items()},
                "v": {k: np.zeros_like(v) for k, v in params.items()}}

    def step(self, params: dict, grads: dict, state: dict, **_) -> tuple[dict, dict]:
        t = int(state["step"]) + 1
        c1, c2 = 1 - self.beta1 ** t, 1 - self.beta2 ** t
        new_p, m_new, v_new = {}, {}, {}
        for k, p in params.items():
            g = grads[k] + self.weight_decay * p if (self.weight_decay and _is_weight(k)) else grads[k]
            m = self.beta1 * state["m"][k] + (1 - self.beta1) * g
            v = self.beta2 * state["v"][k] + (1 - self.beta2) * g * g
            m_new[k], v_new[k] = m.astype(p.dtype), v.astype(p.dtype)
            new_p[k] = (p - self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(p.dtype)
        return new_p, {"step": t, "m": m_new, "v": v_new}

    def stats(self, state: dict) -> dict:
        return {}

    def hardware(self, state: dict) -> Optional[dict]:
        return None


def _chunks(n: int, max_block: int) -> list[int]:
    k = -(-n // max_block)
    base, extra = divmod(n, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def block_sizes(groups: Sequence[int], bias: bool, max_block: Optional[int]) -> list[int]:
    """Sizes of the diagonal blocks of a factor (see the module docstring for the rule)."""
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
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


class KFAC:
    name = "kfac"

    def __init__(self, layers, lr: float = 0.03, damping: float = 1e-2, ema: float = 0.95, factor_every: int = 1,
                 inverse_every: int = 10, momentum: float = 0.0, kl_clip: Optional[float] = None,
                 max_block: Optional[int] = None, pi_correction: bool = True, linear_response: bool = False,
                 on_circuit_failure: str = "fallback", weight_decay: float = 0.0, solver=None, seed: int = 0,
                 ema_warmup: bool = True):
        if on_circuit_failure not in ("fallback", "stop"):
            raise ValueError(f"on_circuit_failure must be 'fallback' or 'stop', got {on_circuit_failure!r}")
        self.layers = tuple(layers)
        self.lr, self.damping, self.ema, self.ema_warmup = lr, damping, ema, ema_warmup
        self.factor_every, self.inverse_every = factor_every, inverse_every
        self.momentum, self.kl_clip, self.max_block = momentum, kl_clip, max_block
        self.pi_correction, self.weight_decay = pi_correction, weight_decay
        self.on_circuit_failure = on_circuit_failure
        self.solver = solver if solver is not None else NumpySolver()
        self.requested_linear_response = linear_response
        # An extracted response stands in for the solver only when the solve is linear in B and repeatable:
        # not with per-solve noise, and not for a nonlinear method such as CG refinement (solver.linear False).
        self.linear_response = linear_response and self.solver.deterministic and self.solver.linear
        self.seed = seed
        self.a_blocks = {l.name: _slices(block_sizes(l.in_groups, True, max_block)) for l in self.layers}
        self.g_blocks = {l.name: _slices(block_sizes((l.out_dim,), False, max_block)) for l in self.layers}

    def describe(self) -> str:
        parts = []
        for l in self.layers:
            a = [s.stop - s.start for s in self.a_blocks[l.name]]
            g = [s.stop - s.start for s in self.g_blocks[l.name]]
            parts.append(f"{l.name}: A {l.in_dim + 1} -> blocks {a}, G {l.out_dim} -> blocks {g}")
        why = "per-solve noise or drift" if not self.solver.deterministic else "solver is not linear in B"
        lr = "on" if self.linear_response else (f"off ({why})" if self.requested_linear_response else "off")
        return f"K-FAC({'; '.join(parts)}; linear response {lr}; solver {self.solver!r})"

    # ---- state -----------------------------------------------------------------------------------------
    def init(self, params: dict) -> dict:
        st = {"step": 0, "factor_updates": 0, "inverse_updates": 0, "fallbacks": 0, "apply_flops": 0.0, "A": {},
              "G": {}, "Ad": {},
              "Gd": {}, "buf": {}}
        for l in self.layers:
            st["A"][l.name] = np.zeros((l.in_dim + 1, l.in_dim + 1))
            st["G"][l.name] = np.zeros((l.out_dim, l.out_dim))
            st["Ad"][l.name] = np.zeros((l.in_dim + 1, l.in_dim + 1))
            st["Gd"][l.name] = np.zeros((l.out_dim, l.out_dim))
            st["buf"][l.name] = np.zeros((l.out_dim, l.in_dim + 1))
        if self.linear_response:
            st["Ainv"] = {l.name: np.zeros((l.in_dim + 1, l.in_dim + 1)) for l in self.layers}
            st["Ginv"] = {l.name: np.zeros((l.out_dim, l.out_dim)) for l in self.layers}
        return st

    def stats(self, state: dict) -> dict:
        s = {"factor_updates": int(state["factor_updates"]), "inverse_updates": int(state["inverse_updates"]),
             "fallbacks": int(state["fallbacks"])}
        if hasattr(self.solver, "stats"):
            s["solver"] = self.solver.stats()
        return s

    def hardware(self, state: dict) -> Optional[dict]:
        """The solver's hardware account plus K-FAC's own digital application of extracted inverses."""
        h = self.solver.hardware()
        if h is None:
            return None
        h = dict(h)
        h["digital_flops"] = float(h["digital_flops"]) + float(state.get("apply_flops", 0.0))
        return h

    # ---- pieces (public so tests can build the dense reference) -------------------------------------
    def batch_factors(self, params: dict, model, cache, rng: np.random.Generator) -> dict:
        """{layer: (A_new, G_new)} from one batch, G with labels sampled from the model."""
        out_grads = model.sampled_output_grads(params, cache, rng)
        res = {}
        for l in self.layers:
            a = np.asarray(cache.inputs[l.name], dtype=np.float64)
            g = np.asarray(out_grads[l.name], dtype=np.float64)
            n = a.shape[0]
            a = a.reshape(-1, a.shape[-1])
            a = np.concatenate([a, np.ones((a.shape[0], 1))], 1)
            A = a.T @ a / a.shape[0]
            g = g.reshape(-1, g.shape[-1])
            G = g.T @ g / n
            res[l.name] = (A, G)
        return res

    def factor_decay(self, k: int) -> float:
        """Weight of the old factor at the k-th (1-based) factor update."""
        if k <= 1:
            return 0.0
        return min(1.0 - 1.0 / k, self.ema) if self.ema_warmup else self.ema

    def damped(self, A: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The damped factors (what gets programmed): pi-split of the damping."""
        pi = 1.0
        if self.pi_correction:
            ta, tg = np.trace(A) / A.shape[0], np.trace(G) / G.shape[0]
            if ta > 0 and tg > 0:
                pi = float(np.sqrt(ta / tg))
        r = np.sqrt(self.damping)
        return A + pi * r * np.eye(A.shape[0]), G + (r / pi) * np.eye(G.shape[0])

    def _solve(self, H: np.ndarray, B: np.ndarray, state: dict, what: str) -> np.ndarray:
        try:
            return self.solver.solve(H, B)
        except SolverFailure as exc:
            if self.on_circuit_failure == "stop":
                raise SolverStop(f"step {state['step']}: {what}: {exc} (on_circuit_failure: stop)") from None
            state["fallbacks"] = int(state["fallbacks"]) + 1
            return np.linalg.solve(H, B)

    def precondition(self, name: str, dW: np.ndarray, state: dict) -> np.ndarray:
        """G_d^-1 dW A_d^-1 for one layer (dW: (out, in+1)), block-diagonal where the factors are split."""
        dW = np.asarray(dW, dtype=np.float64)
        if self.linear_response:
            out, inp = dW.shape        # two dense products done digitally, not by the arrays
            state["apply_flops"] = float(state.get("apply_flops", 0.0)) + 2.0 * out * inp * (inp + out)
            return state["Ginv"][name] @ dW @ state["Ainv"][name]
        Ad, Gd = state["Ad"][name], state["Gd"][name]
        Y = np.empty((dW.shape[1], dW.shape[0]))                 # A^-1 dW^T  (in+1, out)
        for s in self.a_blocks[name]:
            Y[s] = self._solve(Ad[s, s], dW[:, s].T, state, f"{name} A block {s.start}:{s.stop}")
        V = np.empty_like(dW)                                    # G^-1 (A^-1 dW^T)^T = G^-1 dW A^-1
        for s in self.g_blocks[name]:
            V[s] = self._solve(Gd[s, s], Y[:, s].T, state, f"{name} G block {s.start}:{s.stop}")
        return V

    def _inverse_update(self, state: dict) -> None:
        for l in self.layers:
            Ad, Gd = self.damped(state["A"][l.name], state["G"][l.name])
            state["Ad"][l.name], state["Gd"][l.name] = Ad, Gd
            if self.linear_response:
                for key, M, blocks in (("Ainv", Ad, self.a_blocks[l.name]), ("Ginv", Gd, self.g_blocks[l.name])):
                    inv = np.zeros_like(M)
                    for s in blocks:
                        inv[s, s] = self._solve(M[s, s], np.eye(s.stop - s.start), state,
                                                f"{l.name} {key[0]} block {s.start}:{s.stop} (inverse)")
                    state[key][l.name] = inv
        state["inverse_updates"] = int(state["inverse_updates"]) + 1

    # ---- the step ----------------------------------------------------------------------------------------
    def step(self, params: dict, grads: dict, state: dict, *, model=None, cache=None) -> tuple[dict, dict]:
        state = dict(state)
        for k in ("A", "G", "Ad", "Gd", "buf", "Ainv", "Ginv"):
            if k in state:
                state[k] = dict(state[k])
        t = int(state["step"])
        self.solver.tick(t)
        if t % self.factor_every == 0:
            if model is None or cache is None:
                raise ValueError("K-FAC needs model= and cache= (the forward cache of this batch) to update factors")
            rng = np.random.default_rng([self.seed, t, 1])
            eps = self.factor_decay(int(state["factor_updates"]) + 1)
            for name, (A, G) in self.batch_factors(params, model, cache, rng).items():
                if eps == 0.0:
                    state["A"][name], state["G"][name] = A, G
                else:
                    state["A"][name] = eps * state["A"][name] + (1 - eps) * A
                    state["G"][name] = eps * state["G"][name] + (1 - eps) * G
            state["factor_updates"] = int(state["factor_updates"]) + 1
        if t % self.inverse_every == 0 or int(state["inverse_updates"]) == 0:
            self._inverse_update(state)

        updates, vg = {}, 0.0
        for l in self.layers:
            gW, gb = grads[l.weight], grads[l.bias]
            if self.weight_decay:
                gW = gW + self.weight_decay * params[l.weight]
            dW = np.concatenate([gW, gb[:, None]], 1).astype(np.float64)
            V = self.precondition(l.name, dW, state)
            updates[l.name] = V
            vg += float(np.sum(V * dW))
        nu = 1.0
        if self.kl_clip and vg > 0:
            nu = min(1.0, float(np.sqrt(self.kl_clip / (self.lr ** 2 * vg))))
        new_p = dict(params)
        for l in self.layers:
            V = nu * updates[l.name]                      # the clipped natural gradient ...
            if self.momentum:                             # ... then heavy-ball momentum on it
                V = self.momentum * state["buf"][l.name] + V
                state["buf"][l.name] = V
            p_w, p_b = params[l.weight], params[l.bias]
            new_p[l.weight] = (p_w - self.lr * V[:, :-1]).astype(p_w.dtype)
            new_p[l.bias] = (p_b - self.lr * V[:, -1]).astype(p_b.dtype)
        owned = {l.weight for l in self.layers} | {l.bias for l in self.layers}
        for k in params:                                  # parameters no layer owns: plain gradient step
            if k not in owned:
                new_p[k] = (params[k] - self.lr * grads[k]).astype(params[k].dtype)
        state["step"] = t + 1
        state["last_nu"] = nu
        return new_p, state


def make_optimizer(cfg, layers=None, solver=None, seed: int = 0):
    """Optimiser from an ``OptimizerConfig``. K-FAC gets ``solver`` (default: built from ``cfg.solver``)."""
    if cfg.name == "sgd":
        return SGD(cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    if cfg.name == "adam":
        return Adam(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay)
    if cfg.name == "kfac":
        if layers is None:
            raise ValueError("K-FAC needs the model's layer specs (model.layers)")
        if solver is None:
            from .solvers import make_solver
            solver = make_solver(cfg.solver)
        return KFAC(layers, lr=cfg.lr, damping=cfg.damping, ema=cfg.ema, factor_every=cfg.factor_every,
                    inverse_every=cfg.inverse_every, momentum=cfg.momentum, kl_clip=cfg.kl_clip,
                    max_block=cfg.max_block, pi_correction=cfg.pi_correction, linear_response=cfg.linear_response,
                    on_circuit_failure=cfg.on_circuit_failure, weight_decay=cfg.weight_decay, solver=solver,
                    seed=seed, ema_warmup=cfg.ema_warmup)
    raise ValueError(f"unknown optimizer {cfg.name!r}; use sgd, adam or kfac")
