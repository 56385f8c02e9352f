"""amc-cosim circuit core: ngspice co-simulation of closed-loop RRAM/op-amp matrix inversion (x = H^-1 g)."""
from .config import CircuitConfig, DeviceConfig, IOConfig, InverterConfig, OpAmpConfig, SimulationConfig, WireConfig, PRESETS
from .errors import (AccuracyWarning, AmcError, ConfigError, InputError, MappingError, NgspiceUnavailableError, SimulationError,
                     SingularMatrixError, UnstableCircuitError)
from .solver import AnalogSolver
from .solution import Solution
from .hw import InvArray, OperationCounts
from .method_config import MethodConfig, MVMSection

__all__ = ["AnalogSolver", "Solution", "InvArray", "OperationCounts", "MethodConfig", "MVMSection", "CircuitConfig", "DeviceConfig", "OpAmpConfig", "InverterConfig", "WireConfig",
           "IOConfig", "SimulationConfig", "PRESETS", "AccuracyWarning", "AmcError", "ConfigError", "InputError", "MappingError",
           "NgspiceUnavailableError", "SimulationError", "SingularMatrixError", "UnstableCircuitError"]

# Precision and scale (issue 4): sliced analog MVM, HP-INV refinement, BlockAMC partitioning.
from .method_errors import BlockError, ConvergenceError
from .mvm import AnalogMVM, MVMResult, bit_slice
from .hpinv import HPInvSolver
from .blockamc import BlockAMCSolver
from .methods import METHODS, MethodSolver, solve_system
from .protocol import Solver, build_solver, circuit_from_spec

__all__ += ["AnalogMVM", "MVMResult", "bit_slice", "HPInvSolver", "BlockAMCSolver", "MethodSolver",
            "solve_system", "METHODS", "Solver", "build_solver", "circuit_from_spec", "ConvergenceError", "BlockError"]
