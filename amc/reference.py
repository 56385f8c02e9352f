"""The one digital reference: x = H^-1 B by LAPACK (numpy.linalg.solve), for ``backend: numpy`` (MethodSolver, the
``amc solve`` command) and for training's NumpySolver. A comparison, never a stand-in for the circuit."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from amc.hw.counters import OperationCounts, exact_solve_flops
from amc.hw.mapping import check_invertible
from amc.solution import Solution, residuals


def exact_solve(h: np.ndarray, b: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """x of (H + shift diag(H)) x = B in float64 (the exact twin of a run whose circuit held a shifted H)."""
    h = np.asarray(h, dtype=np.float64)
    if shift:
        h = h + shift * np.diag(np.diag(h))
    return np.linalg.solve(h, np.asarray(b, dtype=np.float64))


def numpy_solution(h: np.ndarray, g: np.ndarray, start: Optional[float] = None, method: str = "numpy") -> Solution:
    """The exact digital answer as a Solution (no analog operations; digital flops of one LU solve)."""
    start = time.perf_counter() if start is None else start
    condition = check_invertible(h)
    x = exact_solve(h, g)
    n = h.shape[0]
    cols = g.reshape(n, -1)
    total, per_column = residuals(h, x.reshape(n, -1), cols)
    k = cols.shape[1]
    return Solution(x=x, method=method, backend="numpy", relative_residual=total,
                    relative_residuals=per_column[0] if g.ndim == 1 else per_column,
                    saturated=np.zeros(g.shape, dtype=bool), i0_a=np.zeros(k) if g.ndim > 1 else 0.0,
                    operations=OperationCounts(digital_flops=exact_solve_flops(n, k)),
                    relative_error=0.0, equivalent_bits=60.0, condition_number=condition,
                    wall_time_s=time.perf_counter() - start)
