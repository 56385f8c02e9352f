"""The ledger: operation counts (amc.hw.OperationCounts) priced by a HardwareCostModel.

``cost_of(counts, hw, n=..., settle=...)`` -> ``Cost(time_s, energy_j, breakdown)``. Energy is split by component
(COMPONENTS) and the split sums to energy_j exactly (energy_j is computed as that sum). Time is the critical path of
one array doing the counted work in order -- DAC, settle or read, ADC for every operation, programming row by row,
the digital remainder on the controller -- divided by ``parallel_arrays`` for the analog part when that many arrays
share the work. Costs add (``a + b``) and scale (``cost * steps``), which is how per-solve costs become per-step and
per-epoch costs.

What is priced, and how:
- INV settle: a ``SettleCost`` -- from the exact linear model of the programmed array (``settle_of_matrix``) or from
  the closed form in lambda_min (``settle_of_size``). Op-amps are powered during the settle window only (power-gated
  while converters work: the ADC samples at the end of the window).
- MVM read: TIAs (the circuit's op-amp) settle to half an ADC LSB; the array dissipates V_read^2 G per cell.
- Conversions: Walden FOM * 2^ENOB each (presets.ConverterModel); one conversion time per settle/read.
- Programming: write-verify pulses (V I t each, drawn through the charge pump: / WriteVerifyModel.pump_efficiency)
  and verify reads (one ADC conversion and V_read^2 G t each); one endurance cycle per write pulse
  (``Cost.cell_cycles``).
- Static: ``static_cost`` -- what the arrays' periphery draws over a whole step (gating policy, wake-ups,
  converter references, logic leakage); it needs the step's critical path, so the step-level ledgers add it.
- Digital: control traffic per conversion and the method's digital flops (presets.DigitalModel), the flops spread
  over one unit per output column of the n-column array.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from amc.errors import InputError
from amc.units import format_energy, format_time
from amc.hw.counters import OperationCounts
from amc.cost.presets import HardwareCostModel
from amc.cost.settle import SettleCost, settle_cost, settle_law

COMPONENTS = ("opamps", "crosspoint array", "DAC", "ADC", "programming", "digital control", "digital remainder",
              "static")
TIME_PARTS = ("INV settles", "MVM reads", "conversions", "programming", "digital remainder", "wake-up")


@dataclass
class Cost:
    """Time on the critical path (s), energy (J) and its split by component (J, summing to energy_j)."""

    time_s: float
    energy_j: float
    breakdown: dict = field(default_factory=dict)
    time_breakdown: dict = field(default_factory=dict)
    cell_cycles: float = 0.0   # endurance cycles consumed, summed over cells (one per write pulse)

    @classmethod
    def zero(cls) -> "Cost":
        return cls(0.0, 0.0, {c: 0.0 for c in COMPONENTS}, {t: 0.0 for t in TIME_PARTS}, 0.0)

    @classmethod
    def from_parts(cls, breakdown: dict, time_breakdown: dict, cell_cycles: float = 0.0) -> "Cost":
        breakdown = {c: float(breakdown.get(c, 0.0)) for c in COMPONENTS}
        time_breakdown = {t: float(time_breakdown.get(t, 0.0)) for t in TIME_PARTS}
        return cls(sum(time_breakdown.values()), sum(breakdown.values()), breakdown, time_breakdown, cell_cycles)

    def __add__(self, other: "Cost") -> "Cost":
        return Cost.from_parts({c: self.breakdown.get(c, 0.0) + other.breakdown.get(c, 0.0) for c in COMPONENTS},
                               {t: self.time_breakdown.get(t, 0.0) + other.time_breakdown.get(t, 0.0)
                                for t in TIME_PARTS}, self.cell_cycles + other.cell_cycles)

    def __mul__(self, k: float) -> "Cost":
        if not k >= 0:
            raise InputError(f"a cost can only be scaled by a non-negative number, got {k!r}")
        return Cost.from_parts({c: v * k for c, v in self.breakdown.items()},
                               {t: v * k for t, v in self.time_breakdown.items()}, self.cell_cycles * k)

    __rmul__ = __mul__

    def with_time(self, time_s: float) -> "Cost":
        """The same energy on a different critical path (e.g. when independent arrays overlap)."""
        c = Cost.from_parts(self.breakdown, self.time_breakdown, self.cell_cycles)
        c.time_s = float(time_s)
        return c

    def to_dict(self) -> dict:
        return {"time_s": self.time_s, "energy_j": self.energy_j, "breakdown": dict(self.breakdown)}

    @classmethod
    def parallel(cls, *costs: "Cost") -> "Cost":
        """Work done at the same time on separate arrays: energies add, the critical path is the longest."""
        if not costs:
            return cls.zero()
        total = sum(costs[1:], costs[0])
        return total.with_time(max(c.time_s for c in costs))

    @classmethod
    def serial(cls, *costs: "Cost") -> "Cost":
        """Work done one after the other: energies and times add."""
        return sum(costs[1:], costs[0]) if costs else cls.zero()

    def __repr__(self) -> str:
        return f"Cost({format_time(self.time_s, 4)}, {format_energy(self.energy_j, 4)})"


# ---- per-operation costs ---------------------------------------------------------------------------------------
def settle_of_matrix(h: np.ndarray, hw: HardwareCostModel, g: Optional[np.ndarray] = None) -> SettleCost:
    """Exact settle of H programmed on hw.circuit (one InvArray), inputs auto-ranged as its periphery does
    (g default: ones)."""
    from amc.hw.inv_array import InvArray
    array = InvArray(hw.circuit).program(np.asarray(h, dtype=float))
    mapped = array.mapped
    g = np.ones(mapped.n) if g is None else np.asarray(g, dtype=float).reshape(mapped.n, -1)[:, 0]
    if array.scaling is not None:
        g = g * array.scaling
    currents = array.readout.dac(g, array.readout.initial_i0(mapped, g))
    return settle_cost(mapped, currents, hw.circuit)


# Closed-form energy: the op-amps' quiescent power times the settle time, times a factor for their output currents
# fitted to the exact model (same 23 rram-ic systems as settle.LAW_OFFSET: 1.01-1.10, mean 1.034).
ENERGY_LAW_FACTOR = 1.034


def settle_of_size(n: int, lambda_min: float, hw: HardwareCostModel, energy_factor: float = ENERGY_LAW_FACTOR,
                   law_offset: Optional[float] = None) -> SettleCost:
    """Settle of an n x n array whose loop matrix has smallest eigenvalue ``lambda_min`` (closed form)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"array size n must be a positive integer, got {n!r}")
    o = hw.circuit.opamp
    kwargs = {} if law_offset is None else {"offset": law_offset}
    t = settle_law(lambda_min, o.gbw_hz, hw.circuit.simulation.settle_tol, **kwargs)
    amps = 2 * n
    e = t * amps * 2 * o.supply_v * o.quiescent_current_a * energy_factor
    return SettleCost(time_s=t, energy_j=e, breakdown={"opamps": e, "crosspoint array": 0.0},
                      lambda_min=lambda_min, n=int(n))


