"""Linear solvers injected into K-FAC. Protocol: ``solver.solve(H, B) -> X`` with H (m, m) SPD float64, B (m,)
or (m, k), X = H^-1 B as an ndarray of B's shape. ``solver.stats() -> dict`` (optional) feeds the metrics log.

- ``NumpySolver``: exact (``numpy.linalg.solve``).
- ``CircuitSolver``: thin adapter around an analog solver (``amc.AnalogSolver`` or a fake with the same
  ``solve(H, B) -> result`` where ``result.x``, ``result.relative_residual``, ``result.saturated`` and optionally
  ``result.settling_time_s`` / ``result.energy_j``). Records statistics and raises ``SolverFailure`` when a
  solve fails (exception, non-finite output, saturation, residual above a limit); K-FAC applies its
  ``on_circuit_failure`` policy.
- ``make_solver(cfg)``: from ``{backend: numpy}`` or ``{backend: circuit, circuit: <preset|yaml path|dict>}``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import numpy as np


class SolverFailure(RuntimeError):
    """The (circuit) solver could not deliver a usable solution for one solve."""


class NumpySolver:
    """Exact digital reference."""

    per_solve_noise = False
    name = "numpy"

    def __init__(self) -> None:
        self.calls = 0
        self.columns = 0

    def solve(self, H: np.ndarray, B: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.columns += 1 if np.ndim(B) == 1 else np.shape(B)[1]
        return np.linalg.solve(np.asarray(H, dtype=np.float64), np.asarray(B, dtype=np.float64))

    def stats(self) -> dict:
        return {"backend": "numpy", "solves": self.calls, "rhs_columns": self.columns}

    def __repr__(self) -> str:
        return "NumpySolver(exact)"


class CircuitSolver:
    """Adapter: circuit (or fake) solver -> ndarray, with statistics and failure detection."""

    name = "circuit"

    def __init__(self, inner: Any, check_every: int = 1, saturation_is_failure: bool = True,
                 max_relative_residual: Optional[float] = None, transient: bool = False, description: str = ""):
        self.inner = inner
        self.check_every = int(check_every)
        self.saturation_is_failure = saturation_is_failure
        self.max_relative_residual = max_relative_residual
        self.transient = transient
        self.description = description or repr(inner)
        self.reset_stats()

    @property
    def per_solve_noise(self) -> bool:
        return bool(getattr(self.inner, "per_solve_noise", False))

    def reset_stats(self) -> None:
        self.calls = 0
        self.columns = 0
        self.failures = 0
        self.saturation_events = 0
        self.saturated_outputs = 0
        self.exceptions = 0
        self.checked = 0
        self.rel_err_sum = 0.0
        self.rel_err_max = 0.0
        self.rel_err_last = None
        self.residual_sum = 0.0
        self.residual_max = 0.0
        self.energy_j = 0.0
        self.energy_count = 0
        self.settling_max_s = None
        self.settling_sum_s = 0.0
        self.settling_count = 0
        self.sizes: dict = {}
        self.last_failure: Optional[str] = None

    def solve(self, H: np.ndarray, B: np.ndarray) -> np.ndarray:
        H = np.asarray(H, dtype=np.float64)
        B = np.asarray(B, dtype=np.float64)
        self.calls += 1
        self.columns += 1 if B.ndim == 1 else B.shape[1]
        self.sizes[H.shape[0]] = self.sizes.get(H.shape[0], 0) + 1
        try:
            result = self.inner.solve(H, B, transient=True) if self.transient else self.inner.solve(H, B)
        except Exception as exc:  # any circuit-side error is a failed solve; the policy decides what follows
            self.exceptions += 1
            return self._fail(f"{type(exc).__name__}: {exc}")
        x = np.asarray(getattr(result, "x", result), dtype=np.float64)
        if x.shape != B.shape:
            x = x.reshape(B.shape)
        sat = getattr(result, "saturated", None)
        n_sat = 0 if sat is None else int(np.sum(sat))
        residual = getattr(result, "relative_residual", None)
        if residual is not None and np.isfinite(residual):
            self.residual_sum += float(residual)
            self.residual_max = max(self.residual_max, float(residual))
        for attr, kind in (("energy_j", "energy"), ("settling_time_s", "settling")):
            v = getattr(result, attr, None)
            if v is None:
                continue
            v = np.asarray(v, dtype=float)
            v = v[np.isfinite(v)]
            if v.size == 0:
                continue
            if kind == "energy":
                self.energy_j += float(v.sum())
                self.energy_count += v.size
            else:
                self.settling_sum_s += float(v.sum())
                self.settling_count += v.size
                self.settling_max_s = max(self.settling_max_s or 0.0, float(v.max()))
        if n_sat:
            self.saturation_events += 1
            self.saturated_outputs += n_sat
        if self.check_every and (self.calls - 1) % self.check_every == 0 and np.all(np.isfinite(x)):
            exact = np.linalg.solve(H, B)
            err = float(np.linalg.norm(x - exact) / max(np.linalg.norm(exact), 1e-300))
            self.checked += 1
            self.rel_err_sum += err
            self.rel_err_max = max(self.rel_err_max, err)
            self.rel_err_last = err
        if not np.all(np.isfinite(x)):
            return self._fail("non-finite output")
        if n_sat and self.saturation_is_failure:
            return self._fail(f"{n_sat} saturated output(s)")
        if self.max_relative_residual is not None and residual is not None and residual > self.max_relative_residual:
            return self._fail(f"relative residual {residual:.3g} > {self.max_relative_residual:g}")
        return x

    def _fail(self, why: str):
        self.failures += 1
        self.last_failure = why
        raise SolverFailure(f"circuit solve #{self.calls} failed: {why}")

    def stats(self) -> dict:
        s = {"backend": "circuit", "solves": self.calls, "rhs_columns": self.columns, "failures": self.failures,
             "exceptions": self.exceptions, "saturation_events": self.saturation_events,
             "saturated_outputs": self.saturated_outputs, "checked": self.checked,
             "rel_err_mean": self.rel_err_sum / self.checked if self.checked else None,
             "rel_err_max": self.rel_err_max if self.checked else None, "rel_err_last": self.rel_err_last,
             "residual_mean": self.residual_sum / self.calls if self.calls else None,
             "residual_max": self.residual_max if self.calls else None,
             "sizes": {str(k): v for k, v in sorted(self.sizes.items())}}
        if self.energy_count:
            s["energy_j_total"] = self.energy_j
        if self.settling_count:
            s["settling_s_mean"] = self.settling_sum_s / self.settling_count
            s["settling_s_max"] = self.settling_max_s
        if self.last_failure:
            s["last_failure"] = self.last_failure
        return s

    def __repr__(self) -> str:
        return f"CircuitSolver({self.description})"


def _circuit_config(spec: Any):
    from amc import CircuitConfig  # lazy: training/ never needs amc unless the circuit backend is chosen

    if isinstance(spec, str):
        if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
            return CircuitConfig.from_yaml(spec)
        return CircuitConfig.preset(spec)
    if isinstance(spec, dict):
        if set(spec) == {"preset"} or ("preset" in spec and len(spec) > 1):
            base = CircuitConfig.preset(spec["preset"])
            rest = {k: v for k, v in spec.items() if k != "preset"}
            return base.replace(**_flatten(rest)) if rest else base
        return CircuitConfig.from_dict(spec)
    if spec is None:
        return CircuitConfig.preset("rram")
    return spec


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def make_solver(cfg: Any = None):
    """Solver from a ``SolverConfig`` or dict: ``{backend: numpy}`` or ``{backend: circuit, circuit: ...}``.

    ``circuit`` is an amc preset name (``rram``), a circuit YAML path, a CircuitConfig dict, or
    ``{preset: rram, device: {levels: 16}}`` (preset with field overrides).
    """
    if cfg is None:
        return NumpySolver()
    if dataclasses.is_dataclass(cfg):
        cfg = dataclasses.asdict(cfg)
    cfg = dict(cfg)
    backend = cfg.pop("backend", "numpy")
    if backend == "numpy":
        return NumpySolver()
    if backend != "circuit":
        raise ValueError(f"unknown solver backend {backend!r}; use 'numpy' or 'circuit'")
    from amc import AnalogSolver

    circuit = _circuit_config(cfg.pop("circuit", "rram"))
    return CircuitSolver(AnalogSolver(circuit), check_every=cfg.get("check_every", 1),
                         saturation_is_failure=cfg.get("saturation_is_failure", True),
                         max_relative_residual=cfg.get("max_relative_residual"),
                         transient=cfg.get("transient", False), description=getattr(circuit, "name", str(circuit)))
