"""Linear solvers injected into K-FAC. Protocol: ``solver.solve(H, B) -> X`` with H (m, m) SPD float64, B (m,)
or (m, k), X = H^-1 B as an ndarray of B's shape. ``solver.stats() -> dict`` (optional) feeds the metrics log.

- ``NumpySolver``: exact (``numpy.linalg.solve``).
- ``CircuitSolver``: thin adapter around an analog solver (``amc.AnalogSolver`` or a fake with the same
  ``solve(H, B) -> result`` where ``result.x``, ``result.relative_residual``, ``result.saturated`` and optionally
  ``result.settling_time_s`` / ``result.energy_j``). Records statistics and raises ``SolverFailure`` when a
  solve fails (exception, non-finite output, saturation, residual above a limit); K-FAC applies its
  ``on_circuit_failure`` policy.
- ``make_solver(cfg)``: from ``{backend: numpy}`` or ``{backend: circuit, circuit: <preset|yaml path|dict>}``,
  optionally with a solution method (``amc.MethodSolver``): ``method: hp-inv`` plus its options, e.g.

    {backend: circuit, circuit: rram, method: hp-inv, refinement: pcg, iterations: 14, shift: auto,
     equilibrate: true, slices: 6, operators: extracted, mvm_response: closed-form}

  plus ``array_size: 64`` for factors larger than one array: block-Jacobi PCG (each <= 64 diagonal block on its
  own INV array, the full factor on tiled MVM arrays), so K-FAC can keep ``max_block: null`` (full factors).

  ``method`` may also be a mapping ``{name: hp-inv, refinement: pcg, ...}``. A YAML training config goes through
  ``training.config.SolverConfig``, which has no ``method`` field yet, so there the method rides inside the
  circuit spec: ``circuit: {preset: rram, method: {name: hp-inv, refinement: pcg, ...}}``.

Linearity: K-FAC's ``linear_response: true`` reads a solver's response to identity right-hand sides once per inverse
update and applies it by matmul. That is the method itself only when x is linear in B: the solver's ``linear``
property says so (False for HP-INV with PCG: its step lengths depend on B; True for direct INV and fixed-iteration
Richardson). With PCG use ``linear_response: false`` and ``operators: extracted``: the INV and MVM circuits (both
linear) are measured in ngspice once per programmed factor block and every step's solve runs the PCG iteration on
the measured operators (tests/test_hpinv.py holds this equal to PCG with per-solve ngspice runs).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import numpy as np


class _Tally:
    """Running count, sum, maximum and last value of the finite numbers it is given (scalars or arrays)."""

    def __init__(self) -> None:
        self.count, self.total, self.max, self.last = 0, 0.0, None, None

    def add(self, values) -> None:
        v = np.asarray(values, dtype=float).reshape(-1)
        v = v[np.isfinite(v)]
        if v.size:
            self.count += v.size
            self.total += float(v.sum())
            self.max = float(v.max()) if self.max is None else max(self.max, float(v.max()))
            self.last = float(v[-1])

    @property
    def mean(self):
        return self.total / self.count if self.count else None


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

    @property
    def linear(self) -> bool:
        """x linear in B (see the module docstring); an inner solver without the attribute is taken as linear
        unless it has per-solve noise."""
        return bool(getattr(self.inner, "linear", not self.per_solve_noise))

    def reset_stats(self) -> None:
        self.calls = 0
        self.columns = 0
        self.failures = 0
        self.saturation_events = 0
        self.saturated_outputs = 0
        self.exceptions = 0
        self.sizes: dict = {}
        self.last_failure: Optional[str] = None
        self.rel_err = _Tally()       # against the exact solve, on checked calls
        self.residual = _Tally()      # relative residual reported by the circuit
        self.energy = _Tally()
        self.settling = _Tally()
        # multi-array methods (amc.MethodSolver): analog operation counts and refinement iterations
        self.operations: dict = {}
        self.iterations = _Tally()
        self.final_residual = _Tally()
        self.shift = _Tally()
        self.extractions = 0
        self.inv_blocks: dict = {}     # system size -> INV arrays (block-Jacobi blocks) it was spread over

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
        if residual is not None:
            self.residual.add(residual)
        for attr, tally in (("energy_j", self.energy), ("settling_time_s", self.settling)):
            v = getattr(result, attr, None)
            if v is not None:
                tally.add(v)
        self._method_stats(result)
        if n_sat:
            self.saturation_events += 1
            self.saturated_outputs += n_sat
        if self.check_every and (self.calls - 1) % self.check_every == 0 and np.all(np.isfinite(x)):
            exact = np.linalg.solve(H, B)
            self.rel_err.add(np.linalg.norm(x - exact) / max(np.linalg.norm(exact), 1e-300))
        if not np.all(np.isfinite(x)):
            return self._fail("non-finite output")
        if n_sat and self.saturation_is_failure:
            return self._fail(f"{n_sat} saturated output(s)")
        if self.max_relative_residual is not None and residual is not None and residual > self.max_relative_residual:
            return self._fail(f"relative residual {residual:.3g} > {self.max_relative_residual:g}")
        return x

    def _method_stats(self, result) -> None:
        ops = getattr(result, "operations", None)
        if isinstance(ops, dict):
            for key, value in ops.items():
                self.operations[key] = self.operations.get(key, 0) + int(value)
        history = getattr(result, "history", None)
        if history:
            self.iterations.add(int(history[-1].get("iteration", 0)))
            res = history[-1].get("residual")
            if res is not None:
                self.final_residual.add(res)
        details = getattr(result, "details", None)
        if isinstance(details, dict):
            if details.get("extracted_now"):
                self.extractions += 1
            if details.get("inv_blocks") is not None and details.get("block_sizes"):
                self.inv_blocks[int(sum(details["block_sizes"]))] = int(details["inv_blocks"])
            if details.get("shift") is not None and details.get("extracted_now", True):
                self.shift.add(details["shift"])

    def _fail(self, why: str):
        self.failures += 1
        self.last_failure = why
        raise SolverFailure(f"circuit solve #{self.calls} failed: {why}")

    def stats(self) -> dict:
        s = {"backend": "circuit", "solves": self.calls, "rhs_columns": self.columns, "failures": self.failures,
             "exceptions": self.exceptions, "saturation_events": self.saturation_events,
             "saturated_outputs": self.saturated_outputs, "checked": self.rel_err.count,
             "rel_err_mean": self.rel_err.mean, "rel_err_max": self.rel_err.max, "rel_err_last": self.rel_err.last,
             "residual_mean": self.residual.total / self.calls if self.calls else None,
             "residual_max": self.residual.max if self.calls else None,
             "sizes": {str(k): v for k, v in sorted(self.sizes.items())}}
        if self.energy.count:
            s["energy_j_total"] = self.energy.total
        if self.settling.count:
            s["settling_s_mean"] = self.settling.mean
            s["settling_s_max"] = self.settling.max
        if self.operations:
            s["operations"] = dict(self.operations)
        if self.iterations.count:
            s["iterations_mean"] = self.iterations.mean
            s["iterations_max"] = self.iterations.max
            s["measured_residual_max"] = self.final_residual.max or 0.0
        if self.extractions:
            s["extractions"] = self.extractions
        if self.shift.count:
            s["shift_mean"] = self.shift.mean
        if any(v > 1 for v in self.inv_blocks.values()):
            s["inv_blocks"] = {str(k): v for k, v in sorted(self.inv_blocks.items())}
        if self.last_failure:
            s["last_failure"] = self.last_failure
        return s

    def __repr__(self) -> str:
        return f"CircuitSolver({self.description})"


_SOLVER_KEYS = {"check_every", "saturation_is_failure", "max_relative_residual", "transient"}


def _split_method(spec: Any) -> tuple[Any, Optional[dict]]:
    """Take a ``method`` entry out of a circuit spec mapping (the YAML route; see the module docstring)."""
    if isinstance(spec, dict) and "method" in spec:
        spec = dict(spec)
        return spec, _method_spec(spec.pop("method"))
    return spec, None


def _method_spec(method: Any) -> dict:
    if isinstance(method, str):
        return {"name": method}
    if isinstance(method, dict):
        method = dict(method)
        if "name" not in method:
            raise ValueError(f"a solver method mapping needs a 'name' (direct, hp-inv, blockamc), got {method!r}")
        return method
    raise ValueError(f"solver method must be a name or a mapping with 'name', got {method!r}")


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
    ``{preset: rram, device: {levels: 16}}`` (preset with field overrides). A solution method (``method: hp-inv``
    and its options, or ``method: {name: hp-inv, ...}``, or ``circuit: {preset: ..., method: {...}}``) wraps the
    circuit in ``amc.MethodSolver``; without one the circuit is a single INV array (``amc.AnalogSolver``).
    ``equilibrate: true`` is a method option for hp-inv (Jacobi scaling of the whole method) and sets the
    circuit's ``io.equilibrate`` otherwise.
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

    circuit_spec, method = _split_method(cfg.pop("circuit", "rram"))
    adapter = {k: cfg.pop(k) for k in list(cfg) if k in _SOLVER_KEYS}
    if "method" in cfg:
        if method is not None:
            raise ValueError("solver method given twice (top level and inside the circuit spec)")
        method = _method_spec(cfg.pop("method"))
    if cfg and method is None:
        method = {"name": "direct"}
    if method is not None:
        method = {**method, **cfg}          # top-level method options (iterations, refinement, ...)
    circuit = _circuit_config(circuit_spec)
    description = getattr(circuit, "name", str(circuit))
    if method is None or (method["name"] == "direct" and set(method) <= {"name", "equilibrate"}):
        if method is not None and method.get("equilibrate") is not None:
            circuit = circuit.replace(**{"io.equilibrate": bool(method["equilibrate"])})
        inner = AnalogSolver(circuit)
    else:
        from amc import MethodSolver

        options = {k: v for k, v in method.items() if k != "name"}
        if method["name"] != "hp-inv" and "equilibrate" in options:
            circuit = circuit.replace(**{"io.equilibrate": bool(options.pop("equilibrate"))})
        if method["name"] == "hp-inv":
            options.setdefault("operators", "extracted")   # per-solve ngspice runs are far too slow for training
        inner = MethodSolver(circuit, method=method["name"], **options)
        description = f"{description}, {method['name']} {options}"
    return CircuitSolver(inner, check_every=adapter.get("check_every", 1),
                         saturation_is_failure=adapter.get("saturation_is_failure", True),
                         max_relative_residual=adapter.get("max_relative_residual"),
                         transient=adapter.get("transient", False), description=description)
