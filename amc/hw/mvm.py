"""Analog matrix-vector multiplication (MVM) on RRAM crosspoint arrays, simulated by ngspice.

Circuit (one array, ``m`` rows x ``n`` columns):

- Column j of the G+ array is driven by a DAC at ``+V_j``; column j of the G- array by a second DAC channel at
  ``-V_j``. (No analog inverter: the inputs come from DACs anyway, so both polarities are generated directly.)
- Row line i goes to the inverting input of a transimpedance amplifier (TIA: op-amp ``amc_opamp`` with feedback
  resistor ``R_f``, non-inverting input grounded), so the row is a virtual ground and
  ``V_out_i = -R_f * sum_j (G+_ij - G-_ij) V_j``.
- With a finite open-loop gain A0 the row node sits at ``-V_out_i/A0`` and, exactly (linear region, no wires),
  ``V_out_i = -R_f (G_diff V)_i / (1 + (1 + R_f S_i)/A0)`` with ``S_i`` all conductance on row i. The optional
  ``gain_calibration`` divides this per-row factor out after the ADC (the digital gain trim a one-time row
  calibration would measure); without it the MVM carries a relative error of about ``(1 + R_f S_i)/A0``.

High precision (Zuo et al., Nature Electronics 2025): the matrix is **bit-sliced**,
``H = unit * sum_s base^-s D_s`` with each ``D_s`` an integer matrix whose magnitudes fit the device levels
(8 levels -> digits -7..7 as a signed-magnitude pair G+/G-, base 8 = 3 bits a slice). Digit 0 is the nearest
level of H/unit (what one 8-level array holds); each later digit is the rounded remainder scaled by ``base``,
so it lies in -base/2..base/2. Every slice array is programmed at the conductance step of the device
(``g_unit = (G_max - G_min)/(levels - 1)``: digits land exactly on levels, only programming error and stuck cells
perturb them) and multiplied by ngspice; the ADC outputs are combined digitally by shift-and-add.

Inputs: the vector is scaled so its largest entry uses the DAC full scale (``read_voltage``); with a finite
``dac_bits`` it is also bit-sliced (``input_slices`` passes, each the DAC-quantised remainder of the previous one
scaled back to full scale), and the partial products are shift-and-added like the matrix slices.
Each TIA gain R_f is chosen per array so that the worst-case row current lands at ``target_swing`` of the op-amp
swing (a bound: no saturation); with a finite ``adc_bits`` the TIA gain is re-ranged once per input so the largest
output uses ``target_swing`` of the swing. ``target_swing`` defaults to 0.1 because the op-amp's smooth limiter
compresses an output at a fraction f of V_sat by about f^8/8 (5e-4 at f = 0.5, 1e-9 at f = 0.1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from amc.config import DEFAULT_PRESET, CircuitConfig, DeviceConfig
from amc.errors import ConfigError, InputError
from amc.hw import periphery
from amc.hw.mapping import apply_programming_variation
from amc.hw.netlist import _fmt, crossbar, model_library, opamp_params, pwl_points
from amc.hw.runner import session
from amc.hw.counters import OperationCounts
from amc.units import format_power
from amc.hw.periphery import SUPPLY_VECTORS



# ---- matrix slicing ---------------------------------------------------------------------------------------
@dataclass
class SlicedMatrix:
    """H = unit * sum_s base^-s * digits[s]; ``remainder`` is what the slices do not hold."""

    h: np.ndarray
    digits: list
    unit: float
    base: int
    max_digit: float
    continuous: bool

    def weight(self, s: int) -> float:
        """Value of one digit of slice s in units of H."""
        return self.unit * float(self.base) ** (-s)

    def reconstruct(self, slices: Optional[int] = None) -> np.ndarray:
        slices = len(self.digits) if slices is None else slices
        return sum(self.weight(s) * self.digits[s] for s in range(slices))

    @property
    def remainder(self) -> np.ndarray:
        return self.h - self.reconstruct()


def slice_parameters(device: DeviceConfig, slices: int, bits_per_slice: Optional[int]) -> tuple[int, float, bool]:
    """(base, max digit magnitude, continuous) for the device: levels L -> digits 0..L-1, base 2^floor(log2 L)."""
    if device.levels is None:
        if slices == 1 and bits_per_slice is None:
            return 1, 1.0, True
        m = 3 if bits_per_slice is None else bits_per_slice
        return 2 ** m, float(2 ** m - 1), False
    max_digit = device.levels - 1
    m = int(math.floor(math.log2(device.levels))) if bits_per_slice is None else bits_per_slice
    if 2 ** (m - 1) > max_digit:
        raise ConfigError(f"bits_per_slice = {m} needs digits up to {2 ** (m - 1)} but the device has only "
                          f"{device.levels} levels (digits 0..{max_digit})")
    return 2 ** m, float(max_digit), False


def bit_slice(h: np.ndarray, device: DeviceConfig, slices: int = 1, bits_per_slice: Optional[int] = None) -> SlicedMatrix:
    """Signed-digit bit slicing of H into ``slices`` integer matrices that fit the device levels."""
    if not isinstance(slices, int) or slices < 1:
        raise ConfigError(f"slices must be an integer >= 1, got {slices!r}")
    if bits_per_slice is not None and (not isinstance(bits_per_slice, int) or bits_per_slice < 1):
        raise ConfigError(f"bits_per_slice must be an integer >= 1, got {bits_per_slice!r}")
    h = np.asarray(h, dtype=float)
    base, max_digit, continuous = slice_parameters(device, slices, bits_per_slice)
    hmax = float(np.max(np.abs(h)))
    if hmax == 0.0:
        return SlicedMatrix(h, [np.zeros_like(h)], 1.0, base, max_digit, continuous)
    unit = hmax / max_digit
    if continuous:
        return SlicedMatrix(h, [h / unit], unit, base, max_digit, True)
    digits = []
    rest = h / unit
    for s in range(slices):
        d = np.round(rest)
        digits.append(d)
        rest = (rest - d) * base
    return SlicedMatrix(h, digits, unit, base, max_digit, False)


# ---- programmed arrays ---------------------------------------------------------------------------------------
@dataclass
class SliceArray:
    """One programmed differential array of a slice (or tile of a slice)."""

    digits: np.ndarray
    g_pos: np.ndarray
    g_neg: np.ndarray
    g_unit: float       # siemens per digit
    weight: float       # H units per digit
    rf: float           # TIA feedback resistance chosen for this array (ohm)
    rows: slice
    cols: slice

    @property
    def row_total(self) -> np.ndarray:
        return (self.g_pos + self.g_neg).sum(axis=1)


def program_digits(digits: np.ndarray, g_unit: float, device: DeviceConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """G+/G- for an integer (or continuous) digit matrix: G_min + |d| g_unit on the side of d's sign."""
    g_pos = device.g_min + np.maximum(digits, 0.0) * g_unit
    g_neg = device.g_min + np.maximum(-digits, 0.0) * g_unit
    return apply_programming_variation(g_pos, g_neg, device, rng)


