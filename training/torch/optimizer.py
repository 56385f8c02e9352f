"""``AnalogKFAC``: K-FAC for any PyTorch model, every factor solve through our ``Solver`` protocol (exact or circuit).

    opt = AnalogKFAC(model, solver={"backend": "circuit", "circuit": "rram", "method": {"preset": "direct"}})
    for x, y in loader:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    opt.hardware()          # what the arrays did (None for exact solves)

Forward hooks on every ``nn.Linear`` and ``nn.Conv2d`` (unfolded patches) record the A statistics; tensor hooks on
their outputs record the G statistics. Every ``factor_update_steps`` the running factors are updated, every
``inv_update_steps`` the damped factors are formed -- the matrices the solver programs, once per update (a
circuit method keeps one programmed array per matrix) -- and every step each layer's gradient [dW db] is
preconditioned by two solves, G_d^-1 [dW db] A_d^-1, then KL-clipped, given momentum and applied.

The per-layer K-FAC (factor average, damped factors, block split, the two solves) is the NumPy loop's
``training.kfac_layer.KFACLayer``; this module adds what torch needs around it (hooks, the step on torch tensors).

Hyper-parameters carry kfac-pytorch's names (``factor_update_steps``, ``inv_update_steps``, ``damping``,
``factor_decay``, ``kl_clip``, ``skip_layers``, ``lr``; ``damping``, ``lr`` and ``factor_decay`` take a value or a
callable of the step) and the NumPy loop's conventions (``training.optimizers.KFAC``), so both give one update:

- ``damping`` lambda is split between the factors by the pi-correction (Martens & Grosse 2015, sec. 6.3):
  A + pi sqrt(lambda) I and G + sqrt(lambda)/pi I. (kfac-pytorch adds lambda to each factor; with
  ``pi_correction=False`` ours adds sqrt(lambda), so kfac-pytorch's lambda is our lambda squared.)
- ``factor_decay``: the weight of the old factor; with ``ema_warmup`` (default) a plain running mean over the first
  1/(1 - factor_decay) updates, then the EMA. kfac-pytorch starts its average from the identity instead.
- ``fisher="sampled"`` (default): G from labels drawn from the model's own predictive distribution (Martens & Grosse
  2015; the NumPy loop's choice). The model must return logits (batch, classes); the extra backward pass runs in the
  model's forward hook, so the training loop stays the usual one. ``fisher="empirical"``: G from the gradient of
  your own loss (kfac-pytorch's way; any output and loss), which must be a mean over the batch.
- ``kl_clip``: nu = min(1, sqrt(kl_clip / (lr^2 sum(update * grad)))) scales the preconditioned gradient; momentum
  is heavy-ball on nu * update (kfac-pytorch followed by torch SGD).
- Parameters of no preconditioned layer (skipped layers, norms, embeddings) get SGD with the same lr, momentum and
  weight decay (weight decay on tensors of two or more dimensions, as on K-FAC layers' weights only).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np
import torch
from torch import nn

from training.kfac_layer import KFACLayer
from training.optimizers import SolverStop
from training.solvers import CircuitSolver, FactorHandle, NumpySolver, SolverFailure, make_solver
from training.torch.modules import LAYER_TYPES, ModuleHelper, helper_for

Schedule = Union[float, Callable[[int], float]]
FISHER = ("sampled", "empirical")


@dataclass(frozen=True)
class TorchLayerSpec:
    """What the NumPy loop's ``KFACLayer`` needs to know about a torch layer (its per-layer K-FAC is shared)."""
    name: str
    in_dim: int
    out_dim: int
    has_bias: bool
    in_groups: tuple


def decay(k: int, factor_decay: float, warmup: bool) -> float:
    """Weight of the old factor at the k-th (1-based) factor update: 0 at the first; with ``warmup`` a plain running
    mean while 1 - 1/k < factor_decay, then factor_decay (the NumPy loop's ``ema_warmup``)."""
    if k <= 1:
        return 0.0
    return min(1.0 - 1.0 / k, factor_decay) if warmup else factor_decay


