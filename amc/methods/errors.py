"""Errors of the multi-array methods (HP-INV refinement, BlockAMC partitioning)."""
from __future__ import annotations

from amc.errors import AmcError, InputError


class ConvergenceError(AmcError, RuntimeError):
    """Iterative refinement cannot converge (rho(I - H H0^-1) >= 1) or its residual grew; names the iteration.

    ``iteration`` is the refinement iteration at which it was detected (0 = the upfront check), ``history`` the
    per-iteration records gathered until then.
    """

    def __init__(self, message: str, iteration: int = 0, history: list | None = None, rho: float | None = None):
        self.iteration = iteration
        self.history = list(history or [])
        self.rho = rho
        super().__init__(message)


class BlockError(InputError):
    """A BlockAMC block cannot be solved (singular, unstable or unmappable); the message names the block."""

    def __init__(self, message: str, block: str = "", depth: int = 0):
        self.block = block
        self.depth = depth
        super().__init__(message)
