"""INV settle time and energy from the circuit's own linear dynamics, without ngspice.

The deck (amc/hw/netlist.py, amc/data/amc_opamps.lib) is linear while no output saturates: every op-amp is one pole,
tau dy/dt = A0 (v+ - v-) - y with tau = A0 / (2 pi GBW), the row lines and the inverters' summing nodes are
algebraic. Stacking the n main outputs y and the n inverter outputs z gives dx/dt = F x + b, which we integrate
exactly (x(t+dt) - x* = expm(F dt) (x(t) - x*), from x = 0 as the deck's `uic`). Supply power is the deck's own
bookkeeping: each amplifier draws 2 V_s I_q between the rails plus V_s |I_out| for its output current. The
settling criterion is amc.hw.transient.settling, the one the ngspice path uses, so the two can be compared point for
point (tests/cost/test_settle.py holds them within 10 %).

Where only the size and lambda_min of the mapped loop are known (training ledgers, larger networks) ``settle_law``
gives the closed form t = ln(c / tol) / (2 pi GBW lambda_min) (Sun et al., IEEE TED 2020: time set by the minimal
eigenvalue of the loop matrix, not by n); c is fitted to the exact model (``fit_law_constant``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import expm

from amc.config import CircuitConfig
from amc.errors import ConfigError, InputError
from amc.hw.mapping import MappedArray
from amc.hw import transient as tran_analysis


@dataclass(frozen=True)
class SettleCost:
    """One INV settle: time to the settle band and supply energy until then, split by where it is dissipated."""

    time_s: float
    energy_j: float
    breakdown: dict = field(default_factory=dict)   # "opamps", "crosspoint array": joules, summing to energy_j
    lambda_min: float = float("nan")                # smallest real part of the loop matrix's eigenvalues
    n: int = 0
    settled: bool = True

    def __repr__(self) -> str:
        return (f"SettleCost(n={self.n}, lambda_min={self.lambda_min:.4g}: {self.time_s * 1e9:.4g} ns, "
                f"{self.energy_j * 1e12:.4g} pJ)")


def _state_space(mapped: MappedArray, config: CircuitConfig):
    o = config.opamp
    if o.gbw_hz is None:
        raise ConfigError(f"op-amp {o.name!r} has no gain-bandwidth (opamp.gbw_hz): it has no settling time")
    n, a0 = mapped.n, o.gain
    tau = a0 / (2 * math.pi * o.gbw_hz)
    s = mapped.row_total
    gp, gn = mapped.g_pos / s[:, None], mapped.g_neg / s[:, None]
    ideal = config.inverter.kind == "ideal"
    if ideal:
        # z = -y exactly: row node r = (I + (G+ - G-) y) / S
        f = (-np.eye(n) - a0 * (gp - gn)) / tau
    else:
        # inverter summing node inv_j = (y_j + z_j) / 2 (two equal resistors, no input current)
        f = np.zeros((2 * n, 2 * n))
        f[:n, :n] = -np.eye(n) - a0 * gp
        f[:n, n:] = -a0 * gn
        f[n:, :n] = -0.5 * a0 * np.eye(n)
        f[n:, n:] = -np.eye(n) - 0.5 * a0 * np.eye(n)
        f /= tau
    return f, tau, ideal


def _input_vector(currents: np.ndarray, mapped: MappedArray, tau: float, a0: float, size: int) -> np.ndarray:
    b = np.zeros(size)
    b[:mapped.n] = -a0 * currents / mapped.row_total / tau
    return b


def _waveforms(x: np.ndarray, mapped: MappedArray, config: CircuitConfig, currents: np.ndarray, ideal: bool):
    """Outputs (n, T), supply power (T,) and array dissipation (T,) of states x (2n or n, T)."""
    n, o = mapped.n, config.opamp
    y = x[:n]
    z = -y if ideal else x[n:]
    r = (currents[:, None] + mapped.g_pos @ y + mapped.g_neg @ z) / mapped.row_total[:, None]
    # output current of main amp j: through column j of G+ into every row, and (op-amp inverter) into R_in
    i_main = (mapped.g_pos.sum(axis=0)[:, None] * y) - mapped.g_pos.T @ r
    i_inv = (mapped.g_neg.sum(axis=0)[:, None] * z) - mapped.g_neg.T @ r
    if not ideal:
        rr = config.inverter.resistance_ohm
        mid = 0.5 * (y + z)
        i_main = i_main + (y - mid) / rr
        i_inv = i_inv + (z - mid) / rr
    amps = 2 * n  # n main op-amps and n inverters (ideal inverters carry the same quiescent current in the deck)
    p_supply = amps * 2 * o.supply_v * o.quiescent_current_a + o.supply_v * (
        np.abs(i_main).sum(axis=0) + np.abs(i_inv).sum(axis=0))
    # I^2 R in the crosspoint cells: sum_ij G+_ij (y_j - r_i)^2 + G-_ij (z_j - r_i)^2
    p_array = (np.einsum("ij,jt->t", mapped.g_pos, y ** 2) - 2 * np.einsum("it,ij,jt->t", r, mapped.g_pos, y)
               + mapped.g_pos.sum(axis=1) @ r ** 2
               + np.einsum("ij,jt->t", mapped.g_neg, z ** 2) - 2 * np.einsum("it,ij,jt->t", r, mapped.g_neg, z)
               + mapped.g_neg.sum(axis=1) @ r ** 2)
    return y, p_supply, p_array


def settle_cost(mapped: MappedArray, currents: np.ndarray, config: CircuitConfig, points: int = 4000) -> SettleCost:
    """Settle time and energy of one INV settle of ``mapped`` driven by input ``currents`` (A, shape (n,)).

    The window is stretched until the outputs have stayed inside the band for its last fifth, as the ngspice path
    does. Saturation is not modelled: an output beyond v_sat raises InputError (re-range the inputs first).
    """
    currents = np.asarray(currents, dtype=float).reshape(-1)
    if currents.shape[0] != mapped.n:
        raise InputError(f"currents has {currents.shape[0]} entries for an {mapped.n}x{mapped.n} array")
    if not np.any(currents):
        raise InputError("all input currents are zero: the outputs never leave 0 V, there is nothing to settle")
    f, tau, ideal = _state_space(mapped, config)
    b = _input_vector(currents, mapped, tau, config.opamp.gain, f.shape[0])
    eig = np.linalg.eigvals(f)
    slow = -float(np.max(eig.real))
    if slow <= 0:
        raise InputError("the INV loop is unstable (an eigenvalue of its state matrix has a non-negative real part)")
    x_final = -np.linalg.solve(f, b)
    o = config.opamp
    if o.v_sat is not None and np.max(np.abs(x_final[:mapped.n])) > o.v_sat:
        raise InputError(f"an output settles at {np.max(np.abs(x_final[:mapped.n])):.3g} V, beyond the op-amp swing "
                         f"+-{o.v_sat:g} V: the linear model does not apply; lower the input current scale")
    tol = config.simulation.settle_tol
    stop = config.simulation.tran_time_constants / slow
    for _ in range(6):
        t = np.linspace(0.0, stop, points + 1)
        step = expm(f * (t[1] - t[0]))
        dev = np.empty((f.shape[0], t.size))
        dev[:, 0] = -x_final
        for k in range(1, t.size):
            dev[:, k] = step @ dev[:, k - 1]
        x = x_final[:, None] + dev
        y, p_supply, p_array = _waveforms(x, mapped, config, currents, ideal)
        result = tran_analysis.settling(t, y, p_supply, tol)
        if result.settled:
            break
        stop *= 2
    mask = t <= result.time_s
    e_array = float(np.trapezoid(p_array[mask], t[mask])) if mask.sum() > 1 else 0.0
    lam = loop_lambda_min(mapped, config)
    return SettleCost(time_s=result.time_s, energy_j=result.energy_j,
                      breakdown={"opamps": result.energy_j - e_array, "crosspoint array": e_array},
                      lambda_min=lam, n=mapped.n, settled=result.settled)


def loop_lambda_min(mapped: MappedArray, config: CircuitConfig) -> float:
    """Smallest real part of the eigenvalues of the loop matrix diag(S)^-1 (G + diag(S)/A0) (amc.hw.mapping)."""
    return float(np.min(np.linalg.eigvals(mapped.loop_matrix(config.opamp.gain)).real))


# ---- the closed form -------------------------------------------------------------------------------------------
# t = (ln(1/tol) + offset) / (2 pi GBW lambda_min): ln(1/tol) is one mode decaying from the full output into the band;
# the offset absorbs the projection of the step on the slow mode and the op-amp inverters' second pole per column.
# Fitted (fit_law_offset, geometric mean) to the exact model on 23 random SPD systems mapped to rram-ic (8 levels,
# op-amp inverters), n 8-48, loop lambda_min 0.01-0.5: offset 0.28; the exact t 2 pi GBW lambda_min ranged 3.1-11.3
# against the law's 7.19, so the law is good to a factor ~2 on one matrix -- use settle_of_matrix when H is known.
LAW_OFFSET = 0.28


def settle_law(lambda_min: float, gbw_hz: float, tol: float = 1e-3, offset: float = LAW_OFFSET) -> float:
    """Closed-form settle time (s) of a loop whose matrix has smallest eigenvalue real part ``lambda_min``."""
    if not lambda_min > 0:
        raise InputError(f"lambda_min must be positive for a stable loop, got {lambda_min!r}")
    if not gbw_hz > 0:
        raise InputError(f"gbw_hz must be positive, got {gbw_hz!r}")
    if not 0 < tol < 1:
        raise InputError(f"tol must be in (0, 1), got {tol!r}")
    return (math.log(1.0 / tol) + offset) / (2 * math.pi * gbw_hz * lambda_min)


def fit_law_offset(samples: list[SettleCost], gbw_hz: float, tol: float) -> float:
    """Offset such that settle_law matches the given exact settles in the geometric mean of t 2 pi GBW lambda."""
    logs = [math.log(s.time_s * 2 * math.pi * gbw_hz * s.lambda_min) for s in samples]
    return float(math.exp(float(np.mean(logs))) - math.log(1.0 / tol))
