"""The one result type of every solve (one INV array, HP-INV, BlockAMC, RePAST-style, the digital reference).

Arrays follow the shape of g: ``x`` is (n,) or (n, k); ``saturated`` is a boolean array of x's shape (an output
that left the op-amp's linear region in the settle that produced it; multi-array methods flag every output of a
column in which any array saturated). ``operations`` counts what the hardware did; ``analog_error`` is the error
of the analog answer before any digital refinement (the INV's one-shot answer), ``relative_error`` the error of
the returned x; both against ``numpy.linalg.solve`` and both diagnostics only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from amc.hw.counters import OperationCounts


@dataclass(repr=False)
class Solution:
    x: np.ndarray
    method: str                                   # direct | hp-inv | blockamc | repast | numpy
    backend: str                                  # circuit | numpy
    relative_residual: float                      # ||H x - g|| / ||g|| over all columns
    relative_residuals: np.ndarray                # per column
    saturated: np.ndarray                         # bool, shape of x
    operations: OperationCounts = field(default_factory=OperationCounts)
    analog_error: Optional[float] = None
    bias_error: Optional[float] = None            # the deliberate shift's error in exact arithmetic, ||x_b - x*||/||x*||
    device_error: Optional[float] = None          # the rest: ||x - x_b|| / ||x*|| (levels, programming, noise, ...)
    step_cosine: Optional[float] = None           # cos(x, x*): the preconditioned direction against the exact one
    relative_error: Optional[float] = None
    equivalent_bits: Optional[float] = None
    history: list = field(default_factory=list)   # one record per refinement iteration
    netlist: Optional[str] = None                 # the deck of the first right-hand side as solved (one array)
    i0_a: Optional[np.ndarray] = None
    static_power_w: Optional[np.ndarray] = None
    settling_time_s: Optional[np.ndarray] = None
    energy_j: Optional[np.ndarray] = None
    settled: Optional[np.ndarray] = None
    rescales: int = 0
    engine_fallbacks: int = 0                     # right-hand sides the matrix engine handed to plain ngspice
    lambda_min: Optional[float] = None
    condition_number: Optional[float] = None
    g0_s: Optional[float] = None
    wall_time_s: float = 0.0
    details: dict = field(default_factory=dict)
    waveforms: Optional[list] = None
    # Limits reported like saturation, one entry per right-hand side (None where the model has no such limit or the
    # analysis cannot see it): an op-amp output current beyond io.linear_fraction of its limit; an output that moved
    # at that fraction of the slew rate (transients only); the largest output current as a fraction of its limit.
    current_limited: Optional[np.ndarray] = None
    slewed: Optional[np.ndarray] = None
    output_current_fraction: Optional[np.ndarray] = None

    @property
    def saturated_any(self) -> bool:
        return bool(np.any(self.saturated))

    @property
    def columns(self) -> int:
        return 1 if np.ndim(self.x) == 1 else int(np.shape(self.x)[1])

    def error_against(self, reference: np.ndarray) -> float:
        reference = np.asarray(reference, dtype=float)
        return float(np.linalg.norm(self.x - reference) / np.linalg.norm(reference))

    def to_dict(self) -> dict:
        sat = np.asarray(self.saturated)
        return {
            "method": self.method, "backend": self.backend, "x": _plain(self.x),
            "relative_residual": float(self.relative_residual),
            "relative_residuals": _plain(self.relative_residuals),
            "saturated": bool(sat.any()),
            "saturated_outputs": _plain(np.argwhere(sat).reshape(-1) if sat.ndim == 1 else np.argwhere(sat)),
            "operations": self.operations.to_dict(),
            "analog_error": self.analog_error, "relative_error_vs_numpy": self.relative_error,
            "bias_error": self.bias_error, "device_error": self.device_error, "step_cosine": self.step_cosine,
            "equivalent_bits": self.equivalent_bits, "history": _plain(self.history),
            "i0_a": _plain(self.i0_a), "static_power_w": _plain(self.static_power_w),
            "settling_time_s": _plain(self.settling_time_s), "energy_j": _plain(self.energy_j),
            "settled": _plain(self.settled), "rescales": self.rescales, "engine_fallbacks": self.engine_fallbacks, "lambda_min": _plain(self.lambda_min),
            "condition_number": _plain(self.condition_number), "g0_s": _plain(self.g0_s),
            "wall_time_s": self.wall_time_s, "details": _plain(self.details),
            **({"current_limited": _plain(self.current_limited), "slewed": _plain(self.slewed),
                "output_current_fraction": _plain(self.output_current_fraction)}
               if self.output_current_fraction is not None and np.any(self.output_current_fraction) else {}),
        }

    def summary(self) -> str:
        n = np.shape(self.x)[0]
        parts = [f"{self.method}", f"n={n}", f"{self.columns} rhs", f"residual {self.relative_residual:.2e}"]
        if self.analog_error is not None:
            parts.append(f"analog error {self.analog_error:.2e}")
        if self.relative_error is not None and self.method not in ("direct", "numpy"):
            parts.append(f"final error {self.relative_error:.2e}")
        if self.history:
            parts.append(f"{self.history[-1]['iteration']} iterations")
        ops = self.operations
        if self.backend == "circuit":
            parts.append(f"{ops.inv_settles} settles, {ops.mvm_reads} MVM reads, {ops.programmings} programmings, "
                         f"{ops.ngspice_runs} ngspice runs")
            if ops.programmings_verified or ops.programmings_restamped:
                parts.append(f"{ops.programmings_verified} programmings verified by ngspice, "
                             f"{ops.programmings_restamped} re-stamped")
        if self.static_power_w is not None:
            parts.append(f"static power {np.max(self.static_power_w) * 1e3:.4g} mW")
        if self.settling_time_s is not None:
            parts.append(f"settling {np.nanmax(self.settling_time_s) * 1e9:.4g} ns")
        if self.energy_j is not None:
            parts.append(f"energy {np.nanmax(self.energy_j) * 1e9:.4g} nJ")
        if self.rescales:
            parts.append(f"re-ranged {self.rescales}x")
        if self.engine_fallbacks:
            parts.append(f"{self.engine_fallbacks} rhs by plain ngspice (matrix engine fell back)")
        if self.saturated_any:
            parts.append(f"SATURATED ({int(np.sum(self.saturated))} outputs)")
        if self.current_limited is not None and np.any(self.current_limited):
            parts.append(f"CURRENT-LIMITED ({int(np.sum(self.current_limited))} rhs)")
        if self.slewed is not None and np.any(self.slewed):
            parts.append(f"slewed ({int(np.sum(self.slewed))} rhs)")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"Solution({self.summary()})"

    __str__ = __repr__


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, OperationCounts):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


def residuals(h: np.ndarray, x: np.ndarray, g: np.ndarray) -> tuple[float, np.ndarray]:
    """(||H x - g|| / ||g|| over all columns, per column) for x, g of shape (n, k)."""
    r = h @ x - g
    norms = np.linalg.norm(g, axis=0)
    per_column = np.where(norms > 0, np.linalg.norm(r, axis=0) / np.where(norms > 0, norms, 1), 0.0)
    total = float(np.linalg.norm(r) / max(np.linalg.norm(g), 1e-300))
    return total, per_column


def equivalent_bits(x: np.ndarray, x_star: np.ndarray) -> tuple[float, float]:
    """(relative error, -log2 of it) of x against the reference x*; bits capped at 60 for an exact answer."""
    err = float(np.linalg.norm(np.asarray(x) - x_star) / max(np.linalg.norm(x_star), 1e-300))
    bits = 60.0 if err <= 2.0 ** -60 else float(-np.log2(err))
    return err, bits


def column_flags(flags: np.ndarray, shape: tuple) -> np.ndarray:
    """Per-column saturation flags (k,) spread to an array of x's shape."""
    flags = np.asarray(flags, dtype=bool).reshape(-1)
    if len(shape) == 1:
        return np.full(shape, bool(flags.any()))
    return np.broadcast_to(flags[None, :], shape).copy()