@dataclass
class MVMResult:
    """y = H v (shape of v: (n,) -> (m,), (n, k) -> (m, k)) and what it cost."""

    y: np.ndarray
    saturated: bool
    static_power_w: float          # summed over the slice/tile arrays of one read, worst input column
    reads: int                     # analog array reads (ngspice operating points), re-ranging included
    operations: int                # MVM operations: (array, input vector, input slice) triples
    arrays: int                    # slice/tile arrays that hold the matrix
    rescales: int = 0
    netlist: Optional[str] = field(default=None, repr=False)

    def __repr__(self) -> str:
        sat = ", SATURATED" if self.saturated else ""
        return (f"MVMResult(y {tuple(np.shape(self.y))}, {self.reads} reads on {self.arrays} arrays, "
                f"{self.rescales} re-ranges, {format_power(self.static_power_w)}{sat})")


class AnalogMVM:
    """High-precision analog MVM: bit-sliced (and optionally tiled) RRAM arrays with TIAs, simulated by ngspice.

    ``AnalogMVM(config, slices=4).multiply(H, v)``. ``H`` may be rectangular (m x n). The arrays are programmed
    once per distinct H (programming error drawn then); read noise is drawn for every read.
    ``array_size`` tiles H into arrays of at most array_size x array_size (partial sums added digitally).
    """

    def __init__(self, config: Union[CircuitConfig, str, None] = None, *, slices: int = 1,
                 bits_per_slice: Optional[int] = None, input_slices: int = 1, read_voltage: float = 0.2,
                 target_swing: float = 0.1, gain_calibration: bool = False, array_size: Optional[int] = None,
                 seed_offset: int = 7919):
        if config is None:
            config = CircuitConfig.preset(DEFAULT_PRESET)
        elif isinstance(config, str):
            config = CircuitConfig.preset(config)
        self.config = config
        if not isinstance(input_slices, int) or input_slices < 1:
            raise ConfigError(f"input_slices must be an integer >= 1, got {input_slices!r}")
        if not (isinstance(read_voltage, (int, float)) and read_voltage > 0):
            raise ConfigError(f"read_voltage must be positive, got {read_voltage!r}")
        if not 0 < target_swing < config.io.linear_fraction:
            raise ConfigError(f"target_swing must be in (0, {config.io.linear_fraction}), got {target_swing!r}")
        if array_size is not None and (not isinstance(array_size, int) or array_size < 1):
            raise ConfigError(f"array_size must be a positive integer or None, got {array_size!r}")
        if isinstance(slices, bool) or not isinstance(slices, int) or slices < 1:
            raise ConfigError(f"slices must be an integer >= 1, got {slices!r}")
        slice_parameters(config.device, slices, bits_per_slice)  # validates bits_per_slice against the levels
        self.slices = slices
        self.bits_per_slice = bits_per_slice
        self.input_slices = input_slices
        self.read_voltage = float(read_voltage)
        self.target_swing = float(target_swing)
        self.gain_calibration = bool(gain_calibration)
        self.array_size = array_size
        self._rng = np.random.default_rng(config.device.seed + seed_offset)
        self._held: Optional[np.ndarray] = None     # the matrix the arrays hold (compared by value)
        self._arrays: list[SliceArray] = []
        self._sliced: Optional[SlicedMatrix] = None
        self._shape: tuple = ()
        self.counts = OperationCounts()   # every slice/tile array of this MVM: what was done to them
        self.reads = 0                    # ngspice operating points (re-ranging included)
        self.operations = 0               # (array, input vector, input slice) reads the hardware performs

    def __repr__(self) -> str:
        tiles = "untiled" if self.array_size is None else f"tiles <= {self.array_size}"
        return (f"AnalogMVM({self.slices} slices x {self.input_slices} input slices, {tiles}, "
                f"{self.config.name!r}, {len(self.programmed_arrays)} arrays programmed)")

    # ---- programming ---------------------------------------------------------------------------------------
    def _swing(self) -> float:
        return periphery.swing_limit(self.config)

    def program(self, h: np.ndarray) -> list:
        """Slice (and tile) H and program every non-empty slice array; cached while H is unchanged."""
        h = np.asarray(h, dtype=float)
        if h.ndim != 2 or h.size == 0:
            raise InputError(f"the MVM matrix must be a non-empty 2-D array, got shape {h.shape}")
        if not np.isfinite(h).all():
            raise InputError("the MVM matrix contains non-finite values (NaN/Inf)")
        if self._held is not None and self._held.shape == h.shape and np.array_equal(self._held, h):
            return self._arrays
        device = self.config.device
        sliced = bit_slice(h, device, self.slices, self.bits_per_slice)
        window = device.g_max - device.g_min
        g_unit = window / sliced.max_digit
        m, n = h.shape
        a = self.array_size or max(m, n)
        arrays = []
        for r0 in range(0, m, a):
            for c0 in range(0, n, a):
                rows, cols = slice(r0, min(r0 + a, m)), slice(c0, min(c0 + a, n))
                for s, digits in enumerate(sliced.digits):
                    d = digits[rows, cols]
                    if not np.any(d):
                        continue  # an all-zero slice tile contributes nothing: no array needed
                    g_pos, g_neg = program_digits(d, g_unit, device, self._rng)
                    worst_current = self.read_voltage * float(np.max(np.abs(g_pos - g_neg).sum(axis=1)))
                    rf = self.target_swing * self._swing() / max(worst_current, 1e-30)
                    arrays.append(SliceArray(d, g_pos, g_neg, g_unit, sliced.weight(s), rf, rows, cols))
        self.counts.add(programmings=len(arrays), cells_programmed=sum(2 * a.g_pos.size for a in arrays))
        self._held, self._arrays, self._sliced, self._shape = h.copy(), arrays, sliced, h.shape
        return arrays

    @property
    def programmed_arrays(self) -> list:
        """The slice/tile arrays as programmed now (one device draw per programming)."""
        return list(self._arrays)

    # ---- inputs ----------------------------------------------------------------------------------------------
    def _input_slices(self, v: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """[(weight, normalised DAC codes in [-1, 1])]: v/max|v| = sum_t weight_t * codes_t (+ DAC remainder)."""
        bits = self.config.io.dac_bits
        if bits is None:
            return [(1.0, v)]
        levels = 2 ** (bits - 1) - 1 if bits > 1 else 1
        out, rest, weight = [], v.copy(), 1.0
        for _ in range(self.input_slices):
            codes = np.clip(np.round(rest * levels), -levels, levels) / levels
            out.append((weight, codes))
            rest = (rest - codes) * (2 * levels)   # remainder is within +-1/(2 levels): back to full scale
            weight /= 2 * levels
            if not np.any(np.round(rest * levels)):
                break
        return out

    def _adc(self, v: np.ndarray) -> np.ndarray:
        return periphery.adc(v, self.config)

    # ---- multiply --------------------------------------------------------------------------------------------
    def multiply(self, h: np.ndarray, v: np.ndarray) -> MVMResult:
        """y = H v through the circuit. v: (n,) or (n, k)."""
        arrays = self.program(h)
        m, n = self._shape
        v = np.asarray(v, dtype=float)
        if v.ndim not in (1, 2) or v.shape[0] != n:
            raise InputError(f"the MVM input must have shape ({n},) or ({n}, k) for a {m}x{n} matrix, got {v.shape}")
        if not np.isfinite(v).all():
            raise InputError("the MVM input contains non-finite values (NaN/Inf)")
        columns = v.reshape(n, -1)
        k = columns.shape[1]
        y = np.zeros((m, k))
        power = np.zeros(k)
        saturated = False
        reads0, ops0, runs0 = self.reads, self.operations, session().runs
        rescales = 0
        first_deck = None
        ng = session()
        try:
            for arr in arrays:
                sub = columns[arr.cols, :]
                deck_loaded = False
                noisy = self.config.device.read_noise_sigma > 0
                for c in range(k):
                    vin = sub[:, c]
                    vmax = float(np.max(np.abs(vin)))
                    if vmax == 0.0:
                        continue
                    for weight_in, codes in self._input_slices(vin / vmax):
                        if not np.any(codes):
                            continue
                        volts = self.read_voltage * codes
                        g_pos, g_neg = arr.g_pos, arr.g_neg
                        if noisy:
                            g_pos, g_neg = self._noisy(arr)
                        rf = arr.rf
                        for attempt in range(self.config.io.max_rescales + 1):
                            if noisy or not deck_loaded:
                                deck = build_mvm_deck(g_pos, g_neg, volts, rf, self.config,
                                                      header=f"slice weight {arr.weight:.6g} per digit, "
                                                             f"rows {arr.rows.start}:{arr.rows.stop}, "
                                                             f"cols {arr.cols.start}:{arr.cols.stop}")
                                first_deck = first_deck or deck
                                ng.load(deck)
                                deck_loaded = True
                                raw = ng.run(self._vectors(arr))
                            else:
                                values = {}
                                for j in range(len(volts)):
                                    values[f"vp_{j}"] = volts[j]
                                    values[f"vn_{j}"] = -volts[j]
                                values.update({f"rf_{i}": rf for i in range(g_pos.shape[0])})
                                ng.alter_sources(values)
                                raw = ng.run(self._vectors(arr), command="op")
                            self.reads += 1
                            self.counts.add(mvm_reads=1, dac_conversions=len(volts), adc_conversions=g_pos.shape[0])
                            out = np.array([raw[f"out_{i}"][-1] for i in range(g_pos.shape[0])])
                            vmax_out = float(np.max(np.abs(out)))
                            sat = self._saturated(out)
                            if sat.any() and attempt < self.config.io.max_rescales:
                                rf *= 0.5 * self.target_swing * self._swing() / vmax_out
                                rescales += 1
                                continue
                            if (not sat.any() and self.config.io.adc_bits is not None and vmax_out > 0
                                    and vmax_out < 0.5 * self.target_swing * self._swing()
                                    and attempt < self.config.io.max_rescales):
                                rf *= self.target_swing * self._swing() / vmax_out
                                rescales += 1
                                continue
                            break
                        self.operations += 1
                        saturated = saturated or bool(sat.any())
                        read = self._adc(out)
                        if self.gain_calibration:
                            read = read * (1.0 + (1.0 + rf * (g_pos + g_neg).sum(axis=1)) / self.config.opamp.gain)
                        current = -read / rf                       # = (G_diff V)_i
                        digits_times_codes = current / (arr.g_unit * self.read_voltage)
                        y[arr.rows, c] += arr.weight * weight_in * vmax * digits_times_codes
                        if weight_in == 1.0:
                            power[c] += float(periphery.supply_power(raw, self.config.opamp.supply_v)[-1])
        finally:
            ng.clean()
            self.counts.add(ngspice_runs=session().runs - runs0)
        return MVMResult(y=y[:, 0] if v.ndim == 1 else y, saturated=saturated,
                         static_power_w=float(np.max(power)) if k else 0.0, reads=self.reads - reads0,
                         operations=self.operations - ops0, arrays=len(arrays), rescales=rescales, netlist=first_deck)

    def response(self, h: np.ndarray) -> np.ndarray:
        """The programmed arrays' linear response to H (what ``multiply(H, I)`` returns): every array's TIA outputs
        for a unit input on each column alone. ngspice measures them with one quasi-static batch per array (unit
        input on column r at t = r; pole-free TIAs, so every time point is an operating point) at the first
        programming of an array topology and every ``simulation.verify_every``-th; the programmings between
        re-stamp their resistors into ngspice's exported matrix of that topology (``amc.hw.mvm_restamp``), counted
        as ``programmings_verified`` / ``programmings_restamped``. Simulation bookkeeping: only the ngspice runs
        and the programmings' verification are counted."""
        from amc.hw import mvm_restamp
        arrays = self.program(h)
        if self.config.io.adc_bits is not None or self.config.io.dac_bits is not None or \
                self.config.device.read_noise_sigma > 0:
            raise ConfigError("the MVM response is measured for ideal converters and no read noise; use "
                              "multiply() per read instead")
        m, n = self._shape
        out = np.zeros((m, n))
        runs0 = session().runs
        try:
            for arr in arrays:
                v, restamped = mvm_restamp.response(self.config, arr.g_pos, arr.g_neg, arr.rf, self.read_voltage,
                                                    lambda: self.export_deck(arr), lambda: self.batch_outputs(arr))
                self.counts.add(**{"programmings_restamped" if restamped else "programmings_verified": 1})
                if self.gain_calibration:
                    v = v * (1.0 + (1.0 + arr.rf * arr.row_total) / self.config.opamp.gain)[:, None]
                current = -v / arr.rf
                out[arr.rows, arr.cols] += arr.weight * current / (arr.g_unit * self.read_voltage)
        finally:
            self.counts.add(ngspice_runs=session().runs - runs0)
        return out

    def batch_outputs(self, arr: SliceArray) -> np.ndarray:
        """(rows, cols) TIA outputs of ngspice's quasi-static batch: read_voltage on column r alone at t = r."""
        rows, cols = arr.g_pos.shape
        deck = build_mvm_deck(arr.g_pos, arr.g_neg, self.read_voltage * np.eye(cols), arr.rf, self.config,
                              header=f"slice weight {arr.weight:.6g} per digit (response batch)")
        ng = session()
        try:
            ng.load(deck)
            raw = ng.run(["time"] + [f"out_{i}" for i in range(rows)], command=f"tran 1 {max(cols - 1, 1)} 0 1")
        finally:
            ng.clean()
        samples = np.arange(cols, dtype=float)
        return np.stack([np.interp(samples, raw["time"], raw[f"out_{i}"]) for i in range(rows)])

    def export_deck(self, arr: SliceArray) -> str:
        """The .op deck of the programmed array with read_voltage on column 0, saving every vector (what ngspice
        exports its matrix from)."""
        volts = np.zeros(arr.g_pos.shape[1])
        volts[0] = self.read_voltage
        deck = build_mvm_deck(arr.g_pos, arr.g_neg, volts, arr.rf, self.config,
                              header=f"slice weight {arr.weight:.6g} per digit (matrix export)")
        return "\n".join(line for line in deck.splitlines() if not line.startswith(".save ")) + "\n"

    def _vectors(self, arr: SliceArray) -> list[str]:
        return [f"out_{i}" for i in range(arr.g_pos.shape[0])] + list(SUPPLY_VECTORS)

    def _noisy(self, arr: SliceArray) -> tuple[np.ndarray, np.ndarray]:
        return periphery.read_noise(arr.g_pos, arr.g_neg, self.config.device.read_noise_sigma, self._rng,
                                    self.config.device)

    def _saturated(self, v: np.ndarray) -> np.ndarray:
        return periphery.saturated(v, self.config)


# ---- netlist ---------------------------------------------------------------------------------------------------
# Tight Newton tolerances: the default reltol (1e-3) would cap a nonlinear (saturating) op-amp's output near 1e-6.
MVM_OPTIONS = ".options reltol=1e-12 vntol=1e-15 abstol=1e-20"


def build_mvm_deck(g_pos: np.ndarray, g_neg: np.ndarray, volts: np.ndarray, rf: float, config: CircuitConfig,
                   header: str = "", library: Optional[str] = None,
                   title: str = "amc-cosim analog matrix-vector multiplication (MVM) circuit") -> str:
    """Deck of one MVM array: DAC sources on the columns, a TIA on every row, .op analysis.

    Nodes: ``cp_j``/``cn_j`` column j of G+/G- (driven at +V_j/-V_j by ``vp_j``/``vn_j``), ``row_i`` row i at the
    TIA's inverting input (virtual ground), ``out_i`` the TIA output. With wire resistance the rows and columns
    become resistive grids (``r_i_k``, ``cp_j_i``/``cn_j_i``) as in the INV deck.
    """
    m, n = g_pos.shape
    volts = np.asarray(volts, dtype=float)
    batch = volts.ndim == 2          # (n, k): a quasi-static batch, input vector r at t = r
    o, w = config.opamp, config.wires
    lines = [
        f"* {title}",
        f"* {m} rows (TIAs) x {n} columns (DAC inputs); R_f = {rf:.6g} ohm; {header}",
        "* V(out_i) = -R_f * sum_j (G+_ij - G-_ij) V_j  (ideal TIA)",
        f"* {config.describe()}",
        *([f'.include "{library}"'] if library is not None else
          ["* ---- op-amp models (amc/data/amc_opamps.lib, inlined so the deck runs anywhere) ----",
           *model_library().strip().splitlines(), "* ---- end of models ----"]),
        MVM_OPTIONS,
        f"vcc vcc 0 DC {_fmt(o.supply_v)}",
        f"vee vee 0 DC {_fmt(-o.supply_v)}",
        "* DAC outputs: +V_j on G+ column j, -V_j on G- column j",
    ]
    for j in range(n):
        if batch:
            lines.append(f"vp_{j} cp_{j} 0 DC 0 PWL({pwl_points(volts[j])})")
            lines.append(f"vn_{j} cn_{j} 0 DC 0 PWL({pwl_points(-volts[j])})")
        else:
            lines.append(f"vp_{j} cp_{j} 0 DC {_fmt(volts[j])}")
            lines.append(f"vn_{j} cn_{j} 0 DC {_fmt(-volts[j])}")
    params = opamp_params(config)
    model = "amc_opamp_dc" if batch else "amc_opamp"
    lines.append("* one transimpedance amplifier per row: virtual-ground row line, feedback resistor rf_i")
    for i in range(m):
        lines.append(f"xtia_{i} 0 row_{i} out_{i} vcc vee {model} {params}")
        lines.append(f"rf_{i} row_{i} out_{i} {_fmt(rf)}")
    lines.append("* crosspoint arrays: rp_i_j = 1/G+_ij (row i to cp_j), rn_i_j = 1/G-_ij (row i to cn_j)")
    lines += crossbar(g_pos, g_neg, [f"cp_{j}" for j in range(n)], [f"cn_{j}" for j in range(n)],
                      w.row_ohm if w.enabled else None, w.col_ohm)
    lines.append(".save " + " ".join(f"v(out_{i})" for i in range(m)) + " i(vcc) i(vee)")
    lines.append(f".tran 1 {max(volts.shape[1] - 1, 1)} 0 1" if batch else ".op")
    lines.append(".end")
    return "\n".join(lines) + "\n"
