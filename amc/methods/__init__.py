"""One entry point for the solution methods: ``direct`` (one INV settle per right-hand side), ``hp-inv`` (iterative
refinement), ``blockamc`` (Schur-complement partitioning) and ``repast`` (inverse computed by INV once per
programming, applied by analog MVM), configured by a typed ``MethodConfig``.

    sol = amc.solve_system(H, g, method="hpinv-pcg", config="rram", iterations=3)
    solver = amc.MethodSolver("rram", method={"preset": "hpinv-pcg", "preconditioner": "identity"})
    sol.x, sol.analog_error, sol.operations, sol.history

``MethodSolver`` satisfies ``amc.protocol.Solver``: ``solve(H, B) -> Solution`` plus the declared properties
``deterministic`` (repeated solves of one H give the same x) and ``linear`` (x is linear in B, up to converter
rounding). ``program(H)`` returns a handle (amc/methods/programmed.py) owning H's own arrays (one physical array
set per matrix, held in the method's cache by equality of H, least recently used dropped beyond ``cache_size``);
``solve(H, B)`` is program-then-solve, so a K-FAC factor keeps its arrays between inverse updates.
"""
from __future__ import annotations

from typing import Any, Union

import numpy as np

from amc.config import CircuitConfig
from amc.errors import ConfigError
from amc.hw.mapping import validate_matrix, validate_rhs
from amc.methods.config import (METHOD_NAMES, PRESETS, BlockAMCConfig, DirectConfig, HPInvConfig, MethodConfig,
                                RepastConfig, method_config)
from amc.methods.shared import circuit_config
from amc.reference import numpy_solution
from amc.solution import Solution

METHODS = METHOD_NAMES
# the per-method configs, re-exported: ``from amc.methods import HPInvConfig``
__all__ = ["METHODS", "PRESETS", "MethodConfig", "DirectConfig", "HPInvConfig", "BlockAMCConfig", "RepastConfig",
           "method_config", "MethodSolver", "solve_system"]


class MethodSolver:
    """Solver object for any method: ``solve(H, B) -> Solution`` (``.x`` has the shape of B).

    ``MethodSolver(config, method="hpinv-pcg", iterations=3)``, ``MethodSolver("ideal", method="blockamc",
    array_size=32)``. A key the method does not have is an unknown key naming the method.
    """

    def __init__(self, config: Union[CircuitConfig, str, None] = None, method: Any = "direct",
                 backend: str = "circuit", mvm_config: Union[CircuitConfig, str, None] = None, **options):
        if backend not in ("circuit", "numpy"):
            raise ConfigError(f"backend must be 'circuit' or 'numpy', got {backend!r}")
        self.config = circuit_config(config)
        self.method_config = method_config(method, options)
        self.method = self.method_config.name
        self.backend = backend
        mvm = None if mvm_config is None else circuit_config(mvm_config)
        # the method's config builds its own solver (amc/methods/config.py); numpy runs no hardware
        self._impl = None if backend == "numpy" else self.method_config.build(self.config, mvm)

    @property
    def deterministic(self) -> bool:
        """Repeated solves of one H give the same x (no read noise, no drift)."""
        if self._impl is None:
            return True
        return bool(self._impl.deterministic)

    @property
    def linear(self) -> bool:
        """x is linear in B (up to converter rounding): then a response measured with identity right-hand sides is
        the method itself. Each method says so (False for PCG, a tolerance, noise or drift)."""
        return True if self._impl is None else bool(self._impl.linear)

    def plan(self, n: int, k: int):
        """What programming an n x n system and one solve of k right-hand sides do to the hardware, stated before
        running (amc/methods/plan.py): the count model the cost ledger prices."""
        from amc.methods.plan import plan_of
        if self._impl is None:
            raise ConfigError("backend 'numpy' runs no hardware: it has no plan")
        return plan_of(self._impl, n, k)

    def program(self, h: np.ndarray):
        """H on this method's arrays: a ``Programmed`` handle (amc/methods/programmed.py) owning them, their counts
        and programming time, with ``.solve(B, seconds_since_programming)``; programming an equal H again returns
        the held handle (no new write)."""
        if self._impl is None:
            raise ConfigError("backend 'numpy' runs no hardware: there is nothing to program")
        return self._impl.program(validate_matrix(h))

    def __repr__(self) -> str:
        return f"MethodSolver({self.method_config!r}, backend={self.backend!r}, circuit {self.config.name!r})"

    def solve(self, h: np.ndarray, g: np.ndarray, seconds_since_programming: float = 0.0,
              transient: bool = False) -> Solution:
        """``seconds_since_programming``: the drift clock (direct and hp-inv); ``transient``: every settle as an
        ngspice .tran with settling time and energy (direct only)."""
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        if transient and self.method != "direct":
            raise ConfigError(f"transient solves are for method direct, not {self.method!r}")
        if seconds_since_programming and self.method not in ("direct", "hp-inv"):
            raise ConfigError(f"seconds_since_programming (the drift clock) is for methods direct and hp-inv, not "
                              f"{self.method!r}")
        if self._impl is None:      # numpy.linalg.solve, labelled as what it is (not as the configured method)
            return numpy_solution(h, g)
        if transient:
            return self._impl.solve(h, g, transient=True)
        if seconds_since_programming:
            return self._impl.solve(h, g, seconds_since_programming)
        return self._impl.solve(h, g)


def solve_system(h: np.ndarray, g: np.ndarray, method: Any = "direct",
                 config: Union[CircuitConfig, str, None] = None, backend: str = "circuit", **options) -> Solution:
    """Solve H x = g with the chosen method (a preset, a method name or a mapping; options as MethodConfig keys)."""
    return MethodSolver(config, method=method, backend=backend, **options).solve(h, g)
