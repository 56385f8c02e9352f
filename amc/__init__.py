"""amc-cosim circuit core: ngspice co-simulation of closed-loop RRAM/op-amp matrix inversion (x = H^-1 g)."""
from .config import CircuitConfig, DeviceConfig, IOConfig, InverterConfig, OpAmpConfig, SimulationConfig, WireConfig, PRESETS
from .errors import (AmcError, ConfigError, InputError, MappingError, NgspiceUnavailableError, SimulationError,
                     SingularMatrixError, UnstableCircuitError)
from .solver import AnalogSolver, Solution

__all__ = ["AnalogSolver", "Solution", "CircuitConfig", "DeviceConfig", "OpAmpConfig", "InverterConfig", "WireConfig",
           "IOConfig", "SimulationConfig", "PRESETS", "AmcError", "ConfigError", "InputError", "MappingError",
           "NgspiceUnavailableError", "SimulationError", "SingularMatrixError", "UnstableCircuitError"]
