"""Hardware layer: programmed arrays, their periphery, the netlist writer and the ngspice runner."""