def kfac_solver(spec: Any = None):
    """The solver K-FAC calls: exact (None), a training config's ``solver:`` mapping, or a ``Solver`` object."""
    if spec is None:
        return NumpySolver()
    if isinstance(spec, (NumpySolver, CircuitSolver)):
        return spec
    if isinstance(spec, Mapping):
        from training.config import ConfigError, SolverConfig, _build
        cfg = _build(SolverConfig, dict(spec), "solver")
        unused = sorted(set(spec) - {"backend", "check_every"})
        if cfg.backend == "numpy" and unused:     # written, even at its default value: never silently dropped
            raise ConfigError(f"solver.{', '.join(unused)}: no effect with backend 'numpy' (set backend: circuit)")
        cfg.validate("solver")
        try:
            return make_solver(cfg, source="solver")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    from amc.protocol import Solver
    if isinstance(spec, Solver):                  # any object with the protocol: keep its account and failures
        return CircuitSolver(spec, description=repr(spec))
    raise TypeError(f"solver must be None (exact), a mapping like a training config's solver: block, or an object "
                    f"with the Solver protocol (solve, deterministic, linear); got {type(spec).__name__}")


def _check_schedule(value: Schedule, name: str, low: float, high: Optional[float] = None, high_open=True) -> None:
    if callable(value):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a number or a callable of the step, got {value!r}")
    if value < low or (high is not None and (value >= high if high_open else value > high)):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class _Stats:
    """This step's sums for one layer (several forwards before a step are averaged together)."""

    def __init__(self) -> None:
        self.a_sum, self.a_rows = None, 0
        self.g_sum, self.g_samples = None, 0

    def add_a(self, rows: torch.Tensor) -> None:
        s = rows.T @ rows
        self.a_sum = s if self.a_sum is None else self.a_sum + s
        self.a_rows += rows.shape[0]

    def add_g(self, rows: torch.Tensor, samples: int) -> None:
        s = rows.T @ rows
        self.g_sum = s if self.g_sum is None else self.g_sum + s
        self.g_samples += samples


