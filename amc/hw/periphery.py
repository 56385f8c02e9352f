"""The periphery every array shares (INV and MVM): output swing and saturation, ADC, supply power, read noise.

One copy each, so an INV settle and an MVM read are judged, converted and powered by the same rules.
"""
from __future__ import annotations

import math

import numpy as np

from amc.config import CircuitConfig, DeviceConfig
from amc.hw.converters import quantise_symmetric

SUPPLY_VECTORS = ("vcc#branch", "vee#branch")


def swing_limit(config: CircuitConfig) -> float:
    """The largest output an op-amp can give: its saturation voltage, or the supply without one."""
    o = config.opamp
    return o.v_sat if o.v_sat is not None else o.supply_v


def saturated(v: np.ndarray, config: CircuitConfig) -> np.ndarray:
    """Outputs beyond the linear part of the swing (io.linear_fraction of v_sat)."""
    if config.opamp.v_sat is None:
        return np.zeros(np.shape(v), dtype=bool)
    return np.abs(v) > config.io.linear_fraction * config.opamp.v_sat


def current_fraction(currents: np.ndarray, config: CircuitConfig) -> float:
    """The largest op-amp output current as a fraction of its limit in its direction (sourcing: positive current out
    of the amplifier; sinking: negative); 0 without limits. Above io.linear_fraction it is reported like saturation."""
    o = config.opamp
    currents = np.asarray(currents, dtype=float)
    fraction = 0.0
    if o.i_source_max_a is not None and currents.size:
        fraction = max(fraction, float(np.max(currents)) / o.i_source_max_a)
    if o.i_sink_max_a is not None and currents.size:
        fraction = max(fraction, float(np.max(-currents)) / o.i_sink_max_a)
    return fraction


def slewing(time: np.ndarray, v: np.ndarray, config: CircuitConfig) -> bool:
    """Whether any output moved at io.linear_fraction of the op-amp's slew rate or faster during the window."""
    rate, gbw = config.opamp.slew_v_per_s, config.opamp.gbw_hz
    if rate is None or time.size < 3:
        return False
    # Slopes over 1/(2 pi GBW), the fastest the loop itself can move: a resistive feed-through of the input step
    # onto the output (through the cells and the output resistance) is instantaneous but small, not slewing.
    window = 1.0 / (2 * math.pi * gbw) if gbw else 0.0
    grid = np.arange(time[0], time[-1], window) if window and time[-1] - time[0] > 2 * window else time
    v = np.atleast_2d(v)
    resampled = np.stack([np.interp(grid, time, row) for row in v])
    slope = np.abs(np.diff(resampled, axis=-1)) / np.diff(grid)
    return bool(np.max(slope) >= config.io.linear_fraction * rate)


def adc(v: np.ndarray, config: CircuitConfig) -> np.ndarray:
    """The output converter: io.adc_bits over io.adc_full_scale_fraction of the swing (None: ideal)."""
    return quantise_symmetric(v, config.io.adc_bits, config.io.adc_full_scale_fraction * swing_limit(config))


def supply_power(raw: dict, supply_v: float) -> np.ndarray:
    """Power delivered by the two rails: P = -(V+ I+ + V- I-), ngspice currents flowing into the + terminal."""
    return -(supply_v * raw["vcc#branch"] + (-supply_v) * raw["vee#branch"])


def read_noise(g_pos: np.ndarray, g_neg: np.ndarray, sigma: float, rng: np.random.Generator,
               device: DeviceConfig) -> tuple[np.ndarray, np.ndarray]:
    """One read's conductances: relative Gaussian noise, never below a thousandth of g_min."""
    floor = 1e-3 * device.g_min
    noisy_pos = g_pos * (1.0 + sigma * rng.standard_normal(g_pos.shape))
    noisy_neg = g_neg * (1.0 + sigma * rng.standard_normal(g_neg.shape))
    return np.maximum(noisy_pos, floor), np.maximum(noisy_neg, floor)
