"""What a simulation of a programmed array returns: typed results instead of dicts keyed by ngspice vector names.

``OperatingPointResult``: k operating points (one per right-hand side) of one circuit -- node voltages, the
op-amps' output currents, the supply power. ``TransientResult``: one right-hand side's waveforms over time.
Both name nodes as the netlist does (``amc.hw.netlist.output_node``) and sources by their element name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

from amc.hw import periphery
from amc.hw.netlist import TransientSpec, output_node


@dataclass
class OperatingPointResult:
    """k operating points: ``v(node)`` and ``i(source)`` are (k,) arrays, ``supply_power()`` is (k,) watts."""

    voltages: Mapping[str, np.ndarray]     # node -> (k,) volts
    currents: Mapping[str, np.ndarray]     # 0 V sense source -> (k,) amperes into its + terminal
    power_w: np.ndarray                    # (k,) power delivered by the two rails
    deck: Optional[str] = None             # the deck loaded for this call (None: an already loaded deck re-run)

    @property
    def k(self) -> int:
        return int(np.shape(self.power_w)[0])

    def v(self, node: str) -> np.ndarray:
        return self.voltages[node]

    def i(self, source: str) -> np.ndarray:
        return self.currents[source]

    def supply_power(self) -> np.ndarray:
        return self.power_w

    def outputs(self, n: int) -> np.ndarray:
        """The n op-amp output voltages (n, k)."""
        return np.stack([self.voltages[output_node(j)] for j in range(n)]) if n else np.zeros((0, self.k))

    def sense_currents(self) -> np.ndarray:
        """Every sensed op-amp output current (sources, k); (0, k) for the behavioural op-amp (no sense sources)."""
        if not self.currents:
            return np.zeros((0, self.k))
        return np.stack(list(self.currents.values()))

    def __repr__(self) -> str:
        return f"OperatingPointResult({self.k} operating points, {len(self.voltages)} nodes, {len(self.currents)} currents)"


@dataclass
class TransientResult:
    """One right-hand side's waveforms: ``v(node)``, ``i(source)`` and ``supply_power()`` are (T,) over ``time``."""

    time: np.ndarray                       # (T,) seconds, ngspice's own time points
    vectors: Mapping[str, np.ndarray] = field(repr=False)   # ngspice's raw vectors (node voltages, source currents)
    supply_v: float = 0.0
    spec: Optional[TransientSpec] = None   # the window finally run (after any doubling)
    deck: Optional[str] = None

    def v(self, node: str) -> np.ndarray:
        return self.vectors[node]

    def i(self, source: str) -> np.ndarray:
        return self.vectors[f"{source}#branch"]

    def supply_power(self) -> np.ndarray:
        return periphery.supply_power(self.vectors, self.supply_v)

    def outputs(self, n: int) -> np.ndarray:
        """The n op-amp output waveforms (n, T)."""
        return np.stack([self.vectors[output_node(j)] for j in range(n)])

    def __repr__(self) -> str:
        return f"TransientResult({self.time.size} time points to {self.time[-1]:.3g} s)"
