"""amc-cosim circuit core: ngspice co-simulation of closed-loop RRAM/op-amp matrix inversion (x = H^-1 g)."""
from amc.config import CircuitConfig, DeviceConfig, IOConfig, InverterConfig, OpAmpConfig, SimulationConfig, WireConfig, PRESETS
from amc.errors import (AccuracyWarning, AmcError, ConfigError, InputError, MappingError, NgspiceUnavailableError, SimulationError,
                     SingularMatrixError, UnstableCircuitError)
from amc.solver import AnalogSolver
from amc.solution import Solution
from amc.hw import InvArray, OperationCounts
from amc.methods.config import (BlockAMCConfig, CouplingSection, DirectConfig, HPInvConfig, MethodConfig, MVMSection,
                                RepastConfig)

__all__ = ["AnalogSolver", "Solution", "InvArray", "OperationCounts", "MethodConfig", "MVMSection", "DirectConfig",
           "HPInvConfig", "BlockAMCConfig", "RepastConfig", "CouplingSection", "CircuitConfig", "DeviceConfig", "OpAmpConfig", "InverterConfig", "WireConfig",
           "IOConfig", "SimulationConfig", "PRESETS", "AccuracyWarning", "AmcError", "ConfigError", "InputError", "MappingError",
           "NgspiceUnavailableError", "SimulationError", "SingularMatrixError", "UnstableCircuitError"]

# Precision and scale (issue 4): sliced analog MVM, HP-INV refinement, BlockAMC partitioning.
from amc.methods.errors import BlockError, ConvergenceError
from amc.hw.mvm import AnalogMVM, MVMResult, bit_slice
from amc.methods.hpinv import HPInvSolver
from amc.methods.blockamc import BlockAMCSolver
from amc.methods import METHODS, MethodSolver, solve_system
from amc.protocol import Solver, build_solver, circuit_from_spec

__all__ += ["AnalogMVM", "MVMResult", "bit_slice", "HPInvSolver", "BlockAMCSolver", "MethodSolver",
            "solve_system", "METHODS", "Solver", "build_solver", "circuit_from_spec", "ConvergenceError", "BlockError"]