class AnalogKFAC(torch.optim.Optimizer):
    """K-FAC over a torch model's Linear and Conv2d layers, solves through ``solver`` (see the module docstring)."""

    def __init__(self, model: nn.Module, solver: Any = None, lr: Schedule = 0.03, momentum: float = 0.0,
                 damping: Schedule = 1e-2, factor_decay: Schedule = 0.95, factor_update_steps: int = 1,
                 inv_update_steps: int = 10, kl_clip: Optional[float] = None, skip_layers: Iterable[str] = (),
                 fisher: str = "sampled", weight_decay: float = 0.0, pi_correction: bool = True,
                 ema_warmup: bool = True, max_block: Optional[int] = None, on_circuit_failure: str = "fallback",
                 seed: int = 0):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        _check_schedule(lr, "lr", 0.0)
        _check_schedule(damping, "damping", 0.0)
        if not callable(damping) and damping <= 0:
            raise ValueError(f"damping must be > 0 (it sets the smallest eigenvalue of every factor), got {damping!r}")
        _check_schedule(factor_decay, "factor_decay", 0.0, 1.0)
        _check_schedule(momentum, "momentum", 0.0, 1.0)
        _check_schedule(weight_decay, "weight_decay", 0.0)
        if kl_clip is not None:
            _check_schedule(kl_clip, "kl_clip", 0.0)
            if kl_clip <= 0:
                raise ValueError(f"kl_clip must be > 0 or None, got {kl_clip!r}")
        if fisher not in FISHER:
            raise ValueError(f"fisher must be one of {FISHER}, got {fisher!r}")
        if on_circuit_failure not in ("fallback", "stop"):
            raise ValueError(f"on_circuit_failure must be 'fallback' or 'stop', got {on_circuit_failure!r}")
        if max_block is not None:
            _positive_int(max_block, "max_block")
        self.factor_update_steps = _positive_int(factor_update_steps, "factor_update_steps")
        self.inv_update_steps = _positive_int(inv_update_steps, "inv_update_steps")
        self.model = model
        self.solver = kfac_solver(solver)
        self._lr, self._damping, self._factor_decay = lr, damping, factor_decay
        self.momentum, self.kl_clip, self.weight_decay = float(momentum), kl_clip, float(weight_decay)
        self.fisher, self.pi_correction, self.ema_warmup = fisher, bool(pi_correction), bool(ema_warmup)
        self.max_block, self.on_circuit_failure, self.seed = max_block, on_circuit_failure, int(seed)

        self.helpers, self.skipped = self._register_layers(model, skip_layers)
        self.layers = {h.name: KFACLayer(TorchLayerSpec(h.name, h.in_dim, h.out_dim, h.has_bias, (h.in_dim,)),
                                         max_block) for h in self.helpers}
        # Each layer's slice of the state, as the NumPy loop keeps it: A, G, Ad, Gd (buf unused: momentum is torch's)
        self._layer_state = {name: layer.init_state(False) for name, layer in self.layers.items()}
        self._layer_factor_updates = {name: 0 for name in self.layers}
        self._layer_damped = {name: False for name in self.layers}
        owned = {id(p) for h in self.helpers for p in h.module.parameters(recurse=False)}
        self._others = [p for p in model.parameters() if id(p) not in owned]
        super().__init__(list(model.parameters()), {"lr": 0.0 if callable(lr) else float(lr)})

        self.steps = 0
        self.factor_updates = self.inverse_updates = self.fallbacks = 0
        self.last_nu = 1.0
        self._stats = {h.name: _Stats() for h in self.helpers}
        self._pending: list = []            # weights of layers run in this forward (the sampled pass's inputs)
        self._forwards = 0                  # recorded forwards since the last step
        self._fisher_pass = False
        self._handles = [h.module.register_forward_hook(self._layer_hook(h)) for h in self.helpers]
        if fisher == "sampled":
            self._handles.append(model.register_forward_hook(self._model_hook))

    # ---- registration ------------------------------------------------------------------------------------------
    @staticmethod
    def _register_layers(model: nn.Module, skip_layers) -> tuple[list, list]:
        """kfac-pytorch's rule: a layer is skipped when a pattern matches its name or its class name."""
        if isinstance(skip_layers, str):
            skip_layers = [skip_layers]
        patterns = list(skip_layers or ())
        for p in patterns:
            if not isinstance(p, str):
                raise ValueError(f"skip_layers must be names or regular expressions, got {p!r}")
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"skip_layers: {p!r} is not a regular expression ({exc})") from None
        used, helpers, skipped = set(), [], []
        for name, module in model.named_modules():
            if not isinstance(module, LAYER_TYPES):
                continue
            hits = [p for p in patterns if re.fullmatch(p, name) or re.fullmatch(p, type(module).__name__)]
            if hits:
                used.update(hits)
                skipped.append(name)
                continue
            helpers.append(helper_for(name, module))
        unused = [p for p in patterns if p not in used]
        if unused:
            layers = ", ".join(f"{n} ({type(m).__name__})" for n, m in model.named_modules()
                               if isinstance(m, LAYER_TYPES))
            raise ValueError(f"skip_layers: {', '.join(map(repr, unused))} matches no Linear or Conv2d layer "
                             f"(layers: {layers or 'none'})")
        if not helpers:
            raise ValueError("the model has no Linear or Conv2d layer to precondition (all skipped or none present)")
        return helpers, skipped

    def remove_hooks(self) -> None:
        """Detach the optimizer's hooks from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ---- schedules ---------------------------------------------------------------------------------------------
    def lr_at(self, step: Optional[int] = None) -> float:
        """The learning rate at ``step`` (a schedule's value, else the param group's, which torch schedulers set)."""
        return float(self._lr(self.steps if step is None else step)) if callable(self._lr) else \
            float(self.param_groups[0]["lr"])

    def damping_at(self, step: Optional[int] = None) -> float:
        return float(self._damping(self.steps if step is None else step)) if callable(self._damping) else \
            float(self._damping)

    def factor_decay_at(self, step: Optional[int] = None) -> float:
        return float(self._factor_decay(self.steps if step is None else step)) if callable(self._factor_decay) \
            else float(self._factor_decay)

    # ---- hooks -------------------------------------------------------------------------------------------------
    def _recording(self, module: nn.Module) -> bool:
        return (module.training and torch.is_grad_enabled() and not self._fisher_pass
                and self.steps % self.factor_update_steps == 0)

    def _layer_hook(self, helper: ModuleHelper):
        stats = self._stats[helper.name]

        def hook(module, args, output):
            if not self._recording(module) or not args:
                return
            x = args[0]
            rows = helper.input_rows(x)
            if helper.has_bias:
                rows = torch.cat([rows, torch.ones(rows.shape[0], 1, dtype=rows.dtype, device=rows.device)], 1)
            stats.add_a(rows)
            samples = helper.samples(x)
            if not (isinstance(output, torch.Tensor) and output.requires_grad):
                return
            # empirical: the loss is a mean over the batch, so each sample's own gradient is `samples` times larger
            scale = 1.0 if self.fisher == "sampled" else float(samples)

            def grad_hook(g):
                if self._fisher_pass == (self.fisher == "sampled"):
                    stats.add_g(helper.output_rows(g) * scale, samples)
            output.register_hook(grad_hook)   # before any in-place op: it sees the pre-activation's gradient
            if module.weight.requires_grad:
                self._pending.append(module.weight)
        return hook

    def _model_hook(self, module, args, output):
        """fisher='sampled': one backward of -log p(y~|x), y~ drawn from the model, through the recorded layers."""
        weights, self._pending = self._pending, []
        if not weights:
            return
        if not (isinstance(output, torch.Tensor) and output.dim() == 2 and output.requires_grad):
            what = f"a tensor of shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else \
                type(output).__name__
            raise ValueError(f"fisher='sampled' draws labels from the model's output, which must be logits of shape "
                             f"(batch, classes); got {what}. Use fisher='empirical' (G from your loss's backward)")
        k, self._forwards = self._forwards, self._forwards + 1
        probs = torch.softmax(output.detach().to(torch.float64), 1).cpu().numpy()
        # The NumPy loop's draw (training.model.ConvNet.sampled_output_grads with rng [seed, step, 1]).
        rng = np.random.default_rng([self.seed, self.steps, 1] if k == 0 else [self.seed, self.steps, 1, k])
        u = rng.random((len(probs), 1))
        labels = (probs.cumsum(1) < u).sum(1).clip(0, probs.shape[1] - 1)
        d = probs.copy()
        d[np.arange(len(labels)), labels] -= 1
        self._fisher_pass = True
        try:
            torch.autograd.grad(output, weights, grad_outputs=torch.as_tensor(d, dtype=output.dtype,
                                                                             device=output.device),
                                retain_graph=True, allow_unused=True)
        finally:
            self._fisher_pass = False

    # ---- the step ----------------------------------------------------------------------------------------------
    def _solve(self, H, B: np.ndarray, what: str) -> np.ndarray:
        """H: a layer's held handle (FactorHandle) or, for a solver without handles, the matrix."""
        try:
            x = H.solve(B) if isinstance(H, FactorHandle) else self.solver.solve(H, B)
            return np.asarray(x, dtype=np.float64)
        except SolverFailure as exc:
            if self.on_circuit_failure == "stop":
                raise SolverStop(f"step {self.steps}: {what}: {exc} (on_circuit_failure: stop)") from None
            self.fallbacks += 1
            return np.linalg.solve(getattr(H, "h", H), B)

    def _update_factors(self) -> None:
        eps_decay = self.factor_decay_at()
        updated = False
        for h in self.helpers:
            st = self._stats[h.name]
            if st.a_sum is None:
                continue                                    # not run this step
            if st.g_sum is None:
                how = "the model's forward (fisher='sampled' runs its pass there: call the model you gave " \
                      "AnalogKFAC)" if self.fisher == "sampled" else "loss.backward()"
                raise RuntimeError(f"layer {h.name!r}: inputs recorded but no output gradients at step {self.steps}; "
                                   f"expected them from {how}")
            k = self._layer_factor_updates[h.name] = self._layer_factor_updates[h.name] + 1
            KFACLayer.accumulate(self._layer_state[h.name], (st.a_sum / st.a_rows).cpu().numpy(),
                                 (st.g_sum / st.g_samples).cpu().numpy(), decay(k, eps_decay, self.ema_warmup))
            updated = True
        self.factor_updates += int(updated)

    def _damp(self, name: str, damping: float) -> None:
        """Form the damped factors: the matrices the solver programs (once, at their first solve)."""
        self.layers[name].inverse_update(self._layer_state[name], damping, self.pi_correction, self._solve, False,
                                         getattr(self.solver, "program", None))
        self._layer_damped[name] = True

    def factors(self, name: str) -> dict:
        """A layer's running factors ``A``, ``G`` and damped factors ``Ad``, ``Gd`` (float64 arrays)."""
        return self._layer_state[name]

    def _clear_stats(self) -> None:
        for h in self.helpers:                              # the hooks hold the objects: reset in place
            self._stats[h.name].__init__()
        self._pending, self._forwards = [], 0

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        t = self.steps
        self.solver.tick(t)
        if t % self.factor_update_steps == 0:
            self._update_factors()
        inverse_now = t % self.inv_update_steps == 0 or self.inverse_updates == 0
        damping = self.damping_at(t)
        lr = self.lr_at(t)
        updates, vg = {}, 0.0
        for h in self.helpers:
            dW = h.grad_matrix()
            if dW is None:
                continue
            if not self._layer_factor_updates[h.name]:
                raise RuntimeError(f"layer {h.name!r} has a gradient but no K-FAC statistics: run its forward in "
                                   "training mode with gradients enabled at a factor-update step")
            if inverse_now or not self._layer_damped[h.name]:
                self._damp(h.name, damping)
            if self.weight_decay:
                dW[:, :h.in_dim] += self.weight_decay * h.module.weight.detach().reshape(h.out_dim, -1).double()
            g = dW.cpu().numpy()
            V = self.layers[h.name].precondition(self._layer_state[h.name], g, self._solve, False,
                                                 getattr(self.solver, "program", None))
            updates[h.name] = V
            vg += float(np.sum(V * g))
        if inverse_now and updates:
            for h in self.helpers:                           # layers without a gradient this step are damped too
                if h.name not in updates and self._layer_factor_updates[h.name]:
                    self._damp(h.name, damping)
            self.inverse_updates += 1
        nu = 1.0
        if self.kl_clip and vg > 0:
            nu = min(1.0, float(np.sqrt(self.kl_clip / (lr ** 2 * vg))))
        self.last_nu = nu
        for h in self.helpers:
            if h.name not in updates:
                continue
            V = torch.from_numpy(nu * updates[h.name]).to(h.module.weight.device)
            if self.momentum:
                state = self.state[h.module.weight]
                buf = state.get("kfac_momentum")
                V = V if buf is None else self.momentum * buf + V
                state["kfac_momentum"] = V
            h.apply_update(V, lr)
        for p in self._others:                               # plain SGD (momentum, weight decay) for the rest
            if p.grad is None:
                continue
            d = p.grad.detach()
            if self.weight_decay and p.dim() > 1:
                d = d + self.weight_decay * p.detach()
            if self.momentum:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                d = d.clone() if buf is None else buf.mul_(self.momentum).add_(d)
                state["momentum_buffer"] = d
            p.add_(d, alpha=-lr)
        self.steps = t + 1
        self._clear_stats()
        return loss

    # ---- reports -----------------------------------------------------------------------------------------------
    def hardware(self) -> Optional[dict]:
        """The hardware account a NumPy training record carries (None for exact solves): settles, reads,
        programmings, cells, conversions, ngspice runs, digital flops, fallbacks with reasons, the analog error
        before refinement and the cost ledger's time and energy."""
        return self.solver.hardware()

    def stats(self) -> dict:
        return {"steps": self.steps, "factor_updates": self.factor_updates, "inverse_updates": self.inverse_updates,
                "fallbacks": self.fallbacks, "last_nu": self.last_nu, "solver": self.solver.stats()}

    def __repr__(self) -> str:
        layers = "; ".join(repr(self.layers[h.name])[len("KFACLayer("):-1] for h in self.helpers)
        skipped = f"; skipped {', '.join(self.skipped)}" if self.skipped else ""
        return f"AnalogKFAC({layers}{skipped}; fisher {self.fisher}; solver {self.solver!r})"
