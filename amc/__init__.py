"""amc-cosim circuit core: ngspice co-simulation of closed-loop RRAM/op-amp matrix inversion (x = H^-1 g)."""
from .config import CircuitConfig, DeviceConfig, IOConfig, InverterConfig, OpAmpConfig, SimulationConfig, WireConfig, PRESETS
from .errors import (AccuracyWarning, AmcError, ConfigError, InputError, MappingError, NgspiceUnavailableError, SimulationError,
                     SingularMatrixError, UnstableCircuitError)
from .solver import AnalogSolver, Solution

__all__ = ["AnalogSolver", "Solution", "CircuitConfig", "DeviceConfig", "OpAmpConfig", "InverterConfig", "WireConfig",
           "IOConfig", "SimulationConfig", "PRESETS", "AccuracyWarning", "AmcError", "ConfigError", "InputError", "MappingError",
           "NgspiceUnavailableError", "SimulationError", "SingularMatrixError", "UnstableCircuitError"]

# Precision and scale (issue 4): sliced analog MVM, HP-INV refinement, BlockAMC partitioning.
from .method_errors import BlockError, ConvergenceError
from .method_result import MethodSolution
from .mvm import AnalogMVM, MVMResult, bit_slice
from .hpinv import HPInvSolver
from .blockamc import BlockAMCSolver
from .methods import METHODS, MethodSolver, solve_system

__all__ += ["AnalogMVM", "MVMResult", "bit_slice", "HPInvSolver", "BlockAMCSolver", "MethodSolver", "MethodSolution",
            "solve_system", "METHODS", "ConvergenceError", "BlockError"]
