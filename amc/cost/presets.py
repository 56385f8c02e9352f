"""Integrated-circuit cost presets: converters, RRAM write-verify, MVM read-out and digital logic.

Every constant carries its source. Where a paper gives no number for something the ledger needs, the value is
marked ASSUMPTION with the reasoning, and it is a field a user overrides (``HardwareCostModel.replace``); the README
"## Cost" section lists the assumptions that move the headline ratios.

The op-amp is not here: it is the circuit's own ``OpAmpConfig`` (preset ``cmos-ic`` in amc/config.py:
Zainol Murad et al., "Design of a low power CMOS operational amplifier with common mode feedback for pipeline
analog-to-digital converter applications", Turk. J. Elec. Eng. & Comp. Sci., 0.13 um CMOS: 64.5 dB, 695.1 MHz,
0.14 mW at +-1.2 V). It is a 130-nm design: the nearest published integrated op-amp whose gain, bandwidth, supply
and power we could verify; a 28-65 nm part would reach the same bandwidth at a lower supply, so it is conservative
for energy.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional, Union

from amc.config import CircuitConfig
from amc.errors import ConfigError
from amc.units import si


def _positive(value, where: str) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class ConverterModel:
    """A Nyquist converter priced by the Walden figure of merit: E = FOM * 2^ENOB per conversion."""

    name: str
    fom_j_per_step: float
    sample_rate_hz: float
    enob_loss_bits: float  # ENOB = nominal bits - enob_loss_bits

    def validate(self, where: str) -> None:
        _positive(self.fom_j_per_step, f"{where}.fom_j_per_step")
        _positive(self.sample_rate_hz, f"{where}.sample_rate_hz")
        if not 0 <= self.enob_loss_bits < 4:
            raise ConfigError(f"{where}.enob_loss_bits must be in [0, 4), got {self.enob_loss_bits!r}")

    def energy_j(self, bits: int) -> float:
        return self.fom_j_per_step * 2.0 ** (bits - self.enob_loss_bits)

    @property
    def time_s(self) -> float:
        return 1.0 / self.sample_rate_hz


# Verbruggen et al., "A 1.7 mW 11b 250 MS/s 2x interleaved fully dynamic pipelined SAR ADC in 40 nm digital CMOS",
# ISSCC 2012: ENOB 9.45, Walden FOM 9.7 fJ/conv-step at 250 MS/s (listed in B. Murmann's ADC Performance Survey;
# the 2012 survey summary at converterpassion.wordpress.com names it among the < 10 fJ designs; the record then was
# 4.4 fJ, van Elzakker et al., ISSCC 2008). A fast SAR, because a 10 MS/s converter would take longer per output
# than the 20 ns INV settle it reads. ENOB shortfall ASSUMPTION: 0.55 bit at 8 bits, between an 8-bit SAR's 0.23
# (Harpe et al., JSSC 2011: ENOB 7.77, 26 uW at 10 MS/s, FOM ~12 fJ) and this converter's 1.55 at 11 bits.
SAR_ADC = ConverterModel(name="sar-40nm", fom_j_per_step=9.7e-15, sample_rate_hz=250e6, enob_loss_bits=0.55)
# ASSUMPTION: an input DAC conversion is priced like an ADC conversion of the same resolution (same FOM and rate).
# There is no DAC survey comparable to Murmann's; a SAR ADC contains a full capacitive DAC plus comparator and
# logic, so this is an upper bound for the DAC.
SAR_DAC = dataclasses.replace(SAR_ADC, name="dac-as-sar")


@dataclass(frozen=True)
class WriteVerifyModel:
    """RRAM write-verify programming of one cell: a train of write pulses, each followed by a verify read."""

    # ASSUMPTION: 10 pulse/verify cycles per cell on average. Multi-level incremental-pulse write-verify needs several
    # to tens of pulses (Wan et al., Nature 608, 504 (2022), Extended Data Fig. 3f shows the distribution); Zuo et
    # al., Nat. Electron. 2025 program 8 levels (0.5-35 uS) by write-verify with 100 % success but we have no mean.
    pulses_per_cell: float = 10.0
    # Wong et al., "Metal-Oxide RRAM", Proc. IEEE 100, 1951 (2012): switching in < 10 ns to ~100 ns; we take the slow
    # end because multi-level programming uses gentle pulses. Lee et al., Nat. Mater. 10, 625 (2011) (TaOx): 10 ns.
    pulse_width_s: float = 100e-9
    # Wong et al. 2012: set/reset at ~1-3 V with program currents of tens to hundreds of uA (1T1R compliance).
    pulse_voltage_v: float = 2.0
    pulse_current_a: float = 100e-6
    # Verify read: one read of the cell at a non-disturbing voltage; its sense is one ADC conversion (priced by the
    # ADC model). Read duration ASSUMPTION: one conversion time of the ADC plus the pulse width again for the bit line
    # to settle.
    verify_read_v: float = 0.2
    # Cells written at once in one array. ASSUMPTION: one row (all columns of a row in parallel, as 1T1R arrays
    # select a row by its word line); the ledger takes the array size for it unless this is set.
    cells_in_parallel: Optional[int] = None
    # Wong et al. 2012: endurance 1e6-1e12 cycles reported across metal-oxide RRAM; 1e6, the low end, for
    # multi-level programming (binary TaOx reached 1e12, Lee et al. 2011). Counted per write pulse (each pulse of a
    # write-verify train stresses the cell), not per programming.
    endurance_cycles: float = 1e6
    # Write pulses above the chip supply come from an on-chip charge pump. Tanzawa & Tanaka, "A dynamic analysis of
    # the Dickson charge pump circuit", IEEE JSSC 32, 1231 (1997): an N-stage Dickson pump draws (N + 1) times its
    # output current from the supply, so its efficiency is at most V_out / ((N + 1) V_dd) with N = ceil(V_out/V_dd) - 1.
    # ASSUMPTION: 1.2 V supply (the op-amp's rail) and a further 0.7 for the pump's parasitic (bottom-plate, clock
    # driver) losses; Tanzawa & Tanaka put the self-load at about 1/3 of the pump capacitance.
    supply_v: float = 1.2
    pump_parasitic_efficiency: float = 0.7

    def pump_efficiency(self) -> float:
        if self.pulse_voltage_v <= self.supply_v:
            return 1.0
        stages = math.ceil(self.pulse_voltage_v / self.supply_v) - 1
        return self.pulse_voltage_v / ((stages + 1) * self.supply_v) * self.pump_parasitic_efficiency

    def validate(self, where: str) -> None:
        for name in ("pulses_per_cell", "pulse_width_s", "pulse_voltage_v", "pulse_current_a", "verify_read_v",
                     "endurance_cycles", "supply_v", "pump_parasitic_efficiency"):
            _positive(getattr(self, name), f"{where}.{name}")
        if self.pump_parasitic_efficiency > 1:
            raise ConfigError(f"{where}.pump_parasitic_efficiency must be in (0, 1]")
        if self.cells_in_parallel is not None and (not isinstance(self.cells_in_parallel, int)
                                                   or self.cells_in_parallel < 1):
            raise ConfigError(f"{where}.cells_in_parallel must be a positive integer or null")


@dataclass(frozen=True)
class ReadModel:
    """One analog MVM read: inputs as voltages on the rows, column currents into TIAs (the circuit's op-amp)."""

    # Read voltage well below the ~1 V set threshold of metal-oxide cells (Wong et al. 2012) so reads do not disturb.
    read_voltage_v: float = 0.2
    # ASSUMPTION: mean cell conductance at mid-window, (g_min + g_max) / 2, as for uniformly used levels.
    mean_conductance_fraction: float = 0.5
    # ASSUMPTION: TIA feedback factor 1/2 (feedback resistor comparable to the column's resistance), so the read
    # settles with time constant 1 / (2 pi GBW / 2) to half an LSB of the ADC.
    tia_feedback_factor: float = 0.5

    def validate(self, where: str) -> None:
        _positive(self.read_voltage_v, f"{where}.read_voltage_v")
        if not 0 <= self.mean_conductance_fraction <= 1:
            raise ConfigError(f"{where}.mean_conductance_fraction must be in [0, 1]")
        if not 0 < self.tia_feedback_factor <= 1:
            raise ConfigError(f"{where}.tia_feedback_factor must be in (0, 1]")


@dataclass(frozen=True)
class DigitalModel:
    """The digital logic next to the arrays: control traffic and the method's own arithmetic."""

    # Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm): FP32 add 0.9 pJ, FP32 multiply 3.7 pJ, so one
    # fused multiply-add (2 flops) ~4.6 pJ: 2.3 pJ per flop.
    energy_per_flop_j: float = 2.3e-12
    # Horowitz 2014: 64-bit read of an 8 KB SRAM 10 pJ. Each converter word (<= 8 bits) moves 1/8 of that through
    # the control buffers: 1.25 pJ per conversion is the "digital control" entry.
    energy_per_conversion_j: float = 10e-12 / 8
    # The method's digital remainder (shift-and-add of slices and tiles, residual and update vectors) is elementwise
    # over the array's outputs, so each output column has its own unit, as ISAAC gives every ADC group its own
    # shift-and-add (Shafiee et al., ISCA 2016). ASSUMPTION: one FP32 FMA unit at 500 MHz per column: 1 GFLOP/s per
    # column, n GFLOP/s for an n-column array.
    flops_per_s: float = 1e9

    def validate(self, where: str) -> None:
        for name in ("energy_per_flop_j", "energy_per_conversion_j", "flops_per_s"):
            _positive(getattr(self, name), f"{where}.{name}")


GATING_POLICIES = ("gated", "always-on")


@dataclass(frozen=True)
class StaticModel:
    """Power drawn whether or not the arrays compute, and the op-amps' gating policy.

    ``gated``: each array's op-amps are powered for its busy window in a step (settles, reads and the conversions
    between them: a few ns apart, too short to gate) and off otherwise, paying one wake-up per array per step.
    ``always-on``: the op-amps draw their quiescent power for the whole step.
    Converter references/bias and logic leakage are on for the whole step under both policies (a reference buffer
    takes microseconds to settle, longer than the step's idle gaps)."""

    policy: str = "gated"
    # ASSUMPTION: 100 ns to wake an integrated op-amp from power-down (bias currents and common-mode feedback settling;
    # the op-amp's own small-signal settling at 695 MHz GBW is ~ns, bias start-up dominates), drawing its quiescent
    # current meanwhile. On the critical path once per step (arrays wake together).
    wake_time_s: float = 100e-9
    # ASSUMPTION: a converter's static draw (reference buffer, bias, comparator clocking) is 10 % of its power at full
    # rate. Verbruggen et al. 2012 (presets.SAR_ADC) is "fully dynamic", so its core leaks little; the reference it
    # needs does not.
    converter_static_fraction: float = 0.1
    # ASSUMPTION: logic leakage 5 % of the logic's power at full activity (a low-power 40-nm process; high-performance
    # processes leak several times more). Applied alike to the analog side's digital units and the digital engine.
    logic_leakage_fraction: float = 0.05

    def validate(self, where: str) -> None:
        if self.policy not in GATING_POLICIES:
            raise ConfigError(f"{where}.policy must be one of {', '.join(GATING_POLICIES)}, got {self.policy!r}")
        if not (isinstance(self.wake_time_s, (int, float)) and self.wake_time_s >= 0):
            raise ConfigError(f"{where}.wake_time_s must be >= 0")
        for name in ("converter_static_fraction", "logic_leakage_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ConfigError(f"{where}.{name} must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class AreaModel:
    """Silicon area of the analog side: cells, op-amps, converters and the digital units beside the arrays."""

    # ASSUMPTION: a 1T1R cell of 60 F^2 at F = 40 nm (0.096 um^2): the access transistor must pass the 100 uA write
    # current, so it is several times minimum width (1T1R cells are quoted from ~6 F^2 for selector-limited designs
    # to tens of F^2 for transistor-limited ones).
    cell_um2: float = 60 * 0.040 ** 2
    # ASSUMPTION: 2,500 um^2 per op-amp (a compact two-stage/folded-cascode amplifier with its compensation capacitor
    # in 130 nm; the cited cmos-ic design gives no layout area). Every row has one and every column an inverter.
    opamp_um2: float = 2500.0
    # ASSUMPTION: 5,000 um^2 for an 8-bit 250 MS/s SAR ADC in 40 nm (capacitive DAC, comparator, logic); a DAC is
    # priced like an ADC as its energy is.
    converter_um2: float = 5000.0
    # The digital units beside the arrays (DigitalModel: one FP32 FMA per column): Horowitz 2014, 45 nm, FP32 add
    # 4,184 um^2 + FP32 multiply 7,700 um^2.
    fma_unit_um2: float = 4184.0 + 7700.0

    def validate(self, where: str) -> None:
        for name in ("cell_um2", "opamp_um2", "converter_um2", "fma_unit_um2"):
            _positive(getattr(self, name), f"{where}.{name}")


@dataclass(frozen=True)
class HardwareCostModel:
    """Everything the ledger needs to price operation counts: the circuit plus its periphery."""

    name: str = "rram-ic"
    circuit: CircuitConfig = field(default_factory=lambda: CircuitConfig.preset("rram-ic"))
    adc: ConverterModel = SAR_ADC
    dac: ConverterModel = SAR_DAC
    # Zuo et al. 2025 read the low-precision INV with low-resolution converters; 8 bits matches the 8-bit INV of
    # RePAST (Zhao et al. 2022) and covers the 3-bit cells.
    adc_bits: int = 8
    dac_bits: int = 8
    # ASSUMPTION: one ADC per output and one DAC per input (no multiplexing): every settle costs one conversion time.
    # ADC sharing (the CLI's --columns-per-adc): k columns per ADC cost k conversion times per settle and 1/k of the
    # converters' area and static power.
    outputs_per_adc: int = 1
    write: WriteVerifyModel = field(default_factory=WriteVerifyModel)
    read: ReadModel = field(default_factory=ReadModel)
    digital: DigitalModel = field(default_factory=DigitalModel)
    static: StaticModel = field(default_factory=StaticModel)
    area: AreaModel = field(default_factory=AreaModel)
    # Double-buffered programming: a second array per factor is written while the first serves solves, so the write
    # leaves the critical path (when it fits in the steps between inverse updates) at twice the cells and op-amps.
    double_buffered: bool = False

    def __post_init__(self) -> None:
        self.static.validate("static")
        self.area.validate("area")
        if not isinstance(self.double_buffered, bool):
            raise ConfigError(f"double_buffered must be true or false, got {self.double_buffered!r}")
        self.adc.validate("adc")
        self.dac.validate("dac")
        self.write.validate("write")
        self.read.validate("read")
        self.digital.validate("digital")
        for name in ("adc_bits", "dac_bits", "outputs_per_adc"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or (name.endswith("bits") and value > 24):
                raise ConfigError(f"{name} must be an integer in 1..24 (outputs_per_adc >= 1), got {value!r}")
        if self.circuit.opamp.gbw_hz is None:
            raise ConfigError(f"circuit {self.circuit.name!r}: the op-amp has no gain-bandwidth, so no settle time")

    @classmethod
    def preset(cls, name: str) -> "HardwareCostModel":
        if name not in COST_PRESETS:
            raise ConfigError(f"unknown cost preset {name!r}; known: {', '.join(sorted(COST_PRESETS))}")
        return COST_PRESETS[name]()

    @classmethod
    def for_circuit(cls, circuit: Union[CircuitConfig, str]) -> "HardwareCostModel":
        """The integrated periphery around any circuit (e.g. the board-level presets, to compare)."""
        if isinstance(circuit, str):
            circuit = CircuitConfig.preset(circuit)
        return cls(name=circuit.name, circuit=circuit)

    def replace(self, **changes) -> "HardwareCostModel":
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        o, w = self.circuit.opamp, self.write
        return (f"{self.name}: op-amp {o.name} (GBW {o.gbw_hz / 1e6:g} MHz, A0 {o.gain:.4g}, "
                f"+-{o.supply_v:g} V, {o.quiescent_current_a * 1e6:.3g} uA); {self.adc_bits}-bit ADC/"
                f"{self.dac_bits}-bit DAC at {self.adc.fom_j_per_step * 1e15:g} fJ/step, "
                f"{self.adc.sample_rate_hz / 1e6:g} MS/s; write-verify {w.pulses_per_cell:g} x "
                f"{w.pulse_width_s * 1e9:g} ns at {w.pulse_voltage_v:g} V/{w.pulse_current_a * 1e6:g} uA")

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        o = self.circuit.opamp
        return (f"HardwareCostModel({self.name!r}: {o.name} {si(o.gbw_hz, 'Hz')} {si(o.quiescent_current_a, 'A')}, "
                f"{self.adc_bits}-bit ADC/{self.dac_bits}-bit DAC, {self.write.pulses_per_cell:g} pulses per cell)")


COST_PRESETS = {
    "rram-ic": lambda: HardwareCostModel(),
    # The same periphery around op-amps that can drive the rows: our transistor-level CMOS two-stage op-amp
    # (circuit preset rram-cmos; its figures are the ones `amc characterise` measures, and the ledger's settle model
    # with them agrees with ngspice on the transistor circuit: tests/hw/test_opamp_models.py).
    "rram-cmos": lambda: HardwareCostModel(name="rram-cmos", circuit=CircuitConfig.preset("rram-cmos")),
}
