"""AnalogSolver: x = H^-1 g on one INV array, programmed whenever H changes, with the digital answer behind the
same API (``backend="numpy"``).

The physical array is an ``amc.hw.InvArray`` (``solver.array``): it keeps one device draw per programming and
counts what was done to it (``solver.counts``).
"""
from __future__ import annotations

import time
from typing import Optional, Union

import numpy as np

from amc.config import CircuitConfig
from amc.errors import ConfigError
from amc.hw.counters import OperationCounts
from amc.hw.inv_array import InvArray
from amc.hw.mapping import MappedArray, validate_matrix, validate_rhs, warn_if_inaccurate
from amc.methods.shared import circuit_config
from amc.reference import numpy_solution
from amc.solution import Solution


class AnalogSolver:
    """Solve H x = g with the closed-loop RRAM/op-amp circuit simulated by ngspice (or exactly, with numpy).

    ``AnalogSolver(config).solve(H, g)``: g of shape (n,) or (n, k). The array is programmed once per distinct H
    (programming error is drawn then); read noise is drawn for every right-hand side.
    """

    def __init__(self, config: Union[CircuitConfig, str, None] = None, backend: str = "circuit"):
        config = circuit_config(config)
        if backend not in ("circuit", "numpy"):
            raise ConfigError(f"backend must be 'circuit' or 'numpy', got {backend!r}")
        if backend == "circuit" and config.device.drift_nu > 0:
            raise ConfigError("conductance drift (device.drift_nu) acts on reads at a time after programming, which "
                              "AnalogSolver does not take: use amc.MethodSolver(config, method={'name': 'direct', "
                              "'operators': 'extracted'}).solve(H, g, seconds_since_programming=...)")
        self.config = config
        self.backend = backend
        self.array = InvArray(config)
        self._held: Optional[np.ndarray] = None     # the H the array holds (compared by value)

    @property
    def per_solve_noise(self) -> bool:
        return self.backend == "circuit" and self.array.per_solve_noise

    @property
    def counts(self) -> OperationCounts:
        return self.array.counts

    @property
    def engine_stats(self) -> dict:
        return self.array.engine_stats

    def __repr__(self) -> str:
        return f"AnalogSolver({self.backend}, {self.config!r})"

    def program(self, h: np.ndarray) -> MappedArray:
        """Program H into the array unless it already holds it; the conductances as programmed."""
        h = validate_matrix(h)
        if self._held is None or self._held.shape != h.shape or not np.array_equal(self._held, h):
            self._held = None
            self.array.program(h)
            self._held = h.copy()
        return self.array.mapped

    def solve(self, h: np.ndarray, g: np.ndarray, transient: bool = False) -> Solution:
        start = time.perf_counter()
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        if self.backend == "numpy":
            return numpy_solution(h, g, start)
        before = self.array.counts.copy()
        self.program(h)
        warn_if_inaccurate(self.array.mapped)  # a solve that passes with a poor answer says why
        solution = self.array.solve(g, transient=transient)
        solution.operations = self.array.counts - before
        solution.wall_time_s = time.perf_counter() - start
        return solution

    def deck(self, h: np.ndarray, g: np.ndarray, transient: bool = False) -> str:
        """The ngspice deck of one settle of H x = g (first column of g) on this solver's array."""
        self.program(h)
        return self.array.deck(g, transient=transient)
