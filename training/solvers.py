"""Linear solvers injected into K-FAC, and the hardware account of a circuit-backed run.

K-FAC sees a solver only through ``amc.protocol.Solver`` (``solve(H, B)``, ``deterministic``, ``linear``); this
module adds what training needs around it:

- ``NumpySolver``: the exact digital reference.
- ``CircuitSolver``: wraps a circuit solver built by ``amc.build_solver`` (or any object with the protocol),
  returns x as an ndarray, raises ``SolverFailure`` on an unusable solve (exception, non-finite output, saturation,
  residual above a limit) so K-FAC applies its ``on_circuit_failure`` policy, and keeps the **hardware account**:
  running counts of what the arrays did (settles, reads, programmings, cells, conversions, real ngspice runs),
  digital flops beside them (the method's own arithmetic and every exact fallback), every fallback with its reason,
  and the error of the analog answer before any digital refinement. ``hardware()`` is written into every metrics
  record.
- ``make_solver(cfg)``: from a ``training.config.SolverConfig`` or a dict ``{backend, circuit, method, ...}``.

Programmed factors: ``solver.program(H) -> FactorHandle``, held by the K-FAC layer between inverse updates
(training/kfac_layer.py). The method programs H at the handle's first solve (so that solve's operations carry the
programming, as the account expects) and keeps the arrays in its own cache, found by equality of H; the handle keeps
the training step of that first solve. Drift acts on time since programming: a handle's solve passes
``(step - programmed_step) * seconds_per_step`` to the method (``seconds_per_step`` from the config: the hardware's
time per training step, required when the circuit drifts). A solve without a handle reads freshly programmed
arrays.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import numpy as np


class _Tally:
    """Running count, sum, maximum, minimum and last value of the finite numbers it is given (scalars or arrays)."""

    def __init__(self) -> None:
        self.count, self.total, self.max, self.min, self.last = 0, 0.0, None, None, None

    def add(self, values) -> None:
        v = np.asarray(values, dtype=float).reshape(-1)
        v = v[np.isfinite(v)]
        if v.size:
            self.count += v.size
            self.total += float(v.sum())
            self.max = float(v.max()) if self.max is None else max(self.max, float(v.max()))
            self.min = float(v.min()) if self.min is None else min(self.min, float(v.min()))
            self.last = float(v[-1])

    @property
    def mean(self):
        return self.total / self.count if self.count else None


class FactorHandle:
    """A damped factor block a K-FAC layer holds between inverse updates: the matrix its solver programs and the
    training step of its first solve (None before it), from which drift's time since programming follows."""

    __slots__ = ("solver", "h", "step")

    def __init__(self, solver, h: np.ndarray):
        self.solver = solver
        self.h = np.asarray(h, dtype=np.float64)
        self.step: Optional[int] = None

    def holds(self, h: np.ndarray) -> bool:
        return self.h.shape == np.shape(h) and np.array_equal(self.h, h)

    def solve(self, B: np.ndarray) -> np.ndarray:
        return self.solver.solve_programmed(self, B)

    def __repr__(self) -> str:
        return f"FactorHandle(n {self.h.shape[0]}, first solved at step {self.step})"


class SolverFailure(RuntimeError):
    """The (circuit) solver could not deliver a usable solution for one solve."""


