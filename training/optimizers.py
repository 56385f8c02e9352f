"""Optimisers with explicit state (optax-like): ``state = opt.init(params)``;
``params, state = opt.step(params, grads, state, model=..., cache=...)``; ``opt.stats(state) -> dict``.

State is a nested dict of NumPy arrays / scalars so the training loop can checkpoint it with ``np.savez``.
Weight decay and heavy-ball momentum are one pair of transformations every optimiser composes
(``training/transforms.py``); K-FAC's per-layer work (factors, damping, blocks, preconditioning) is a ``KFACLayer``
(``training/kfac_layer.py``) whose arrays live in ``state["layers"][name]``.

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

from typing import Optional

import numpy as np

from .kfac_layer import KFACLayer, block_sizes  # noqa: F401  (block_sizes: public, documented above)
from .solvers import FactorHandle, NumpySolver, SolverFailure
from .transforms import decayed, heavy_ball, is_weight


class SolverStop(RuntimeError):
    """A circuit solve failed and the policy is ``on_circuit_failure: stop``."""


class SGD:
    name = "sgd"

    def __init__(self, lr: float = 0.03, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0):
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay

    def init(self, params: dict) -> dict:
        return {"step": 0, "buf": {k: np.zeros_like(v) for k, v in params.items()}}

    def step(self, params: dict, grads: dict, state: dict, **_) -> tuple[dict, dict]:
        new_p, new_buf = {}, {}
        for k, p in params.items():
            g = decayed(grads[k], p, self.weight_decay, is_weight(k))
            d, b = heavy_ball(state["buf"][k], g, self.momentum, self.nesterov)
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
            g = decayed(grads[k], p, self.weight_decay, is_weight(k))
            m = self.beta1 * state["m"][k] + (1 - self.beta1) * g
            v = self.beta2 * state["v"][k] + (1 - self.beta2) * g * g
            m_new[k], v_new[k] = m.astype(p.dtype), v.astype(p.dtype)
            new_p[k] = (p - self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(p.dtype)
        return new_p, {"step": t, "m": m_new, "v": v_new}

    def stats(self, state: dict) -> dict:
        return {}

    def hardware(self, state: dict) -> Optional[dict]:
        return None


class KFAC:
    """K-FAC over ``KFACLayer`` objects (one per layer); state: counters plus ``layers: {name: layer state}``."""

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
        self.kfac_layers = {l.name: KFACLayer(l, max_block) for l in self.layers}

    def describe(self) -> str:
        parts = [repr(k)[len("KFACLayer("):-1] for k in self.kfac_layers.values()]
        why = "per-solve noise or drift" if not self.solver.deterministic else "solver is not linear in B"
        lr = "on" if self.linear_response else (f"off ({why})" if self.requested_linear_response else "off")
        return f"K-FAC({'; '.join(parts)}; linear response {lr}; solver {self.solver!r})"

    # ---- state -----------------------------------------------------------------------------------------
    def init(self, params: dict) -> dict:
        return {"step": 0, "factor_updates": 0, "inverse_updates": 0, "fallbacks": 0, "apply_flops": 0.0,
                "layers": {name: k.init_state(self.linear_response) for name, k in self.kfac_layers.items()}}

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

    def restore_hardware(self, account: Optional[dict], state: dict) -> None:
        """Continue a resumed run's hardware account: ``account`` is what ``hardware(state)`` wrote into the
        checkpoint beside ``state``; the solver takes it back without K-FAC's own flops, which ``state`` keeps."""
        if account and hasattr(self.solver, "restore"):
            account = dict(account)
            account["digital_flops"] = float(account["digital_flops"]) - float(state.get("apply_flops", 0.0))
            self.solver.restore(account)

    # ---- pieces (public so tests can build the dense reference) -------------------------------------
    def batch_factors(self, params: dict, model, cache, rng: np.random.Generator) -> dict:
        """{layer: (A_new, G_new)} from one batch, G with labels sampled from the model."""
        out_grads = model.sampled_output_grads(params, cache, rng)
        return {name: k.batch_factors(cache.inputs[name], out_grads[name]) for name, k in self.kfac_layers.items()}

    def factor_decay(self, k: int) -> float:
        """Weight of the old factor at the k-th (1-based) factor update."""
        if k <= 1:
            return 0.0
        return min(1.0 - 1.0 / k, self.ema) if self.ema_warmup else self.ema

    def damped(self, A: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The damped factors (what gets programmed): pi-split of the damping."""
        return KFACLayer.damped(A, G, self.damping, self.pi_correction)

    def _solver_for(self, state: dict):
        """solve(H, B, what) through the injected solver, with the configured failure policy."""
        def solve(H, B: np.ndarray, what: str) -> np.ndarray:
            """H: a layer's held handle (FactorHandle) or, for a solver without handles, the matrix."""
            try:
                return H.solve(B) if isinstance(H, FactorHandle) else self.solver.solve(H, B)
            except SolverFailure as exc:
                if self.on_circuit_failure == "stop":
                    raise SolverStop(f"step {state['step']}: {what}: {exc} (on_circuit_failure: stop)") from None
                state["fallbacks"] = int(state["fallbacks"]) + 1
                return np.linalg.solve(getattr(H, "h", H), B)
        return solve

    @property
    def _program(self):
        """The solver's ``program(H) -> handle`` the layers hold their damped blocks with (None: a solver that only
        has ``solve(H, B)``)."""
        return getattr(self.solver, "program", None)

    def precondition(self, name: str, dW: np.ndarray, state: dict) -> np.ndarray:
        """G_d^-1 dW A_d^-1 for one layer (dW: (out, in+1)), block-diagonal where the factors are split."""
        layer = self.kfac_layers[name]
        if self.linear_response:           # two dense products done digitally, not by the arrays
            state["apply_flops"] = float(state.get("apply_flops", 0.0)) + layer.apply_flops()
        return layer.precondition(state["layers"][name], dW, self._solver_for(state), self.linear_response,
                                  self._program)

    # ---- the step ----------------------------------------------------------------------------------------
    def step(self, params: dict, grads: dict, state: dict, *, model=None, cache=None) -> tuple[dict, dict]:
        state = dict(state)
        state["layers"] = {name: dict(st) for name, st in state["layers"].items()}
        t = int(state["step"])
        self.solver.tick(t)
        if t % self.factor_every == 0:
            if model is None or cache is None:
                raise ValueError("K-FAC needs model= and cache= (the forward cache of this batch) to update factors")
            rng = np.random.default_rng([self.seed, t, 1])
            eps = self.factor_decay(int(state["factor_updates"]) + 1)
            for name, (A, G) in self.batch_factors(params, model, cache, rng).items():
                KFACLayer.accumulate(state["layers"][name], A, G, eps)
            state["factor_updates"] = int(state["factor_updates"]) + 1
        if t % self.inverse_every == 0 or int(state["inverse_updates"]) == 0:
            solve = self._solver_for(state)
            for name, layer in self.kfac_layers.items():
                layer.inverse_update(state["layers"][name], self.damping, self.pi_correction, solve,
                                     self.linear_response, self._program)
            state["inverse_updates"] = int(state["inverse_updates"]) + 1

        updates, vg = {}, 0.0
        for l in self.layers:
            gW = decayed(grads[l.weight], params[l.weight], self.weight_decay)
            dW = np.concatenate([gW, grads[l.bias][:, None]], 1).astype(np.float64)
            V = self.precondition(l.name, dW, state)
            updates[l.name] = V
            vg += float(np.sum(V * dW))
        nu = 1.0
        if self.kl_clip and vg > 0:
            nu = min(1.0, float(np.sqrt(self.kl_clip / (self.lr ** 2 * vg))))
        new_p = dict(params)
        for l in self.layers:
            st = state["layers"][l.name]          # the clipped natural gradient, then heavy-ball momentum on it
            V, st["buf"] = heavy_ball(st["buf"], nu * updates[l.name], self.momentum)
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
