"""Hardware layer: programmed arrays and their operation counters (the netlist writer and the ngspice runner
are ``amc.netlist`` and ``amc.runner``)."""
from .counters import OperationCounts
from .inv_array import InvArray
from .keys import matrix_key

__all__ = ["OperationCounts", "InvArray", "matrix_key"]
