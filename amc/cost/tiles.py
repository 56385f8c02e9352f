"""What analog weight updates cost: programming pulses, transfer reads and tile MVMs (from OperationCounts).

An additive model, kept apart from the INV ledger: each count times an energy and a time.

- A cell pulse (a coincidence: a cell fully selected) dissipates V²·G·t_pulse in the cell.
- A driver pulse (one row or column line pulsed at ±V/2 for one slot) half-selects every cell on its line:
  (V/2)²·G·t_pulse per cell of the line. Line capacitance is left out (it is below the cells' I²R at these
  conductances and widths: ASSUMPTION, not measured here).
- An update cycle takes ``bit_length`` slots of (pulse width + gap); all lines fire in parallel.
- A read (one input vector through the tile) costs its DAC and ADC conversions, the cells' V_read²·G for one
  conversion time, and one conversion time.
"""
from __future__ import annotations

from dataclasses import dataclass

from amc.hw.counters import OperationCounts


@dataclass(frozen=True)
class TileCostModel:
    # Pulse amplitude and width: the SET pulse of amc/tiles/write_circuit.PulseModel (an ASSUMPTION documented
    # there) and the 100 ns width of amc/cost/presets.py's write-verify pulses (Lee et al., Nat. Mater. 2011: TaOx
    # switches in 10 ns; multi-level programming uses longer, gentler pulses).
    pulse_voltage_v: float = 1.2
    pulse_width_s: float = 100e-9
    # ASSUMPTION: a gap as long as the pulse between slots of a pulse train.
    pulse_gap_s: float = 100e-9
    # Cell conductance during writes and reads: the middle of the 0.5-35 uS TaOx window (Zuo et al., Nat.
    # Electron. 2025), where a weight near 0 sits in the differential mapping.
    cell_conductance_s: float = 17.75e-6
    # 8-bit SAR converters at a Walden figure of merit of 9.7 fJ per conversion step (amc/cost/presets.py):
    # 2^8 x 9.7 fJ = 2.48 pJ per conversion, 250 MS/s (4 ns per conversion).
    conversion_energy_j: float = 256 * 9.7e-15
    conversion_time_s: float = 4e-9
    read_voltage_v: float = 0.2

    def price(self, counts: OperationCounts, rows: int, cols: int, bit_length: int) -> dict:
        """Energy (J) and time (s) of what ``counts`` says was done to an array of rows x cols cells."""
        v, t, g = self.pulse_voltage_v, self.pulse_width_s, self.cell_conductance_s
        cell = counts.cell_pulses * v * v * g * t
        drivers = counts.driver_pulses * (v / 2) ** 2 * g * t * (0.5 * (rows + cols))
        conversions = (counts.dac_conversions + counts.adc_conversions) * self.conversion_energy_j
        array_read = counts.mvm_reads * rows * cols * self.read_voltage_v ** 2 * g * self.conversion_time_s
        update_time = counts.update_cycles * bit_length * (t + self.pulse_gap_s)
        read_time = counts.mvm_reads * self.conversion_time_s
        return {"energy_write_j": cell + drivers, "energy_read_j": conversions + array_read,
                "energy_j": cell + drivers + conversions + array_read,
                "time_update_s": update_time, "time_read_s": read_time, "time_s": update_time + read_time}
