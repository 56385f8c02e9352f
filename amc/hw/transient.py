"""Settling time and energy from transient waveforms.

Settling time: the first instant after which every output stays inside a band of +-tol * max|final output|
around its own final value (Sun et al., IEEE TED 2020 use the same criterion). Energy: the integral of the
supply power from t = 0 to that instant (trapezoidal rule on ngspice's own time points).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Settling:
    time_s: float
    energy_j: float
    settled: bool


def settling(time: np.ndarray, outputs: np.ndarray, power: np.ndarray, tol: float) -> Settling:
    """outputs: (n, T) waveforms sampled at ``time`` (T,); power: (T,) in watts."""
    final = outputs[:, -1:]
    band = tol * max(float(np.max(np.abs(final))), 1e-30)
    outside = np.any(np.abs(outputs - final) > band, axis=0)
    if not outside.any():
        index = 0
    else:
        last_outside = int(np.nonzero(outside)[0][-1])
        index = last_outside + 1
    # The run must end with a stretch inside the band, or the circuit has not settled within the window.
    tail = len(time) - index
    settled = index < len(time) and (time[-1] - time[min(index, len(time) - 1)]) >= 0.2 * time[-1] and tail > 1
    if index >= len(time):
        index = len(time) - 1
    if 0 < index:
        # Interpolate the crossing between the last outside sample and the first inside one.
        t_cross = 0.5 * (time[index - 1] + time[index])
    else:
        t_cross = float(time[0])
    mask = time <= t_cross
    energy = float(np.trapezoid(power[mask], time[mask])) if mask.sum() > 1 else 0.0
    return Settling(time_s=float(t_cross), energy_j=energy, settled=bool(settled))