def mvm_read(rows: int, cols: int, hw: HardwareCostModel) -> tuple[float, dict]:
    """(time_s, {"opamps": J, "crosspoint array": J}) of one read of a differential rows x cols MVM array."""
    o, r, d = hw.circuit.opamp, hw.read, hw.circuit.device
    t = math.log(2.0 ** (hw.adc_bits + 1)) / (2 * math.pi * o.gbw_hz * r.tia_feedback_factor)
    g_mean = d.g_min + r.mean_conductance_fraction * (d.g_max - d.g_min)
    array = 2 * rows * cols * r.read_voltage_v ** 2 * g_mean * t
    # each TIA sinks its column's current from the rails on top of its quiescent draw
    tia = cols * (2 * o.supply_v * o.quiescent_current_a * t + o.supply_v * rows * 2 * g_mean * r.read_voltage_v * t)
    return t, {"opamps": tia, "crosspoint array": array}


def programming(cells: float, n: int, hw: HardwareCostModel) -> tuple[float, float]:
    """(time_s, energy_j) to write-verify ``cells`` cells of arrays with n columns."""
    w, d = hw.write, hw.circuit.device
    verify_s = w.pulse_width_s + hw.adc.time_s
    per_cell_s = w.pulses_per_cell * (w.pulse_width_s + verify_s)
    g_mean = 0.5 * (d.g_min + d.g_max)
    per_cell_j = w.pulses_per_cell * (w.pulse_voltage_v * w.pulse_current_a * w.pulse_width_s / w.pump_efficiency()
                                      + w.verify_read_v ** 2 * g_mean * verify_s + hw.adc.energy_j(hw.adc_bits))
    parallel = w.cells_in_parallel or n
    return math.ceil(cells / parallel) * per_cell_s, cells * per_cell_j


