"""One entry point for the solution methods: ``direct`` (one INV array), ``hp-inv`` and ``blockamc``.

    sol = amc.solve_system(H, g, method="hp-inv", config="rram", iterations=10, tol=None)
    sol.x, sol.relative_residual, sol.history, sol.operations

``MethodSolver(config, method=..., **options)`` is the same thing as a solver object with ``solve(H, B)`` (the
protocol training uses) and a ``per_solve_noise`` property; it keeps the programmed arrays between solves of the
same H.
"""
from __future__ import annotations

import time
from typing import Optional, Union

import numpy as np

from .config import DEFAULT_PRESET, CircuitConfig
from .errors import ConfigError, InputError
from .mapping import validate_matrix, validate_rhs
from .method_result import MethodSolution, equivalent_bits, new_operations
from .solver import AnalogSolver

METHODS = ("direct", "hp-inv", "blockamc")

_HPINV_OPTIONS = {"iterations", "tol", "slices", "bits_per_slice", "input_slices", "mvm_adc_bits", "mvm_dac_bits",
                  "mvm_config", "gain_calibration", "mvm_target_swing", "scale_residual", "check_convergence",
                  "divergence_factor", "mvm_array_size", "refinement", "shift", "shift_margin", "equilibrate",
                  "operators", "mvm_response", "cache_size"}   # + array_size: block-Jacobi INV arrays
_BLOCK_OPTIONS = {"array_size", "mvm_config", "mvm_slices", "mvm_target_swing", "gain_calibration", "check_blocks"}


def _config(config: Union[CircuitConfig, str, None]) -> CircuitConfig:
    if config is None:
        return CircuitConfig.preset(DEFAULT_PRESET)
    if isinstance(config, str):
        return CircuitConfig.preset(config)
    if not isinstance(config, CircuitConfig):
        raise ConfigError(f"config must be a CircuitConfig or a preset name, got {type(config).__name__}")
    return config


def _check_array_size(array_size) -> Optional[int]:
    if array_size is None:
        return None
    if isinstance(array_size, bool) or not isinstance(array_size, (int, np.integer)) or array_size < 2:
        raise ConfigError(f"array_size must be an integer >= 2 (rows/columns of one array), got {array_size!r}")
    return int(array_size)


class _DirectSolver:
    """One INV array for the whole system (the existing AnalogSolver), wrapped into a MethodSolution."""

    def __init__(self, config: CircuitConfig, array_size: Optional[int] = None, backend: str = "circuit"):
        self.config = config
        self.array_size = array_size
        self.inv = AnalogSolver(config, backend=backend)

    @property
    def per_solve_noise(self) -> bool:
        return self.inv.per_solve_noise

    def solve(self, h: np.ndarray, g: np.ndarray) -> MethodSolution:
        start = time.perf_counter()
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        if self.array_size is not None and h.shape[0] > self.array_size:
            raise InputError(f"method 'direct' needs one {h.shape[0]}x{h.shape[0]} array but array_size is "
                             f"{self.array_size}; use method 'blockamc'")
        key0 = self.inv._programmed_key
        sol = self.inv.solve(h, g)
        ops = new_operations()
        k = 1 if g.ndim == 1 else g.shape[1]
        if self.inv.backend == "circuit":
            ops.update(inv_solves=k, programmings=int(self.inv._programmed_key != key0), ngspice_runs=k + sol.rescales)
        x_star = np.linalg.solve(h, g)
        err, bits = equivalent_bits(sol.x, x_star)
        power = None if sol.static_power_w is None else float(np.max(sol.static_power_w))
        return MethodSolution(x=sol.x, method="direct", relative_residual=sol.relative_residual,
                              saturated=sol.saturated_any, static_power_w=power, operations=ops,
                              relative_error=err, equivalent_bits=bits, wall_time_s=time.perf_counter() - start,
                              details=dict(backend=sol.backend, rescales=sol.rescales, i0_a=sol.i0_a))


class _NumpySolver:
    """Digital reference behind the same API (backend='numpy')."""

    def __init__(self, method: str):
        self.method = method
        self.per_solve_noise = False

    def solve(self, h: np.ndarray, g: np.ndarray) -> MethodSolution:
        start = time.perf_counter()
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        x = np.linalg.solve(h, g)
        residual = float(np.linalg.norm(h @ x - g) / max(np.linalg.norm(g), 1e-300))
        return MethodSolution(x=x, method=self.method, relative_residual=residual, saturated=False,
                              static_power_w=None, operations=new_operations(), relative_error=0.0,
                              equivalent_bits=60.0, wall_time_s=time.perf_counter() - start,
                              details=dict(backend="numpy"))


class MethodSolver:
    """Solver object for any method: ``solve(H, B) -> MethodSolution`` (``.x`` has the shape of B).

    ``MethodSolver(config, method="hp-inv", iterations=10)``, ``MethodSolver("ideal", method="blockamc",
    array_size=32)``. Unknown options for the method are rejected by name.
    """

    def __init__(self, config: Union[CircuitConfig, str, None] = None, method: str = "direct",
                 backend: str = "circuit", **options):
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        if backend not in ("circuit", "numpy"):
            raise ConfigError(f"backend must be 'circuit' or 'numpy', got {backend!r}")
        self.config = _config(config)
        self.method = method
        self.backend = backend
        array_size = _check_array_size(options.pop("array_size", None))
        allowed = {"direct": set(), "hp-inv": _HPINV_OPTIONS, "blockamc": _BLOCK_OPTIONS - {"array_size"}}[method]
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(f"method {method!r} does not take option(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(allowed | {'array_size'})) or 'array_size'}")
        self.array_size = array_size
        self.options = dict(options)
        if backend == "numpy":
            self._impl = _NumpySolver(method)
        elif method == "direct":
            self._impl = _DirectSolver(self.config, array_size)
        elif method == "hp-inv":
            from .hpinv import HPInvSolver
            self._impl = HPInvSolver(self.config, array_size=array_size, **options)
        else:
            from .blockamc import BlockAMCSolver
            self._impl = BlockAMCSolver(self.config, array_size=array_size if array_size is not None else 32,
                                        **options)

    @property
    def per_solve_noise(self) -> bool:
        return self.backend == "circuit" and bool(self._impl.per_solve_noise)

    @property
    def linear(self) -> bool:
        """Whether x is a linear function of g (a response extracted with identity right-hand sides is then
        the method itself). False for HP-INV with PCG or a tolerance; True for direct/BlockAMC without noise."""
        if self.backend == "numpy":
            return True
        return bool(getattr(self._impl, "linear", not self.per_solve_noise))

    def __repr__(self) -> str:
        return f"MethodSolver(method={self.method!r}, backend={self.backend!r}, options={self.options}, {self.config.describe()})"

    def solve(self, h: np.ndarray, g: np.ndarray) -> MethodSolution:
        return self._impl.solve(h, g)


def solve_system(h: np.ndarray, g: np.ndarray, method: str = "direct",
                 config: Union[CircuitConfig, str, None] = None, backend: str = "circuit", **options) -> MethodSolution:
    """Solve H x = g with the chosen method; options as for MethodSolver (array_size, iterations, tol, ...)."""
    return MethodSolver(config, method=method, backend=backend, **options).solve(h, g)
