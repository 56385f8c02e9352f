"""Circuit configuration: validated dataclasses, strict YAML/dict loading and named presets.

Every physical quantity is in SI units (siemens, ohms, volts, amperes, hertz, seconds).
Presets follow aihwkit's habit: a named, complete configuration that a user overrides field by field,
e.g. ``CircuitConfig.preset("rram").replace(**{"device.levels": 16})``.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional, Union


from amc import schema
from amc.errors import ConfigError
from amc.units import si
from amc.yamlio import read_yaml_mapping


@dataclass(frozen=True)
class DeviceConfig:
    """RRAM cell: conductance window, programming precision and variability."""

    g_min: float = 0.5e-6
    g_max: float = 35e-6
    # Number of programmable conductance levels across [g_min, g_max]; None = continuous (analog) cells.
    levels: Optional[int] = 8
    # Relative (multiplicative) Gaussian programming error, drawn once when the array is programmed.
    program_sigma: float = 0.0
    # Relative Gaussian read noise, drawn anew for every solve (every read of the array).
    read_noise_sigma: float = 0.0
    # Fraction of cells stuck at g_min or g_max (half each), ignoring what was programmed.
    stuck_rate: float = 0.0
    # Conductance drift after programming, G(t) = G(t0) (t/t0)^-nu, nu drawn per cell ~ N(drift_nu, drift_nu_sigma)
    # clipped at 0: the power-law model of IBM aihwkit (Nandakumar et al. 2019; Le Gallo et al. 2018). 0 = off.
    drift_nu: float = 0.0
    drift_nu_sigma: float = 0.0
    drift_t0_s: float = 1.0
    seed: int = 0

    def validate(self, where: str) -> None:
        _positive(self.g_min, f"{where}.g_min")
        _positive(self.g_max, f"{where}.g_max")
        if self.g_max <= self.g_min:
            raise ConfigError(f"{where}: g_max ({self.g_max:g} S) must exceed g_min ({self.g_min:g} S)")
        if self.levels is not None and (not isinstance(self.levels, numbers.Integral) or isinstance(self.levels, bool)
                                        or self.levels < 2):
            raise ConfigError(f"{where}.levels must be an integer >= 2 or null (continuous), got {self.levels!r}")
        if self.levels is not None:
            object.__setattr__(self, "levels", int(self.levels))   # numpy integers too: records stay plain JSON
        # relative Gaussian sigmas: at 1 (100 %) a third of the cells would draw a negative conductance; measured
        # TaOx programming and read errors are a few per cent (Zuo et al. 2025), so anything >= 1 is a typo
        for key in ("program_sigma", "read_noise_sigma"):
            _non_negative(getattr(self, key), f"{where}.{key}")
            if getattr(self, key) >= 1:
                raise ConfigError(f"{where}.{key} is a relative sigma (0.03 = 3 %) and must be below 1, "
                                  f"got {getattr(self, key)!r}")
        if not 0.0 <= self.stuck_rate < 1.0:
            raise ConfigError(f"{where}.stuck_rate must be in [0, 1), got {self.stuck_rate!r}")
        _non_negative(self.drift_nu, f"{where}.drift_nu")
        _non_negative(self.drift_nu_sigma, f"{where}.drift_nu_sigma")
        _positive(self.drift_t0_s, f"{where}.drift_t0_s")

    @property
    def is_stochastic_per_read(self) -> bool:
        return self.read_noise_sigma > 0.0


OPAMP_MODELS = ("behavioural", "macromodel", "transistor", "subckt")
# Port roles of an op-amp subcircuit, in the order amc writes its own instances.
PIN_ROLES = ("inp", "inm", "out", "vcc", "vee")


@dataclass(frozen=True)
class OpAmpConfig:
    """Behavioural op-amp: DC gain, one dominant pole, smooth output saturation, offset, supply.

    The presets quote datasheet figures (typical values, +-5 V supplies):
    - ``ad823``: Analog Devices AD823, 16 MHz gain-bandwidth, 2.6 mA quiescent current per amplifier,
      output within 0.5 V of the rails at 15 mA, 0.8 mV maximum offset. Open-loop gain taken as 1e5 (100 dB).
    - ``opa690``: Texas Instruments OPA690, 500 MHz unity-gain bandwidth, 66 dB (2000 V/V) open-loop gain,
      +-4.0 V output swing on +-5 V, 5.5 mA quiescent current.
    Offsets default to 0 in presets (a datasheet maximum is not a typical part); set ``offset_v`` to study it.
    """

    name: str = "ad823"
    gain: float = 1e5
    # Gain-bandwidth product; None = no pole (DC-only model, .op analyses only).
    gbw_hz: Optional[float] = 16e6
    # Output saturation voltage (symmetric); None = no saturation.
    v_sat: Optional[float] = 4.5
    # Sharpness p of the smooth limiter v / (1 + |v/Vsat|^p)^(1/p): 0.05% compression at half swing for p = 8.
    saturation_sharpness: float = 8.0
    offset_v: float = 0.0
    supply_v: float = 5.0
    quiescent_current_a: float = 2.6e-3
    # Model level (amc/hw/opamp_models.py): "behavioural" (the single-pole model above), "macromodel" (adds a second
    # pole, open-loop output resistance, output-current limits, slew rate, input capacitance), "transistor" (the
    # CMOS two-stage op-amp of amc/data/amc_cmos_opamp.lib) or "subckt" (the user's own subcircuit, file ``subckt``,
    # subcircuit ``name``, ports ``pins``). For "transistor" and "subckt" the figures above are measured by
    # ``amc characterise`` (amc/hw/characterise.py) and replace the written ones when an array is built.
    model: str = "behavioural"
    pole2_hz: Optional[float] = None
    rout_ohm: float = 0.0
    i_source_max_a: Optional[float] = None
    i_sink_max_a: Optional[float] = None
    slew_v_per_s: Optional[float] = None
    input_capacitance_f: float = 0.0
    # Macromodel topology: None = the dominant pole is a shunt RC ahead of the output resistance (a resistive load
    # then lowers the gain-bandwidth by RL/(RL + Rout)); a value = a Miller two-stage, the output stage a
    # transconductance of this many siemens inside the compensation loop (gain-bandwidth independent of a resistive
    # load, as in a Miller-compensated CMOS op-amp; amc characterise measures it as 1/|Zout| above the dominant pole).
    output_stage_gm_s: Optional[float] = None
    subckt: Optional[str] = None
    pins: Optional[list] = None

    @property
    def i_limit_a(self) -> Optional[float]:
        """The smaller of the two output-current limits (None: unlimited)."""
        limits = [v for v in (self.i_source_max_a, self.i_sink_max_a) if v is not None]
        return min(limits) if limits else None

    def validate(self, where: str) -> None:
        if self.model not in OPAMP_MODELS:
            raise ConfigError(f"{where}.model must be one of {', '.join(OPAMP_MODELS)}, got {self.model!r}")
        if self.model == "behavioural":
            extra = [k for k in ("pole2_hz", "i_source_max_a", "i_sink_max_a", "slew_v_per_s", "subckt", "pins",
                                 "output_stage_gm_s")
                     if getattr(self, k) is not None] + [k for k in ("rout_ohm", "input_capacitance_f")
                                                          if getattr(self, k) != 0.0]
            if extra:
                raise ConfigError(f"{where}: {', '.join(extra)} {'has' if len(extra) == 1 else 'have'} no effect on "
                                  "the behavioural op-amp; set model: macromodel (or subckt)")
        if self.model == "subckt":
            if not self.subckt:
                raise ConfigError(f"{where}.subckt: model 'subckt' needs the path of the subcircuit file")
            if self.pins is None or sorted(map(str, self.pins)) != sorted(PIN_ROLES):
                raise ConfigError(f"{where}.pins must list the subcircuit's ports by role, each of "
                                  f"{', '.join(PIN_ROLES)} once, got {self.pins!r}")
        elif self.subckt is not None or self.pins is not None:
            raise ConfigError(f"{where}: subckt/pins need model: subckt (got model {self.model!r})")
        if self.model == "macromodel" and self.rout_ohm <= 0:
            raise ConfigError(f"{where}.rout_ohm must be positive for the macromodel (its output stage is a "
                              f"conductance), got {self.rout_ohm!r}")
        if self.output_stage_gm_s is not None and self.output_stage_gm_s * self.rout_ohm <= 1.0:
            raise ConfigError(f"{where}.output_stage_gm_s x rout_ohm must exceed 1 (the output stage's own gain), got "
                              f"{self.output_stage_gm_s * self.rout_ohm!r}")
        for key in ("pole2_hz", "i_source_max_a", "i_sink_max_a", "slew_v_per_s", "output_stage_gm_s"):
            if getattr(self, key) is not None:
                _positive(getattr(self, key), f"{where}.{key}")
        _non_negative(self.rout_ohm, f"{where}.rout_ohm")
        _non_negative(self.input_capacitance_f, f"{where}.input_capacitance_f")
        _positive(self.gain, f"{where}.gain")
        if self.gain < 1:   # an open-loop gain below 1 cannot hold the rows at virtual ground
            raise ConfigError(f"{where}.gain is the open-loop gain in V/V and must be at least 1, got {self.gain!r}")
        if self.gbw_hz is not None:
            _positive(self.gbw_hz, f"{where}.gbw_hz")
        if self.v_sat is not None:
            _positive(self.v_sat, f"{where}.v_sat")
            if self.v_sat > self.supply_v and self.model not in ("transistor", "subckt"):
                raise ConfigError(f"{where}.v_sat ({self.v_sat} V) cannot exceed supply_v ({self.supply_v} V)")
        if self.saturation_sharpness < 2:
            raise ConfigError(f"{where}.saturation_sharpness must be >= 2, got {self.saturation_sharpness}")
        _finite(self.offset_v, f"{where}.offset_v")
        _positive(self.supply_v, f"{where}.supply_v")
        _non_negative(self.quiescent_current_a, f"{where}.quiescent_current_a")


@dataclass(frozen=True)
class InverterConfig:
    """Unity-gain inverters that make -V_j for the G- array.

    ``ideal``: a perfect -1 gain (what the closed form G + diag(S)/A0 assumes).
    ``opamp``: an inverting amplifier built from the main op-amp model and two equal resistors; its finite
    gain makes the inverted copy -V_j*A/(A+2), a departure from the closed form of order 2/A0.
    """

    kind: str = "opamp"
    resistance_ohm: float = 10e3

    def validate(self, where: str) -> None:
        if self.kind not in ("ideal", "opamp"):
            raise ConfigError(f"{where}.kind must be 'ideal' or 'opamp', got {self.kind!r}")
        _positive(self.resistance_ohm, f"{where}.resistance_ohm")


@dataclass(frozen=True)
class WireConfig:
    """Interconnect resistance per crosspoint segment (IR drop); 0 disables the wire network."""

    row_ohm: float = 0.0
    col_ohm: float = 0.0
    # Parasitic capacitances (transient decks only: capacitors are open at an operating point). Line capacitance per
    # crosspoint segment of a row and of a column line, and the capacitance across each cell; sources in
    # PARASITICS below.
    row_cap_f: float = 0.0
    col_cap_f: float = 0.0
    cell_cap_f: float = 0.0

    def validate(self, where: str) -> None:
        _non_negative(self.row_ohm, f"{where}.row_ohm")
        _non_negative(self.col_ohm, f"{where}.col_ohm")
        for key in ("row_cap_f", "col_cap_f", "cell_cap_f"):
            _non_negative(getattr(self, key), f"{where}.{key}")

    @property
    def has_capacitance(self) -> bool:
        return self.row_cap_f > 0 or self.col_cap_f > 0 or self.cell_cap_f > 0

    @property
    def enabled(self) -> bool:
        return self.row_ohm > 0 or self.col_ohm > 0


@dataclass(frozen=True)
class IOConfig:
    """Input scaling (I0), auto-ranging against the op-amp swing, and converter resolution."""

    # Input current scale: I = i0 * g / max|g|. None = auto-ranging.
    i0_a: Optional[float] = None
    # Auto-ranging aims the largest output at this fraction of the swing limit.
    target_swing: float = 0.5
    # An output beyond this fraction of v_sat is reported as saturated (and triggers a re-range).
    linear_fraction: float = 0.9
    max_rescales: int = 4
    dac_bits: Optional[int] = None
    adc_bits: Optional[int] = None
    # Full-scale of the output ADC as a fraction of v_sat (or of supply_v when there is no saturation).
    adc_full_scale_fraction: float = 1.0
    # Symmetric diagonal (Jacobi) equilibration before mapping, undone digitally on the outputs: equalises the
    # diagonal so factors with a wide dynamic range (K-FAC's A and G) survive a few conductance levels.
    equilibrate: bool = False

    def validate(self, where: str) -> None:
        if self.i0_a is not None:
            _positive(self.i0_a, f"{where}.i0_a")
            # below 1 fA the outputs sit under any op-amp's offset and noise (and near 1e-320 they underflow to 0);
            # above 1 A no crosspoint array carries the current
            if not 1e-15 <= self.i0_a <= 1.0:
                raise ConfigError(f"{where}.i0_a must be between 1e-15 A and 1 A (or null: auto-ranging), "
                                  f"got {self.i0_a!r}")
        if not 0 < self.target_swing < 1:
            raise ConfigError(f"{where}.target_swing must be in (0, 1), got {self.target_swing}")
        if not 0 < self.linear_fraction <= 1:
            raise ConfigError(f"{where}.linear_fraction must be in (0, 1], got {self.linear_fraction}")
        if self.target_swing >= self.linear_fraction:
            raise ConfigError(f"{where}.target_swing must be below linear_fraction")
        if not isinstance(self.max_rescales, int) or self.max_rescales < 0:
            raise ConfigError(f"{where}.max_rescales must be a non-negative integer")
        for name in ("dac_bits", "adc_bits"):
            bits = getattr(self, name)
            if bits is not None and (not isinstance(bits, int) or not 1 <= bits <= 32):
                raise ConfigError(f"{where}.{name} must be an integer in 1..32 or null, got {bits!r}")
        _positive(self.adc_full_scale_fraction, f"{where}.adc_full_scale_fraction")


ENGINES = ("ngspice-matrix", "ngspice")


@dataclass(frozen=True)
class SimulationConfig:
    """Analysis settings shared by the operating-point and transient paths."""

    # Settling band: every output within settle_tol * max|final output| of its final value.
    settle_tol: float = 1e-3
    # Transient length in units of the slowest predicted time constant 1/(2*pi*GBW*lambda_min).
    tran_time_constants: float = 12.0
    tran_points: int = 4000
    # Refuse circuits whose loop is unstable (mapped eigenvalues with non-positive real part).
    check_stability: bool = True
    # Operating points of several right-hand sides: "ngspice-matrix" factors ngspice's own circuit matrix once
    # per call and solves them all (one of them checked against ngspice's .op; plain ngspice where a check
    # fails); "ngspice" runs ngspice for every one. Transients always run in ngspice.
    engine: str = "ngspice-matrix"
    # The engine answers a right-hand side only where the op-amp output limiter is linear to this relative
    # accuracy (its first-order deviation from ngspice's non-linear operating point, measured per column).
    # Tighter than 1e-9 so that it is never less exact than the quasi-static batch it replaces.
    engine_rtol: float = 1e-10
    # Re-stamped programmings (amc/hw/restamp.py): per array topology ngspice's .op of the first programming is
    # exported; later programmings re-stamp the cells' conductances into that matrix. A real ngspice .op checks the
    # first programming of a topology, every verify_every-th, and any that fails a cheap check; 1 = every programming
    # (no re-stamping). 25 spreads the 289 array's .op (25-127 s quiet) to 1-5 s per programming.
    verify_every: int = 25
    # Topologies whose exported matrix is kept (least recently used dropped): a 289 array's template (matrix, stamp
    # positions, Schur complement) is 37 MB (benchmarks/bench_matrix_engine.py --restamp 289).
    template_cache: int = 4

    def validate(self, where: str) -> None:
        if not 0 < self.settle_tol < 1:
            raise ConfigError(f"{where}.settle_tol must be in (0, 1), got {self.settle_tol}")
        _positive(self.tran_time_constants, f"{where}.tran_time_constants")
        if not isinstance(self.tran_points, int) or self.tran_points < 50:
            raise ConfigError(f"{where}.tran_points must be an integer >= 50")
        if self.engine not in ENGINES:
            raise ConfigError(f"{where}.engine must be one of {', '.join(repr(e) for e in ENGINES)}, got {self.engine!r}")
        _positive(self.engine_rtol, f"{where}.engine_rtol")
        for name in ("verify_every", "template_cache"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{where}.{name} must be an integer >= 1, got {value!r}")
        if self.engine_rtol > 1e-2:
            raise ConfigError(f"{where}.engine_rtol must be at most 1e-2 (a linearised answer, not a guess), "
                              f"got {self.engine_rtol!r}")


@dataclass(frozen=True)
class CircuitConfig:
    """Everything that defines one closed-loop inversion (INV) circuit."""

    name: str = "rram"
    device: DeviceConfig = field(default_factory=DeviceConfig)
    opamp: OpAmpConfig = field(default_factory=OpAmpConfig)
    inverter: InverterConfig = field(default_factory=InverterConfig)
    wires: WireConfig = field(default_factory=WireConfig)
    io: IOConfig = field(default_factory=IOConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"name must be a string, got {self.name!r}")
        for f in fields(self):
            if f.name == "name":
                continue
            value, section = getattr(self, f.name), SECTIONS[f.name]
            if not isinstance(value, section):
                hint = (f"; for a preset use CircuitConfig.preset({value!r})" if isinstance(value, str) else "")
                raise ConfigError(f"{f.name} must be a {section.__name__}, got {type(value).__name__} {value!r}"
                                  f"{hint}")
            value.validate(f.name)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> "CircuitConfig":
        if name not in PRESETS:
            raise ConfigError(f"unknown circuit preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
        return from_dict(PRESETS[name], source=f"preset {name!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> "CircuitConfig":
        return from_dict(data, source=source)

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "CircuitConfig":
        data = read_yaml_mapping(path, what="circuit config file")
        return from_dict(data, source=str(path))

    def to_dict(self) -> dict:
        """Every field, except the op-amp-model and parasitic fields while they hold their defaults: a config that
        uses none of them writes the dict (and so the sweep point ids and records) it wrote before they existed."""
        data = dataclasses.asdict(self)
        for section, defaults in (("opamp", _OPAMP_MODEL_DEFAULTS), ("wires", _PARASITIC_DEFAULTS)):
            for key, default in defaults.items():
                if data[section][key] == default:
                    del data[section][key]
        return data

    def replace(self, **dotted: Any) -> "CircuitConfig":
        """A copy with dotted keys overridden, e.g. ``replace(**{"opamp.gain": 1e4})``.

        The copy keeps the preset's name and says what changed: ``rram (modified: device.levels)``.
        """
        data = dataclasses.asdict(self)     # every field, so any dotted key can be set
        for key, value in dotted.items():
            _set_dotted(data, key, value, source="override")
        changed = [key for key in dotted if key != "name"]
        if "name" not in dotted and changed:
            base, _, before = self.name.partition(" (modified: ")
            earlier = [k for k in before.rstrip(")").split(", ") if k] if before else []
            keys = earlier + [k for k in changed if k not in earlier]
            data["name"] = f"{base} (modified: {', '.join(keys)})"
        return from_dict(data, source="override")

    def describe(self) -> str:
        d, o = self.device, self.opamp
        levels = "continuous" if d.levels is None else f"{d.levels} levels"
        gbw = "no pole" if o.gbw_hz is None else f"GBW {o.gbw_hz / 1e6:g} MHz"
        sat = "no saturation" if o.v_sat is None else f"swing +-{o.v_sat:g} V"
        return (f"CircuitConfig {self.name!r}: RRAM {d.g_min * 1e6:g}-{d.g_max * 1e6:g} uS, {levels}, "
                f"program sigma {d.program_sigma:g}, read noise {d.read_noise_sigma:g}, stuck {d.stuck_rate:g}; "
                f"op-amp {o.name} (A0 {o.gain:.3g}, {gbw}, {sat}); inverter {self.inverter.kind}; "
                f"wires {self.wires.row_ohm:g}/{self.wires.col_ohm:g} ohm per segment"
                + _describe_extras(self))

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        """One physical line: preset, cells, op-amp, swing (``describe()`` has the rest)."""
        d, o = self.device, self.opamp
        cells = "continuous" if d.levels is None else f"{d.levels} levels"
        gbw = "" if o.gbw_hz is None else f" {si(o.gbw_hz, 'Hz')}"
        swing = "" if o.v_sat is None else f" ±{o.v_sat:g} V"
        extras = [f"σp {d.program_sigma:g}" if d.program_sigma else "", f"σr {d.read_noise_sigma:g}"
                  if d.read_noise_sigma else "", f"wires {self.wires.row_ohm:g} Ω" if self.wires.enabled else ""]
        extra = "".join(f", {e}" for e in extras if e)
        base, _, changed = self.name.partition(" (modified: ")
        name = repr(base) + ("*" if changed else "")      # * = modified; .name lists the keys
        return (f"CircuitConfig({name}: {cells} {d.g_min * 1e6:.3g}–{d.g_max * 1e6:.3g} µS{extra}; "
                f"{o.name} A0 {o.gain:.3g}{gbw}{swing})")


_OPAMP_MODEL_DEFAULTS = {f.name: f.default for f in fields(OpAmpConfig)
                         if f.name in ("model", "pole2_hz", "rout_ohm", "i_source_max_a", "i_sink_max_a",
                                       "slew_v_per_s", "input_capacitance_f", "output_stage_gm_s", "subckt", "pins")}
_PARASITIC_DEFAULTS = {f.name: f.default for f in fields(WireConfig) if f.name.endswith("_cap_f")}


def _describe_extras(config: "CircuitConfig") -> str:
    """What the behavioural one-liner leaves out (empty for the behavioural op-amp without parasitics, so those
    decks keep their header)."""
    o, w, parts = config.opamp, config.wires, []
    if o.model != "behavioural":
        limits = "/".join("unlimited" if v is None else f"{v * 1e3:.3g} mA" for v in (o.i_source_max_a, o.i_sink_max_a))
        slew = "no slew limit" if o.slew_v_per_s is None else f"slew {o.slew_v_per_s / 1e6:.3g} V/us"
        pole2 = "" if o.pole2_hz is None else f", pole2 {o.pole2_hz / 1e6:.4g} MHz"
        source = f" {o.subckt}" if o.subckt else ""
        miller = "" if o.output_stage_gm_s is None else f", Miller output stage {o.output_stage_gm_s * 1e3:.4g} mS"
        parts.append(f"op-amp model {o.model}{source} (Rout {o.rout_ohm:.4g} ohm{miller}, Imax {limits}, {slew}{pole2}, "
                     f"Iq {o.quiescent_current_a * 1e6:.4g} uA, +-{o.supply_v:g} V)")
    if w.has_capacitance:
        parts.append(f"line capacitance {w.row_cap_f * 1e15:g}/{w.col_cap_f * 1e15:g} fF per segment, cell "
                     f"{w.cell_cap_f * 1e15:g} fF")
    return "".join("; " + p for p in parts)


SECTIONS = {
    "device": DeviceConfig,
    "opamp": OpAmpConfig,
    "inverter": InverterConfig,
    "wires": WireConfig,
    "io": IOConfig,
    "simulation": SimulationConfig,
}

OPAMP_PRESETS: dict[str, dict] = {
    "ideal": dict(name="ideal", gain=1e12, gbw_hz=None, v_sat=None, offset_v=0.0, supply_v=5.0,
                  quiescent_current_a=0.0),
    "ad823": dict(name="ad823", gain=1e5, gbw_hz=16e6, v_sat=4.5, offset_v=0.0, supply_v=5.0,
                  quiescent_current_a=2.6e-3),
    "opa690": dict(name="opa690", gain=2e3, gbw_hz=500e6, v_sat=4.0, offset_v=0.0, supply_v=5.0,
                   quiescent_current_a=5.5e-3),
    # Integrated CMOS op-amp (amc/cost/presets.py has the full citation): folded-cascode design of Zainol Murad et
    # al., Turk. J. Elec. Eng. & Comp. Sci. 2017 (0.13 um CMOS): 64.5 dB DC gain, 695.1 MHz unity-gain bandwidth,
    # 0.14 mW from +-1.2 V (so 0.14 mW / 2.4 V = 58 uA). Swing +-0.9 V is our assumption (rails less ~0.3 V of
    # output-device headroom); the paper does not state it.
    # Datasheet-level macromodels (amc/hw/opamp_models.py). AD823 (Analog Devices datasheet, Rev. A, front page):
    # slew rate 22 V/us; "output current of 15 mA, 0.5 V from supplies" and "within 50 mV of each rail for
    # IOUT <= 100 uA", so the no-load swing is 4.95 V on +-5 V and the output stage drops (0.5 - 0.05) V / 15 mA =
    # 30 ohm (our open-loop output resistance); 15 mA, the rated output current, is the current limit (the
    # short-circuit figure of the specification table was not available to us, so the limit is the rated drive,
    # which is the conservative choice). Input capacitance 2.8 pF: the common-mode input impedance
    # (1e13 ohm || 2.8 pF) of the AD822 datasheet (Rev. J, Table 1), the same JFET-input family; the AD823 table was
    # not available to us. Second pole ASSUMPTION: at GBW x tan(60 deg) = 1.73 GBW (a 60 deg phase margin; the
    # datasheet plots phase but states no margin).
    "ad823-macro": dict(name="ad823-macro", model="macromodel", gain=1e5, gbw_hz=16e6, v_sat=4.95, offset_v=0.0,
                        supply_v=5.0, quiescent_current_a=2.6e-3, pole2_hz=16e6 * 1.7320508075688772,
                        rout_ohm=30.0, i_source_max_a=15e-3, i_sink_max_a=15e-3, slew_v_per_s=22e6,
                        input_capacitance_f=2.8e-12),
    # OPA690 (Texas Instruments SBOS223F): 500 MHz unity-gain bandwidth, 1800 V/us slew rate, "high output current
    # 190 mA", output swing +-4.0 V, 5.5 mA supply current; "under no-load conditions the output typically swings
    # closer than 1 V to either supply rail ... into a 15 ohm load it will deliver more than +-160 mA" (output
    # section), i.e. 2.4 V at 160 mA against 4.0 V unloaded: (4.0 - 2.4) V / 0.16 A = 10 ohm output resistance.
    # Second pole ASSUMPTION as for the AD823 (60 deg phase margin); input capacitance not used (0).
    "opa690-macro": dict(name="opa690-macro", model="macromodel", gain=2e3, gbw_hz=500e6, v_sat=4.0, offset_v=0.0,
                         supply_v=5.0, quiescent_current_a=5.5e-3, pole2_hz=500e6 * 1.7320508075688772,
                         rout_ohm=10.0, i_source_max_a=190e-3, i_sink_max_a=190e-3, slew_v_per_s=1800e6),
    # Our transistor-level CMOS two-stage op-amp (amc/data/amc_cmos_opamp.lib: Allen & Holberg level-1 cards, +-2.5 V,
    # a 2 mA class-A output sink sized for the row load). Figures as measured by
    # `amc characterise opamp amc/data/amc_cmos_opamp.lib --name amc_cmos_2stage --supply 2.5` (5 significant
    # digits); an array re-measures them from the circuit when it is built (amc.hw.opamp_models.resolved), and
    # tests/hw/test_opamp_models.py holds these to that measurement.
    "cmos-2stage": dict(name="cmos-2stage", model="transistor", supply_v=2.5, offset_v=0.0, gain=14690.0,
                        gbw_hz=16.375e6, pole2_hz=96.108e6, rout_ohm=5824.7, i_source_max_a=91.396e-3,
                        i_sink_max_a=2.1246e-3, slew_v_per_s=8.5936e6, v_sat=2.4601, quiescent_current_a=2.165e-3,
                        output_stage_gm_s=7.2065e-3),
    "cmos-ic": dict(name="cmos-ic", gain=1679.0, gbw_hz=695.1e6, v_sat=0.9, offset_v=0.0, supply_v=1.2,
                    quiescent_current_a=58.3e-6),
}

PRESETS: dict[str, dict] = {
    # Ideal reference: continuous conductances, gain 1e12, ideal inverters, no wires.
    "ideal": dict(name="ideal", device=dict(levels=None), opamp=OPAMP_PRESETS["ideal"],
                  inverter=dict(kind="ideal")),
    # Default: 40-nm TaOx 1T1R cells (8 levels, 0.5-35 uS; Zuo et al. 2025) with AD823-class op-amps.
    "rram": dict(name="rram", device=dict(levels=8), opamp=OPAMP_PRESETS["ad823"]),
    # Same array with a fast OPA690-class op-amp (lower gain, 30x the bandwidth).
    "rram-fast": dict(name="rram-fast", device=dict(levels=8), opamp=OPAMP_PRESETS["opa690"]),
    # Realistic variability on top of the default: programming error, read noise, stuck cells, IR drop.
    "rram-variability": dict(name="rram-variability",
                             device=dict(levels=8, program_sigma=0.03, read_noise_sigma=0.005, stuck_rate=0.001),
                             opamp=OPAMP_PRESETS["ad823"], wires=dict(row_ohm=1.0, col_ohm=1.0)),
    # The headline read chain (issue 16): 16-level cells with 3 % programming error and 0.5 % read noise (the
    # rram-variability figures), 8-bit DAC and ADC (every up-ranging settle counted), 0.5 mV op-amp input offset
    # (below the AD823 datasheet's 0.8 mV maximum), 1 ohm per wire segment (through the matrix engine). No stuck
    # cells: a study adds them by name.
    "rram-realistic": dict(name="rram-realistic",
                           device=dict(levels=16, program_sigma=0.03, read_noise_sigma=0.005),
                           opamp=dict(OPAMP_PRESETS["ad823"], offset_v=0.5e-3),
                           wires=dict(row_ohm=1.0, col_ohm=1.0), io=dict(dac_bits=8, adc_bits=8)),
    # The 8-level TaOx array with integrated CMOS op-amps instead of board-level parts: the cost ledger's circuit.
    "rram-ic": dict(name="rram-ic", device=dict(levels=8), opamp=OPAMP_PRESETS["cmos-ic"]),
    # The default array with AD823 macromodels (output resistance, 15 mA limit, 22 V/us slew, second pole).
    "rram-macro": dict(name="rram-macro", device=dict(levels=8), opamp=OPAMP_PRESETS["ad823-macro"]),
    # The 8-level array driven by our transistor-level CMOS op-amp, with line and cell capacitance (PARASITICS).
    "rram-cmos": None,
    # Ideal op-amps, continuous cells, but with single-pole dynamics for transient studies.
    "ideal-dynamic": dict(name="ideal-dynamic", device=dict(levels=None),
                          opamp=dict(OPAMP_PRESETS["ideal"], name="ideal-1pole", gbw_hz=16e6),
                          inverter=dict(kind="ideal")),
}
# Array parasitics, per crosspoint. Line capacitance: ~0.2 fF/um for on-chip interconnect (ITRS interconnect tables,
# the figure NeuroSim uses: Chen et al., IEEE TCAD 37, 3067 (2018)); ASSUMPTION: a 0.5 um crosspoint pitch (1T1R
# cells of a 40 nm process), so 0.1 fF per segment of row and column. Cell capacitance: the TaOx switching layer as a
# parallel plate, eps_r ~ 25 for Ta2O5 (a standard high-k value), 100 nm x 100 nm, 5 nm thick:
# 25 * 8.854e-12 * 1e-14 / 5e-9 = 0.44 fF (ASSUMPTION on the area and thickness).
PARASITICS = dict(row_cap_f=0.1e-15, col_cap_f=0.1e-15, cell_cap_f=0.44e-15)
PRESETS["rram-cmos"] = dict(name="rram-cmos", device=dict(levels=8), opamp=OPAMP_PRESETS["cmos-2stage"],
                            wires=dict(PARASITICS))
DEFAULT_PRESET = "rram"


def from_dict(data: Mapping[str, Any], source: str = "config") -> CircuitConfig:
    """Build a validated CircuitConfig; unknown keys are rejected by name.

    A top-level ``preset: NAME`` starts from that preset, and ``opamp: NAME`` (a string) picks an op-amp
    preset; the other keys override field by field.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
    data = copy.deepcopy(dict(data))
    base: dict = {}
    if "preset" in data:
        preset = data.pop("preset")
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ConfigError(f"{source}: unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
        base = copy.deepcopy(PRESETS[preset])
    if "name" not in data and base.get("name"):
        # The preset's name stays, with what was changed, so a record never claims an unmodified preset.
        changed = [f"{key}.{sub}" if isinstance(value, Mapping) else key
                   for key, value in data.items() if key in SECTIONS
                   for sub in (value if isinstance(value, Mapping) else [None])]
        if changed:
            data["name"] = f"{base['name']} (modified: {', '.join(changed)})"
    if isinstance(data.get("opamp"), str):
        name = data["opamp"]
        if name not in OPAMP_PRESETS:
            raise ConfigError(f"{source}: unknown op-amp preset {name!r}; known: {', '.join(sorted(OPAMP_PRESETS))}")
        data["opamp"] = dict(OPAMP_PRESETS[name])
    if isinstance(data.get("opamp"), Mapping) and "subckt" in data["opamp"] and "model" not in data["opamp"]:
        # opamp: {subckt: FILE, name: ..., pins: [...]} is the user's own op-amp (model: subckt).
        data["opamp"] = {**data["opamp"], "model": "subckt"}
    allowed_top = {"name"} | set(SECTIONS)
    for key in data:
        if key not in allowed_top:
            raise ConfigError(f"{source}: unknown key {key!r}{schema.suggest(key, allowed_top | {'preset'})}; allowed: "
                              f"{', '.join(sorted(allowed_top | {'preset'}))}")
    merged = base
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    kwargs: dict[str, Any] = {}
    for key, value in merged.items():
        if key == "name":
            if not isinstance(value, str):
                raise ConfigError(f"{source}: name must be a string, got {value!r}")
            kwargs["name"] = value
            continue
        kwargs[key] = _build_section(SECTIONS[key], value, f"{source}: {key}")
    try:
        return CircuitConfig(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _build_section(cls, value: Any, where: str):
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return schema.build(cls, value, where, ConfigError)


def _set_dotted(data: dict, key: str, value: Any, source: str) -> None:
    schema.set_dotted(data, key, value, ConfigError, source)


def _finite(value: float, where: str) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")


def _positive(value: float, where: str) -> None:
    _finite(value, where)
    if value <= 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")


def _non_negative(value: float, where: str) -> None:
    _finite(value, where)
    if value < 0:
        raise ConfigError(f"{where} must be non-negative, got {value!r}")