# ---- the ledger --------------------------------------------------------------------------------------------------
def cost_of(counts: OperationCounts, hw: HardwareCostModel, *, n: int, settle: Optional[SettleCost] = None,
            lambda_min: Optional[float] = None, mvm_shape: Optional[tuple[int, int]] = None,
            parallel_arrays: int = 1) -> Cost:
    """Price ``counts`` of work done on n x n arrays.

    settle: the cost of one INV settle (``settle_of_matrix`` for a known matrix), or lambda_min: the loop's smallest
    eigenvalue, priced by the closed form (``settle_of_size``); one of them is required when counts.inv_settles > 0.
    mvm_shape: (rows, cols) of one MVM read (default (n, n)).
    parallel_arrays: arrays working at once on independent parts of the counted work; the analog time (settles,
    reads, conversions, programming) is divided by it, the digital remainder is not. Optimistic: it adds no
    programming energy for copies of an array (right when the parts are different tiles, not when one array is
    replicated to run its solves side by side).
    """
    if not isinstance(counts, OperationCounts):
        raise InputError(f"counts must be an OperationCounts, got {type(counts).__name__}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"array size n must be a positive integer, got {n!r}")
    if not isinstance(parallel_arrays, (int, np.integer)) or parallel_arrays < 1:
        raise InputError(f"parallel_arrays must be a positive integer, got {parallel_arrays!r}")
    negative = [k for k, v in counts.to_dict().items() if v < 0]
    if negative:
        raise InputError(f"operation counts must be non-negative: {', '.join(negative)}")
    if settle is not None and lambda_min is not None:
        raise InputError("pass settle= or lambda_min=, not both")
    if settle is None and lambda_min is not None:
        settle = settle_of_size(n, lambda_min, hw)
    if counts.inv_settles and settle is None:
        raise InputError("counts include INV settles: pass settle= (settle_of_matrix) or lambda_min=")
    energy = {c: 0.0 for c in COMPONENTS}
    time = {t: 0.0 for t in TIME_PARTS}
    if counts.inv_settles:
        for part in ("opamps", "crosspoint array"):
            energy[part] += counts.inv_settles * settle.breakdown.get(part, 0.0)
        time["INV settles"] += counts.inv_settles * settle.time_s
    if counts.mvm_reads:
        rows, cols = mvm_shape or (n, n)
        t_read, e_read = mvm_read(rows, cols, hw)
        for part, e in e_read.items():
            energy[part] += counts.mvm_reads * e
        time["MVM reads"] += counts.mvm_reads * t_read
    energy["DAC"] = counts.dac_conversions * hw.dac.energy_j(hw.dac_bits)
    energy["ADC"] = counts.adc_conversions * hw.adc.energy_j(hw.adc_bits)
    energy["digital control"] = counts.conversions * hw.digital.energy_per_conversion_j
    # every settle/read waits for its DACs (one conversion, all rows at once) and its ADCs (outputs_per_adc each)
    operations = counts.inv_settles + counts.mvm_reads
    time["conversions"] = operations * (hw.dac.time_s + hw.outputs_per_adc * hw.adc.time_s)
    t_prog, e_prog = programming(counts.cells_programmed, n, hw)
    energy["programming"] = e_prog
    time["programming"] = t_prog
    for part in ("INV settles", "MVM reads", "conversions", "programming"):
        time[part] /= parallel_arrays
    energy["digital remainder"] = counts.digital_flops * hw.digital.energy_per_flop_j
    time["digital remainder"] = counts.digital_flops / (hw.digital.flops_per_s * n)
    return Cost.from_parts(energy, time, cell_cycles=float(counts.cells_programmed) * hw.write.pulses_per_cell)


# ---- what the periphery draws over a whole step -------------------------------------------------------------------
def opamp_power_w(n: int, hw: HardwareCostModel) -> float:
    """Quiescent power of one n x n INV array's 2n amplifiers (n row op-amps, n column inverters)."""
    o = hw.circuit.opamp
    return 2 * n * 2 * o.supply_v * o.quiescent_current_a


def converters_of(n: int, hw: HardwareCostModel) -> tuple[int, int]:
    """(DACs, ADCs) of one n x n array: a DAC per row, an ADC per ``outputs_per_adc`` columns."""
    return n, -(-n // hw.outputs_per_adc)


def static_power_w(n: int, hw: HardwareCostModel) -> float:
    """Power one n x n array's periphery draws whatever it does: converter references/bias and logic leakage."""
    s = hw.static
    dacs, adcs = converters_of(n, hw)
    converter = (dacs * hw.dac.energy_j(hw.dac_bits) * hw.dac.sample_rate_hz
                 + adcs * hw.adc.energy_j(hw.adc_bits) * hw.adc.sample_rate_hz) * s.converter_static_fraction
    logic = n * hw.digital.flops_per_s * hw.digital.energy_per_flop_j * s.logic_leakage_fraction
    return converter + logic


def static_cost(arrays, step_time_s: float, hw: HardwareCostModel) -> tuple[float, float]:
    """(static energy J, wake-up time s) of arrays over a step whose critical path is ``step_time_s``.

    arrays: (n, busy_s, settle_s) per array: its size, the time it settles/reads/converts in the step and the part
    of that already priced as op-amp settle energy. Always-on: the op-amps draw quiescent power for the rest of the
    step. Gated: for the rest of the busy window only, plus one wake-up per array per step (its time added once:
    the arrays wake together). References and leakage draw for the whole step either way. Linear in step_time_s
    for a fixed busy time."""
    if not step_time_s >= 0:
        raise InputError(f"step time must be non-negative, got {step_time_s!r}")
    s = hw.static
    gated = s.policy == "gated"
    wake = s.wake_time_s if gated and arrays else 0.0
    energy = 0.0
    for n, busy_s, settle_s in arrays:
        p_amp = opamp_power_w(n, hw)
        on = (busy_s + s.wake_time_s) if gated else (step_time_s + wake)
        energy += p_amp * max(on - settle_s, 0.0)
        energy += static_power_w(n, hw) * (step_time_s + wake)
    return energy, wake


def area_mm2(sizes, hw: HardwareCostModel, cells: Optional[float] = None) -> dict:
    """Area (mm^2) of INV arrays of the given sizes with their periphery: differential cells (``cells`` when given:
    every cell one programming writes, MVM slices included), 2n amplifiers, the converters, one digital unit per
    column (doubled cells and amplifiers when double-buffered). MVM tiles' read amplifiers are not counted."""
    a = hw.area
    copies = 2 if hw.double_buffered else 1
    parts = {"cells": 0.0, "op-amps": 0.0, "converters": 0.0, "digital units": 0.0}
    if cells is not None:
        parts["cells"] = copies * cells * a.cell_um2 * 1e-6
    for n in sizes:
        dacs, adcs = converters_of(n, hw)
        if cells is None:
            parts["cells"] += copies * 2 * n * n * a.cell_um2 * 1e-6
        parts["op-amps"] += copies * 2 * n * a.opamp_um2 * 1e-6
        parts["converters"] += (dacs + adcs) * a.converter_um2 * 1e-6
        parts["digital units"] += n * a.fma_unit_um2 * 1e-6
    return parts


def price_arrays(items, hw: HardwareCostModel, parallel: bool = True) -> Cost:
    """Cost of several arrays' work: items are (counts, n, lambda_min or SettleCost) per array (e.g. one per
    ProgrammedArray of a method or of a K-FAC step). parallel: the arrays work at once (time = the slowest) or in
    turn (times add); energies add either way."""
    costs = []
    for counts, n, settle in items:
        if isinstance(settle, SettleCost):
            costs.append(cost_of(counts, hw, n=n, settle=settle))
        else:
            costs.append(cost_of(counts, hw, n=n, lambda_min=settle if counts.inv_settles else None))
    return Cost.parallel(*costs) if parallel else Cost.serial(*costs)


def solve_counts(n: int, k: int) -> OperationCounts:
    """Counts of one direct INV solve of k right-hand sides on a freshly programmed n x n differential array."""
    return OperationCounts(programmings=1, cells_programmed=2 * n * n, inv_settles=k, dac_conversions=n * k,
                           adc_conversions=n * k)


def direct_solve_cost(h: np.ndarray, g: np.ndarray, hw: HardwareCostModel, max_columns: int = 16) -> Cost:
    """Cost of ``amc solve`` with the direct method: programming plus one exact-model settle per column of g.

    Each exact settle takes ~0.1-1 s of CPU at n = 64-128, so at most ``max_columns`` evenly spaced columns are
    simulated and their mean settle prices every column."""
    h = np.asarray(h, dtype=float)
    g = np.asarray(g, dtype=float)
    columns = g.reshape(h.shape[0], -1)
    n, k = h.shape[0], columns.shape[1]
    nonzero = [c for c in range(k) if np.any(columns[:, c])]
    if len(nonzero) > max_columns:
        nonzero = [nonzero[i] for i in np.linspace(0, len(nonzero) - 1, max_columns).round().astype(int)]
    settles = [settle_of_matrix(h, hw, columns[:, c]) for c in nonzero]
    if not settles:
        raise InputError("g is all zeros: no settle to price")
    mean = SettleCost(time_s=float(np.mean([s.time_s for s in settles])),
                      energy_j=float(np.mean([s.energy_j for s in settles])),
                      breakdown={p: float(np.mean([s.breakdown[p] for s in settles]))
                                 for p in ("opamps", "crosspoint array")},
                      lambda_min=settles[0].lambda_min, n=n)
    return cost_of(solve_counts(n, k), hw, n=n, settle=mean)