class NumpySolver:
    """Exact digital reference (amc.reference.exact_solve, the one the circuit backends' numpy twin uses)."""

    deterministic = True
    linear = True
    name = "numpy"

    def __init__(self, diagonal_shift: Optional[dict] = None) -> None:
        self.calls = 0
        self.columns = 0
        self.diagonal_shift = dict(diagonal_shift or {})    # {factor size: mu}: solve H + mu diag(H) instead

    def solve(self, H: np.ndarray, B: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.columns += 1 if np.ndim(B) == 1 else np.shape(B)[1]
        from amc.reference import exact_solve
        return exact_solve(H, B, self.diagonal_shift.get(np.shape(H)[0], 0.0))

    def program(self, H: np.ndarray) -> FactorHandle:
        return FactorHandle(self, H)

    def solve_programmed(self, handle: FactorHandle, B: np.ndarray) -> np.ndarray:
        return self.solve(handle.h, B)

    def tick(self, step: int) -> None:
        pass

    def hardware(self) -> Optional[dict]:
        return None

    def stats(self) -> dict:
        s = {"backend": "numpy", "solves": self.calls, "rhs_columns": self.columns}
        if self.diagonal_shift:
            s["diagonal_shift"] = {str(k): v for k, v in self.diagonal_shift.items()}
        return s

    def __repr__(self) -> str:
        return f"NumpySolver(exact, diagonal shift {self.diagonal_shift})" if self.diagonal_shift else \
            "NumpySolver(exact)"


COUNT_KEYS = ("inv_settles", "mvm_reads", "programmings", "cells_programmed", "dac_conversions", "adc_conversions",
              "ngspice_runs", "digital_flops", "programmings_verified", "programmings_restamped")


def failure_reason(exc: BaseException) -> str:
    """A short, stable name for why a circuit solve failed (the key of ``fallback_reasons``)."""
    from amc.errors import MappingError, SimulationError, UnstableCircuitError
    from amc.methods.errors import BlockError, ConvergenceError
    if isinstance(exc, UnstableCircuitError):
        return "unstable array (mapped factor not positive definite)"
    if isinstance(exc, ConvergenceError):
        return "refinement did not converge"
    if isinstance(exc, BlockError):
        return "blockamc block failed"
    if isinstance(exc, MappingError):
        return "matrix cannot be mapped"
    if isinstance(exc, SimulationError):
        return "ngspice failure"
    return type(exc).__name__


class CircuitSolver:
    """Adapter: circuit solver -> ndarray, with the hardware account and failure detection."""

    name = "circuit"

    def __init__(self, inner: Any, check_every: int = 1, saturation_is_failure: bool = True,
                 max_relative_residual: Optional[float] = None, transient: bool = False, description: str = "",
                 seconds_per_step: Optional[float] = None):
        self.inner = inner
        self.check_every = int(check_every)
        self.saturation_is_failure = saturation_is_failure
        self.max_relative_residual = max_relative_residual
        self.transient = transient
        self.description = description or repr(inner)
        self.seconds_per_step = seconds_per_step
        self.reset_stats()

    @property
    def deterministic(self) -> bool:
        return bool(self.inner.deterministic)

    @property
    def linear(self) -> bool:
        return bool(self.inner.linear)

    def reset_stats(self) -> None:
        self.calls = 0
        self.columns = 0
        self.failures = 0
        self.saturation_events = 0
        self.saturated_outputs = 0
        self.exceptions = 0
        self.sizes: dict = {}
        self.last_failure: Optional[str] = None
        self.fallback_reasons: dict = {}
        self.counts = {key: 0 for key in COUNT_KEYS}
        self.rel_err = _Tally()       # returned x against the exact solve, on checked calls
        self.analog_err = _Tally()    # the analog answer before any digital refinement
        # The analog error split (amc.solution): the deliberate shift's bias in exact arithmetic, the device error
        # around it, and the cosine of the returned direction to the exact one; the controller's share of the
        # counts and the shifts it applied (one entry per fresh programming).
        self.bias_err, self.device_err, self.cosine, self.shifts = _Tally(), _Tally(), _Tally(), _Tally()
        self.controller_counts = {key: 0 for key in COUNT_KEYS}
        self.shifted_programmings = 0
        self.clipped_cells, self.top_level_error = 0, _Tally()
        self.residual = _Tally()
        self.energy = _Tally()
        self.settling = _Tally()
        self.iterations = _Tally()
        self._cost = None              # amc.cost.Cost of the analog work so far (arrays in series: conservative)
        self._cost_error: Optional[str] = None
        self._cost_model = None
        self._step = 0
        # loop lambda_min of every programmed array this run solved with, by factor size (the cost ledger prices a
        # run with its own settles: amc cost training --run)
        self.lambda_by_size: dict = {}
        self.error_by_size: dict = {}         # n -> (analog error tally, step cosine tally)

    # ---- time ------------------------------------------------------------------------------------------------
    def tick(self, step: int) -> None:
        """K-FAC tells the solver which training step it is on (drift acts on time since programming)."""
        self._step = step

    def program(self, H: np.ndarray) -> FactorHandle:
        """The handle a K-FAC layer holds for one damped factor block (programmed at its first solve)."""
        return FactorHandle(self, H)

    # ---- solve -----------------------------------------------------------------------------------------------
    def solve_programmed(self, handle: FactorHandle, B: np.ndarray) -> np.ndarray:
        """Solve on a held factor: the read comes (step - step of its first solve) * seconds_per_step after
        programming."""
        if handle.step is None:
            handle.step = self._step
        return self.solve(handle.h, B, seconds_since_programming=(self._step - handle.step) * (
            self.seconds_per_step or 0.0))

    def solve(self, H: np.ndarray, B: np.ndarray, seconds_since_programming: float = 0.0) -> np.ndarray:
        from amc.errors import AmcError, NgspiceUnavailableError
        H = np.asarray(H, dtype=np.float64)
        B = np.asarray(B, dtype=np.float64)
        self.calls += 1
        k = 1 if B.ndim == 1 else B.shape[1]
        self.columns += k
        n = H.shape[0]
        self.sizes[n] = self.sizes.get(n, 0) + 1
        try:
            if self.transient:
                result = self.inner.solve(H, B, transient=True)   # direct only (MethodSolver says so otherwise)
            else:
                seconds = seconds_since_programming if not self.deterministic else 0.0
                result = self.inner.solve(H, B, seconds_since_programming=seconds) if seconds else \
                    self.inner.solve(H, B)
        except NgspiceUnavailableError:
            raise                      # not a failed solve: the run cannot be circuit-backed at all
        except (AmcError, SolverFailure) as exc:   # a circuit-side failure; the policy decides (a bug is not one)
            self.exceptions += 1
            self._account(exc)             # what the arrays did until the failure (a refused write included)
            return self._fail(failure_reason(exc), f"{type(exc).__name__}: {exc}", n, k)
        self._account(result, n)
        x = np.asarray(getattr(result, "x", result), dtype=np.float64)
        if x.shape != B.shape:
            x = x.reshape(B.shape)
        sat = getattr(result, "saturated", None)
        n_sat = 0 if sat is None else int(np.sum(sat))
        residual = getattr(result, "relative_residual", None)
        if residual is not None:
            self.residual.add(residual)
        if self.check_every and (self.calls - 1) % self.check_every == 0 and np.all(np.isfinite(x)):
            exact = np.linalg.solve(H, B)
            self.rel_err.add(np.linalg.norm(x - exact) / max(np.linalg.norm(exact), 1e-300))
        if n_sat:
            self.saturation_events += 1
            self.saturated_outputs += n_sat
        if not np.all(np.isfinite(x)):
            return self._fail("non-finite output", "non-finite output", n, k)
        if n_sat and self.saturation_is_failure:
            return self._fail("saturated outputs", f"{n_sat} saturated output(s)", n, k)
        if self.max_relative_residual is not None and residual is not None and residual > self.max_relative_residual:
            return self._fail("residual above limit", f"relative residual {residual:.3g} > "
                              f"{self.max_relative_residual:g}", n, k)
        return x

    def _account(self, result, n: Optional[int] = None) -> None:
        ops = getattr(result, "operations", None)
        if ops is not None:
            values = ops.to_dict() if hasattr(ops, "to_dict") else dict(ops)
            for key in COUNT_KEYS:
                self.counts[key] += values.get(key, 0)
            if n is not None and hasattr(ops, "to_dict"):
                self._price(ops, n, getattr(result, "lambda_min", None))
        lam = getattr(result, "lambda_min", None)
        if n is not None and lam is not None and np.isfinite(lam) and lam > 0:
            entry = self.lambda_by_size.setdefault(n, [0, 0.0, float(lam)])   # count, sum of logs, minimum
            entry[0] += 1
            entry[1] += math.log(lam)
            entry[2] = min(entry[2], float(lam))
        analog = getattr(result, "analog_error", None)
        if analog is not None:
            self.analog_err.add(analog)
            if n is not None:          # by factor size: a partitioned large factor's error apart from the small ones
                by_size = self.error_by_size.setdefault(n, (_Tally(), _Tally()))
                by_size[0].add(analog)
                cosine = getattr(result, "step_cosine", None)
                if cosine is not None:
                    by_size[1].add(cosine)
        for attr, tally in (("bias_error", self.bias_err), ("device_error", self.device_err),
                            ("step_cosine", self.cosine)):
            v = getattr(result, attr, None)
            if v is not None:
                tally.add(v)
        details = getattr(result, "details", None) or {}
        for key, value in (details.get("controller_operations") or {}).items():
            if key in self.controller_counts:
                self.controller_counts[key] += value
        clipping = details.get("clipping")
        if clipping:                                # the window's clip of the programming error, per programming
            self.clipped_cells += clipping.get("at_g_max", 0) + clipping.get("at_g_min", 0)
            self.top_level_error.add(clipping.get("top_level_mean_error"))
        if "controller_writes" in details:          # a fresh programming: the shift the controller settled on
            self.shifts.add(details.get("shift", 0.0))
            self.shifted_programmings += int(details.get("shift", 0.0) > 0)
        for attr, tally in (("energy_j", self.energy), ("settling_time_s", self.settling)):
            v = getattr(result, attr, None)
            if v is not None:
                tally.add(v)
        history = getattr(result, "history", None)
        if history:
            self.iterations.add(int(history[-1].get("iteration", 0)))

    def _price(self, ops, n: int, lambda_min: Optional[float]) -> None:
        """Add the ledger cost (amc.cost) of one solve's operations: settles priced from the loop's lambda_min."""
        if self._cost_error is not None:
            return
        try:
            from amc.cost import HardwareCostModel, cost_of
            if self._cost_model is None:
                self._cost_model = HardwareCostModel.for_circuit(self.inner.config)
            lam = lambda_min if (lambda_min is not None and lambda_min > 0) else None
            if ops.inv_settles and lam is None:
                raise ValueError("the solve reported no loop lambda_min to price its settles")
            cost = cost_of(ops, self._cost_model, n=n, lambda_min=lam)
            self._cost = cost if self._cost is None else self._cost + cost
        except Exception as exc:          # an unpriceable circuit must not stop training; the record says why
            self._cost_error = f"{type(exc).__name__}: {exc}"

    def _fail(self, reason: str, why: str, n: int, k: int):
        self.failures += 1
        self.last_failure = why
        self.fallback_reasons[reason] = self.fallback_reasons.get(reason, 0) + 1
        from amc.hw.counters import exact_solve_flops
        self.counts["digital_flops"] += exact_solve_flops(n, k)     # what the exact fallback will compute
        raise SolverFailure(f"circuit solve #{self.calls} failed: {why}")

    # ---- reports ---------------------------------------------------------------------------------------------
    def hardware(self) -> dict:
        """The running hardware account (written into every metrics record)."""
        h = {key: (float(v) if key == "digital_flops" else int(v)) for key, v in self.counts.items()}
        h["conversions"] = h["dac_conversions"] + h["adc_conversions"]
        h.update(solves=self.calls, rhs_columns=self.columns, fallbacks=self.failures,
                 fallback_fraction=self.failures / self.calls if self.calls else 0.0,
                 fallback_reasons=dict(self.fallback_reasons),
                 analog_error_mean=self.analog_err.mean, analog_error_max=self.analog_err.max,
                 final_error_mean=self.rel_err.mean, final_error_max=self.rel_err.max,
                 bias_error_mean=self.bias_err.mean, device_error_mean=self.device_err.mean,
                 step_cosine_mean=self.cosine.mean, step_cosine_min=self.cosine.min, method=self.description)
        if self.top_level_error.count:
            h["clipping"] = dict(clipped_cells=self.clipped_cells, programmings=self.top_level_error.count,
                                 top_level_mean_error=self.top_level_error.mean)
        if self.shifts.count:
            h["controller"] = dict(self.controller_counts, programmings_verified=self.shifts.count,
                                   shifted_programmings=self.shifted_programmings, shift_mean=self.shifts.mean,
                                   shift_max=self.shifts.max)
        if self.iterations.count:
            h["iterations_mean"] = self.iterations.mean
        if self.error_by_size:
            h["analog_error_by_size"] = {str(n): {"mean": e.mean, "max": e.max, "cosine_mean": c.mean,
                                                  "cosine_min": c.min, "solves": e.count}
                                         for n, (e, c) in sorted(self.error_by_size.items())}
        if self.lambda_by_size:
            h["loop_lambda_min_by_size"] = {str(n): {"geomean": math.exp(total / count), "min": low, "solves": count}
                                            for n, (count, total, low) in sorted(self.lambda_by_size.items())}
        if self._cost is not None or self._cost_error is not None:
            h["cost"] = self._cost.to_dict() if self._cost_error is None and self._cost is not None else \
                {"error": self._cost_error}
            h["cost_model"] = None if self._cost_model is None else self._cost_model.name
        return h

    def stats(self) -> dict:
        s = {"backend": "circuit", "solves": self.calls, "rhs_columns": self.columns, "failures": self.failures,
             "exceptions": self.exceptions, "saturation_events": self.saturation_events,
             "saturated_outputs": self.saturated_outputs, "checked": self.rel_err.count,
             "rel_err_mean": self.rel_err.mean, "rel_err_max": self.rel_err.max, "rel_err_last": self.rel_err.last,
             "analog_err_mean": self.analog_err.mean, "analog_err_max": self.analog_err.max,
             "residual_mean": self.residual.mean, "residual_max": self.residual.max,
             "sizes": {str(k): v for k, v in sorted(self.sizes.items())}}
        if self.energy.count:
            s["energy_j_total"] = self.energy.total
        if self.settling.count:
            s["settling_s_mean"] = self.settling.mean
            s["settling_s_max"] = self.settling.max
        if self.iterations.count:
            s["iterations_mean"] = self.iterations.mean
            s["iterations_max"] = self.iterations.max
        if self.last_failure:
            s["last_failure"] = self.last_failure
        return s

    def restore(self, hardware: dict) -> None:
        """Continue the account of a resumed run (the arrays themselves are programmed anew). The error tallies
        and the ledger cost cover the work since the resume; the record says so."""
        for key in COUNT_KEYS:
            self.counts[key] = hardware.get(key, 0)
        self._cost_error = "the ledger cost is not carried across a resume of this run"
        self.calls = int(hardware.get("solves", 0))
        self.columns = int(hardware.get("rhs_columns", 0))
        self.failures = int(hardware.get("fallbacks", 0))
        self.fallback_reasons = dict(hardware.get("fallback_reasons", {}))
        self.lambda_by_size = {int(n): [int(e["solves"]), int(e["solves"]) * math.log(e["geomean"]), float(e["min"])]
                               for n, e in (hardware.get("loop_lambda_min_by_size") or {}).items()}

    def __repr__(self) -> str:
        return f"CircuitSolver({self.description})"


_ADAPTER_KEYS = {"check_every", "saturation_is_failure", "max_relative_residual", "transient", "seconds_per_step"}


def make_solver(cfg: Any = None, source: str = "optimizer.solver"):
    """Solver from a ``SolverConfig`` or dict ``{backend: numpy}`` / ``{backend: circuit, circuit: ..., method: ...}``.

    ``circuit``: an amc preset name, a circuit YAML path, or ``{preset: rram, device: {levels: 16}}``;
    ``method``: a method preset or name (``direct``, ``hpinv-pcg``, ...) or ``{preset: hpinv-pcg, iterations: 3}``.
    Both are built by ``amc.build_solver``; an unknown key, or one the method does not have, is an error naming it.
    """
    if cfg is None:
        return NumpySolver()
    typed = cfg.typed() if hasattr(cfg, "typed") else None    # a validated SolverConfig: parsed once already
    if dataclasses.is_dataclass(cfg):
        cfg = dataclasses.asdict(cfg)
    cfg = dict(cfg)
    backend = cfg.pop("backend", "numpy")
    if backend == "numpy":
        return NumpySolver(cfg.get("diagonal_shift"))
    if backend != "circuit":
        raise ValueError(f"unknown solver backend {backend!r}; use 'numpy' or 'circuit'")
    from amc import build_solver

    if cfg.get("diagonal_shift") is not None:
        raise ValueError(f"{source}.diagonal_shift: only for backend 'numpy' (the exact twin of a shifted run)")
    cfg.pop("diagonal_shift", None)
    adapter = {k: cfg.pop(k) for k in list(cfg) if k in _ADAPTER_KEYS}
    circuit = cfg.pop("circuit", None)
    method = cfg.pop("method", None)
    if cfg:
        raise ValueError(f"{source}: unknown key(s) {', '.join(sorted(cfg))}; method options go under "
                         f"{source}.method (e.g. method: {{preset: hpinv-pcg, iterations: 3}})")
    if typed is not None:
        circuit, method = typed
    inner = build_solver(circuit, method, source=source)
    return CircuitSolver(inner, check_every=adapter.get("check_every", 1),
                         saturation_is_failure=adapter.get("saturation_is_failure", True),
                         max_relative_residual=adapter.get("max_relative_residual"),
                         transient=adapter.get("transient", False),
                         seconds_per_step=adapter.get("seconds_per_step"),
                         description=f"{inner.config.name}, {inner.method_config.label}")
