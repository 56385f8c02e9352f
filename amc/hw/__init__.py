"""Hardware layer: programmed arrays and their operation counters (the netlist writer and the ngspice runner
are ``amc.hw.netlist`` and ``amc.hw.runner``)."""
from amc.hw.counters import OperationCounts
from amc.hw.inv_array import InvArray

__all__ = ["OperationCounts", "InvArray"]
