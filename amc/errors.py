"""Exceptions of the circuit core. Each names the problem; simulation errors carry ngspice's own lines."""
from __future__ import annotations


class AmcError(Exception):
    """Base class: every error raised on purpose by `amc`."""


class ConfigError(AmcError, ValueError):
    """A configuration value or key is wrong (the message names the key and the source)."""


class InputError(AmcError, ValueError):
    """The matrix or right-hand side cannot be solved as given (shape, NaN/Inf, empty)."""


class SingularMatrixError(InputError):
    """H is singular or so ill-conditioned that no circuit can invert it."""


class MappingError(InputError):
    """H cannot be represented by the conductance window (e.g. all zeros, or lost to quantisation)."""


class UnstableCircuitError(InputError):
    """The closed loop would not settle: the mapped matrix has eigenvalues with non-positive real parts."""


class NgspiceUnavailableError(AmcError, RuntimeError):
    """The ngspice shared library could not be loaded."""


class SimulationError(AmcError, RuntimeError):
    """ngspice refused the deck or failed to converge; `ngspice_output` holds what it printed."""

    def __init__(self, message: str, ngspice_output: list[str] | None = None):
        self.ngspice_output = list(ngspice_output or [])
        tail = "\n".join(self.ngspice_output[-25:])
        super().__init__(f"{message}\n--- ngspice output (last lines) ---\n{tail}" if tail else message)


class AccuracyWarning(UserWarning):
    """A solve succeeded but its answer is far from H^-1 g for a known cause (named in the message)."""
