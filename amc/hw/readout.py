"""The read-out of an INV array: input DACs, the auto-ranged input scale I0, output ADCs and x from the outputs.

One copy for every way an array is settled (ngspice .op or batch, the matrix engine, the measured response of
``amc.hw.response``): the circuit computes V = -R I with I = I0 g / max|g| on the DACs, so the solution in array
coordinates is x = -V G0 max|g| / I0. Auto-ranging picks I0 so the largest output sits at io.target_swing of what the
amplifiers can drive, re-solves a column whose outputs saturate (or exceed io.linear_fraction of their output
current limit), and up-ranges one that under-uses the swing when converters or an input offset make amplitude buy
precision. Every re-solve is reported (``Ranging.rescales``) and counted by the caller as a settle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from amc.config import CircuitConfig
from amc.hw import opamp_models, periphery
from amc.hw.converters import quantise_symmetric
from amc.hw.mapping import MappedArray

# settle(currents (n, m)) -> (outputs (n, m) volts, supply power (m,) watts, output-current fraction (m,))
Settle = Callable[[np.ndarray], tuple]


@dataclass
class Ranging:
    """What auto-ranging settled on for every column (a zero column stays at x = 0 without a settle)."""

    outputs: np.ndarray          # (n, k) ADC readings of the accepted settles
    i0: np.ndarray               # (k,) the input scale of the accepted settle (0: a zero column)
    power: np.ndarray            # (k,) supply power of the accepted settle
    saturated: np.ndarray        # (n, k) outputs beyond io.linear_fraction of the swing
    current_limited: np.ndarray  # (k,) an op-amp output current beyond io.linear_fraction of its limit
    current_fraction: np.ndarray  # (k,) the largest output current as a fraction of its limit
    settles: int                 # settles done (accepted ones plus re-solves)
    rescales: int                # re-solves

    def __repr__(self) -> str:
        return f"Ranging({self.i0.size} columns, {self.settles} settles, {self.rescales} rescales)"


class Readout:
    """The converters and the input-scale rule of one array (its config), and the inverse norm that rule uses."""

    def __init__(self, config: CircuitConfig):
        self.config = config
        # ||A^-1||_2 as a controller measured it through reads (amc.hw.controller); None: no controller ran.
        self.measured_inverse_norm: Optional[float] = None
        self._inverse_norm: Optional[tuple] = None

    def __repr__(self) -> str:
        io = self.config.io
        dac = "ideal" if io.dac_bits is None else f"{io.dac_bits}-bit"
        adc = "ideal" if io.adc_bits is None else f"{io.adc_bits}-bit"
        scale = "auto-ranged" if io.i0_a is None else f"fixed {io.i0_a:g} A"
        return f"Readout({dac} DAC, {adc} ADC, I0 {scale}, swing {self.swing_limit:g} V)"

    def forget(self) -> None:
        """A new programming: nothing measured on the old device draw holds."""
        self.measured_inverse_norm, self._inverse_norm = None, None

    # ---- what the amplifiers can drive ----------------------------------------------------------------------
    @property
    def swing_limit(self) -> float:
        return periphery.swing_limit(self.config)

    @property
    def behavioural(self) -> bool:
        return opamp_models.is_behavioural(self.config.opamp)

    def drive_limit(self, mapped: MappedArray) -> float:
        """The largest output voltage the amplifiers can hold on this array: the swing, or less where the output
        current limit is reached first on the most heavily loaded column (G+ column plus the inverter's input
        resistor for a main amplifier, G- column plus its feedback resistor for an inverter)."""
        swing = self.swing_limit
        limit = self.config.opamp.i_limit_a
        if limit is None or self.behavioural:
            return swing
        extra = 0.0 if self.config.inverter.kind == "ideal" else 1.0 / self.config.inverter.resistance_ohm
        load = max(float(mapped.g_pos.sum(axis=0).max()), float(mapped.g_neg.sum(axis=0).max())) + extra
        return min(swing, limit / load)

    # ---- the input scale ----------------------------------------------------------------------------------
    def initial_i0(self, mapped: MappedArray, g: np.ndarray) -> float:
        """I0 such that the largest output is expected at target_swing of the drive limit.

        |x|_inf <= ||H_mapped^-1||_2 ||g||_2 / max|g| bounds the output per unit of input scale; the bound is
        tight enough for the damped SPD matrices of training and never lets an exactly mapped system saturate.
        """
        io = self.config.io
        if io.i0_a is not None:
            return io.i0_a
        gmax = float(np.max(np.abs(g)))
        if self.measured_inverse_norm is not None:      # what the controller measured through reads
            inverse_norm = self.measured_inverse_norm
        else:
            # An oracle no chip has (the SVD of the programmed conductances): used only by arrays that no
            # controller verified (the legacy recipes, HP-INV's inner arrays) and to size the simulator's own
            # linearisation amplitude (amc.hw.response); the `direct` preset's controller replaces it by reads.
            if self._inverse_norm is None or self._inverse_norm[0] is not mapped:
                self._inverse_norm = (mapped, 1.0 / np.linalg.svd(mapped.h_mapped, compute_uv=False)[-1])
            inverse_norm = self._inverse_norm[1]
        bound = inverse_norm * float(np.linalg.norm(g)) / gmax  # |x| per unit of g/max|g|
        return io.target_swing * self.drive_limit(mapped) * mapped.g0 / bound

    # ---- converters ---------------------------------------------------------------------------------------
    def dac(self, g: np.ndarray, i0: float) -> np.ndarray:
        """Input currents I0 g / max|g|, quantised by the io.dac_bits DACs (full scale = max|g|)."""
        gmax = float(np.max(np.abs(g)))
        if gmax == 0.0:
            return np.zeros_like(g)
        return i0 * quantise_symmetric(g / gmax, self.config.io.dac_bits, 1.0)

    def adc(self, v: np.ndarray) -> np.ndarray:
        return periphery.adc(v, self.config)

    def saturated(self, v: np.ndarray) -> np.ndarray:
        return periphery.saturated(v, self.config)

    def needs_upscale(self, v: np.ndarray, mapped: MappedArray) -> bool:
        # Only worth a second solve where amplitude buys precision: converters or an input offset.
        io, o = self.config.io, self.config.opamp
        if io.i0_a is not None or (io.adc_bits is None and o.offset_v == 0.0):
            return False
        return float(np.max(np.abs(v))) < 0.25 * io.target_swing * self.drive_limit(mapped)

    # ---- auto-ranging -------------------------------------------------------------------------------------
    def auto_range(self, mapped: MappedArray, columns: np.ndarray, settle: Settle) -> Ranging:
        """Settle every non-zero column of ``columns`` (n, k) through ``settle``, re-ranging I0 where it saturated,
        drove an output current past io.linear_fraction of its limit, or under-used the swing; the last allowed
        attempt is accepted as it is and reported (a fixed io.i0_a allows one)."""
        n, k = columns.shape
        io = self.config.io
        outputs, saturated = np.zeros((n, k)), np.zeros((n, k), dtype=bool)
        i0s, power = np.zeros(k), np.zeros(k)
        limited, load_fraction = np.zeros(k, dtype=bool), np.zeros(k)
        pending = [c for c in range(k) if np.any(columns[:, c])]  # a zero column has x = 0 exactly
        for c in pending:
            i0s[c] = self.initial_i0(mapped, columns[:, c])
        attempts = io.max_rescales + 1 if io.i0_a is None else 1
        settles = rescales = 0
        for attempt in range(attempts):
            if not pending:
                break
            currents = np.stack([self.dac(columns[:, c], i0s[c]) for c in pending], axis=1)
            v_all, p_all, fractions = settle(currents)
            settles += len(pending)
            retry = []
            for index, c in enumerate(pending):
                v = v_all[:, index]
                sat = self.saturated(v)
                fraction = fractions[index]
                over = fraction > io.linear_fraction
                last = attempt == attempts - 1
                if (sat.any() or over) and not last:
                    factor = 0.5 * io.target_swing * self.swing_limit / np.max(np.abs(v)) if sat.any() else 1.0
                    if over:
                        factor = min(factor, 0.5 * io.target_swing / fraction)
                    i0s[c] *= factor
                    retry.append(c)
                elif not sat.any() and not last and self.needs_upscale(v, mapped):
                    i0s[c] *= io.target_swing * self.drive_limit(mapped) / max(np.max(np.abs(v)), 1e-30)
                    retry.append(c)
                else:
                    outputs[:, c], saturated[:, c], power[c] = self.adc(v), sat, p_all[index]
                    limited[c], load_fraction[c] = over, fraction
            rescales += len(retry)
            pending = retry
        return Ranging(outputs, i0s, power, saturated, limited, load_fraction, settles, rescales)

    # ---- the answer -----------------------------------------------------------------------------------------
    @staticmethod
    def x_from_v(outputs: np.ndarray, i0: np.ndarray, columns: np.ndarray, g0: float) -> np.ndarray:
        """x = -V G0 max|g| / I0 per column (array coordinates); 0 for a column never settled (I0 = 0)."""
        gmax = np.max(np.abs(columns), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(i0 > 0, -outputs * g0 * gmax / np.where(i0 > 0, i0, 1), 0.0)
