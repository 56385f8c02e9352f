"""Result of a multi-array solve (direct, HP-INV, BlockAMC): x plus what it cost and how it converged."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


def new_operations() -> dict:
    """Array-operation counters shared by the methods.

    inv_solves: analog INV settles (one per right-hand side column); mvm_operations: analog MVM reads of one array
    with one input vector (one per slice x tile x input slice x column); programmings: arrays programmed (an INV
    differential pair or one MVM slice/tile pair counts as one); ngspice_runs: operating points simulated.
    """
    return {"inv_solves": 0, "mvm_operations": 0, "programmings": 0, "ngspice_runs": 0}


@dataclass
class MethodSolution:
    """``x`` follows the shape of g; ``history`` holds one record per HP-INV iteration (empty otherwise)."""

    x: np.ndarray
    method: str
    relative_residual: float
    saturated: bool
    static_power_w: Optional[float]
    operations: dict
    history: list = field(default_factory=list)
    relative_error: Optional[float] = None       # vs numpy.linalg.solve (diagnostic)
    equivalent_bits: Optional[float] = None       # -log2(relative_error)
    wall_time_s: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def saturated_any(self) -> bool:
        return bool(self.saturated)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "x": np.asarray(self.x).tolist(),
            "relative_residual": float(self.relative_residual),
            "saturated": bool(self.saturated),
            "static_power_w": None if self.static_power_w is None else float(self.static_power_w),
            "operations": dict(self.operations),
            "history": [_plain(h) for h in self.history],
            "relative_error_vs_numpy": self.relative_error,
            "equivalent_bits": self.equivalent_bits,
            "wall_time_s": self.wall_time_s,
            "details": _plain(self.details),
        }

    def summary(self) -> str:
        ops = self.operations
        parts = [f"method={self.method}", f"relative residual={self.relative_residual:.3e}"]
        if self.equivalent_bits is not None:
            parts.append(f"equivalent bits={self.equivalent_bits:.1f}")
        parts.append(f"INV solves={ops.get('inv_solves', 0)}, MVM operations={ops.get('mvm_operations', 0)}, "
                     f"array programmings={ops.get('programmings', 0)}")
        if self.history:
            parts.append(f"iterations={self.history[-1]['iteration']}")
        if self.saturated:
            parts.append("SATURATED")
        parts.append(f"wall time={self.wall_time_s:.3g} s")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"MethodSolution({self.summary()})"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


def equivalent_bits(x: np.ndarray, x_star: np.ndarray) -> tuple[float, float]:
    """(relative error, -log2 of it) of x against the reference x*; bits capped at 60 for an exact answer."""
    err = float(np.linalg.norm(np.asarray(x) - x_star) / max(np.linalg.norm(x_star), 1e-300))
    bits = 60.0 if err <= 2.0 ** -60 else float(-np.log2(err))
    return err, bits
