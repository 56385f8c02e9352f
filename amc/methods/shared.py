"""What several methods compute the same way: the circuit a spec names, the shift ``auto`` starts from, the
refinement diagnostics and the sliced MVM's closed-form response. No method imports another method for these."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from amc.config import DEFAULT_PRESET, CircuitConfig
from amc.errors import ConfigError


def circuit_config(config: Union[CircuitConfig, str, None]) -> CircuitConfig:
    """A CircuitConfig from a config, a preset name or None (the default preset)."""
    if config is None:
        return CircuitConfig.preset(DEFAULT_PRESET)
    if isinstance(config, str):
        return CircuitConfig.preset(config)
    if not isinstance(config, CircuitConfig):
        raise ConfigError(f"config must be a CircuitConfig or a preset name, got {type(config).__name__}")
    return config


def quantisation_shift(h: np.ndarray, levels: Optional[int]) -> float:
    """||Q(H) - H||_2 for the nominal L-level mapping of H (scale max|H|): the starting point of ``shift: auto``."""
    if levels is None:
        return 0.0
    unit = float(np.max(np.abs(h))) / (levels - 1)
    return float(np.linalg.norm(np.round(h / unit) * unit - h, 2))


def refinement_radius(h: np.ndarray, h0_effective: np.ndarray) -> float:
    """rho(I - H H0^-1): the factor by which each refinement pass shrinks the residual (asymptotically)."""
    n = h.shape[0]
    try:
        m = np.eye(n) - h @ np.linalg.inv(h0_effective)
    except np.linalg.LinAlgError:
        return float("inf")
    return float(np.max(np.abs(np.linalg.eigvals(m))))


def preconditioned_condition(h: np.ndarray, h0_effective: np.ndarray) -> float:
    """cond(H0^-1 H) from the eigenvalues (real parts) of H0^-1 H; inf when one is <= 0."""
    try:
        ev = np.linalg.eigvals(np.linalg.solve(h0_effective, h)).real
    except np.linalg.LinAlgError:
        return float("inf")
    return float(ev.max() / ev.min()) if ev.min() > 0 else float("inf")


def closed_form_mvm(mvm, h: np.ndarray, opamp_gain: float) -> np.ndarray:
    """The sliced MVM's analytic response for H (linear region, ideal converters, no wires): per array
    y = -R_f G_diff v / (1 + (1 + R_f S_i)/A0), divided back by the calibrated gain, shift-and-added.
    Programs ``mvm`` (an ``AnalogMVM``) with H."""
    arrays = mvm.program(h)
    out = np.zeros(h.shape)
    for arr in arrays:
        gain = np.ones(arr.g_pos.shape[0])
        if not mvm.gain_calibration:
            gain = 1.0 / (1.0 + (1.0 + arr.rf * arr.row_total) / opamp_gain)
        out[arr.rows, arr.cols] += arr.weight * gain[:, None] * (arr.g_pos - arr.g_neg) / arr.g_unit
    return out
