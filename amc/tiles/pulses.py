"""Rank-one outer-product updates as stochastic pulse trains (Gokmen & Vlasov, Front. Neurosci. 2016).

To add ΔW = η·d xᵀ to an m×n array in one parallel step, row i fires a train of ``bit_length`` (BL) time slots,
each carrying a pulse with probability p_i = min(1, C_d|d_i|); column j likewise with q_j = min(1, C_x|x_j|).
A cell moves by one device step only in slots where its row and column pulses coincide, so its expected number
of steps is BL·p_i·q_j, i.e. η|d_i x_j|/dw_min when C_d·C_x = η/(BL·dw_min). The sign of d_i x_j selects the pulse
polarity (up or down). Update management (Gokmen et al. 2017) splits C between the two sides so that both
trains use the same largest probability. Probabilities above 1 are clipped (the update then falls short; the
count of clipped lines is reported).

The mean-field option replaces the random coincidences by their expectation (a continuum of pulses), which is
what Wu et al.'s analysis of analog SGD and Tiki-Taka uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from amc.errors import ConfigError

UPDATE_MODES = ("pulsed", "mean-field")


@dataclass
class PulseTrains:
    """One rank-one update's pulse trains: coincidence counts per cell, polarity, and what the drivers did."""

    counts: np.ndarray        # coincident pulses per cell (m, n)
    sign: np.ndarray          # +1 up, -1 down, per cell
    line_pulses: int          # pulses the row and column drivers emitted
    clipped_lines: int        # rows/columns whose probability had to be clipped at 1


def stochastic_pulse_trains(d: np.ndarray, x: np.ndarray, lr: float, dw_min: float, bit_length: int,
                            rng: np.random.Generator, update_management: bool = True) -> PulseTrains:
    """Draw the row (d) and column (x) trains for ΔW = lr·d xᵀ and count coincidences per cell."""
    if bit_length < 1:
        raise ConfigError(f"bit_length must be a positive integer, got {bit_length!r}")
    d = np.asarray(d, dtype=float).ravel()
    x = np.asarray(x, dtype=float).ravel()
    dmax, xmax = float(np.max(np.abs(d), initial=0.0)), float(np.max(np.abs(x), initial=0.0))
    m, n = d.size, x.size
    if dmax == 0.0 or xmax == 0.0 or lr == 0.0:
        return PulseTrains(np.zeros((m, n), dtype=np.int64), np.ones((m, n)), 0, 0)
    c = abs(lr) / (bit_length * dw_min)            # C_d · C_x
    if update_management:
        c_d = np.sqrt(c * xmax / dmax)
        c_x = np.sqrt(c * dmax / xmax)
    else:
        c_d = c_x = np.sqrt(c)
    p = c_d * np.abs(d)
    q = c_x * np.abs(x)
    clipped = int(np.sum(p > 1) + np.sum(q > 1))
    p, q = np.minimum(p, 1.0), np.minimum(q, 1.0)
    rows = rng.random((m, bit_length)) < p[:, None]
    cols = rng.random((n, bit_length)) < q[:, None]
    counts = rows.astype(np.float32) @ cols.T.astype(np.float32)
    sign = np.sign(lr) * np.sign(np.outer(d, x))
    sign[sign == 0] = 1.0
    return PulseTrains(counts.astype(np.int64), sign, int(rows.sum() + cols.sum()), clipped)


def expected_counts(d: np.ndarray, x: np.ndarray, lr: float, dw_min: float) -> np.ndarray:
    """The mean number of coincidences per cell, η|d_i x_j|/dw_min (without clipping)."""
    return np.abs(lr * np.outer(d, x)) / dw_min


def validate_mode(mode: str, where: str = "update") -> str:
    if mode not in UPDATE_MODES:
        raise ConfigError(f"{where} must be one of {', '.join(UPDATE_MODES)}, got {mode!r}")
    return mode
