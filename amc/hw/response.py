"""Settles computed from an INV array's measured linear response, with per-read noise and drift.

Once per programming, ngspice solves the programmed array for unit currents into every row (one quasi-static
batch): the response R_V (op-amp outputs V), R_W (the G- drive nodes) and R_u (row lines) per ampere of input.
In the linear region the circuit is exactly V = R_V I.

A read perturbs the conductances: read noise (drawn anew for every read) and drift (a function of the time
since programming). A perturbed cell between row i and a node driven by an op-amp output (zero output impedance
in the model) acts as an extra current into row i, dG+_ij (V_j - u_i) + dG-_ij (W_j - u_i). With
K = dG+ R_V + dG- R_W - diag(dS) R_u the perturbed circuit obeys I + z = (1 - K)^-1 I and V = R_V (1 - K)^-1 I --
exact for a linear circuit without wire resistance (the crosspoint ends are then op-amp-driven nodes and rows).
With wires the measured response still holds (it includes the IR drop), but a perturbed cell no longer sits
between such nodes, so every noisy or drifted read of a wired array goes through ngspice (``InvArray.solve``). tests/hw/test_inv_array.py holds this path to ngspice decks carrying the same
perturbed conductances.

Drift (``device.drift_nu`` > 0): power-law conductance relaxation after programming,
G(t) = G(t0) (t / t0)^-nu for t > t0, with nu drawn per cell at programming (mean ``drift_nu``, spread
``drift_nu_sigma``). This is the drift model of IBM aihwkit (PCMLikeNoiseModel: Nandakumar et al., 2019;
Le Gallo et al., 2018), used here for RRAM relaxation with a user-chosen exponent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from amc.errors import ConfigError, SimulationError
from amc.units import format_power, si
from amc.hw.mapping import MappedArray, validate_rhs
from amc.hw.netlist import batch_analysis, build_deck, output_node
from amc.hw.runner import session
from amc.solution import Solution, residuals

if TYPE_CHECKING:
    from amc.hw.inv_array import InvArray


# How linear the op-amp limiter must be for the engine to answer a unit-current column of the response: far below
# the read path's own agreement with ngspice (1e-6, the limiter's compression over the loop gain at full swing);
# column 0 is always held to ngspice's own .op at ENGINE_VERIFY_RTOL.
RESPONSE_LINEAR_RTOL = 1e-7


@dataclass
class Response:
    r_out: np.ndarray     # dV(out_j)/dI_i  (n, n), volts per ampere
    r_drive: np.ndarray   # dV(nout_j)/dI_i (n, n)
    r_row: np.ndarray     # dV(row_i)/dI_k  (n, n)
    power_w: float        # static supply power at the measurement's small inputs (quiescent-dominated)
    v_zero: np.ndarray    # op-amp outputs with zero input (input offsets), added to every read
    nu: Optional[np.ndarray] = None   # per-cell drift exponents (G+, G-) drawn at programming

    def __repr__(self) -> str:
        drift = ", with drift exponents" if self.nu is not None else ""
        return (f"Response({self.r_out.shape[0]}x{self.r_out.shape[0]} measured, |dV/dI| up to "
                f"{si(float(np.abs(self.r_out).max()), 'Ω')}, {format_power(self.power_w)} static{drift})")


def measure_response(array: "InvArray") -> Response:
    """One quasi-static ngspice batch over unit-current inputs into every row of the programmed array."""
    mapped = array.mapped
    cfg = array.config
    n = mapped.n
    # Unit row currents at 1/20 of the auto-ranged I0: the op-amp limiter's compression grows as (V/Vsat)^p, so at
    # this amplitude the circuit is linear to far below ngspice's tolerance, and the matrix engine answers every
    # column (at the full target swing it hands some back to the slow plain-ngspice batch).
    scales = 0.05 * np.array([array.readout.initial_i0(mapped, np.eye(n)[:, c]) for c in range(n)])
    currents = np.diag(scales)
    nodes = ([output_node(j) for j in range(n)] + [f"nout_{j}" for j in range(n)] + [f"row_{i}" for i in range(n)])
    # With an input offset, a last column of zero input measures what the offsets alone produce.
    offset = bool(cfg.opamp.offset_v)
    k = n + 1 if offset else n
    columns = np.concatenate([currents, np.zeros((n, 1))], axis=1) if offset else currents
    v, power, restamped = (_engine_response(array, columns, nodes) if cfg.simulation.engine == "ngspice-matrix"
                           else (None, None, False))
    array.counts.add(**{"programmings_restamped" if restamped else "programmings_verified": 1})
    if v is None:                # plain ngspice: one quasi-static batch over the unit inputs
        deck = build_deck(mapped, columns, cfg)
        extra = " ".join(f"v({name})" for name in nodes[n:])
        deck = "\n".join(line + " " + extra if line.startswith(".save ") else line
                         for line in deck.splitlines()) + "\n"
        ng = session()
        try:
            ng.load(deck)
            raw = ng.run(["time"] + nodes + ["vcc#branch", "vee#branch"], command=batch_analysis(k))
        finally:
            ng.clean()
        samples = np.arange(k, dtype=float)
        v = np.stack([np.interp(samples, raw["time"], raw[name]) for name in nodes])     # (3n, k)
        rails = -(cfg.opamp.supply_v * raw["vcc#branch"] - cfg.opamp.supply_v * raw["vee#branch"])
        power = float(np.interp(k - 1, raw["time"], rails))
    zero = v[:, -1:] if offset else np.zeros((v.shape[0], 1))
    per_amp = (v[:, :n] - zero) / scales[None, :]
    nu = None
    d = cfg.device
    if d.drift_nu > 0:
        nu = np.maximum(d.drift_nu + d.drift_nu_sigma * array.rng.standard_normal((2, n, n)), 0.0)
    # Only an input offset moves the zero-input outputs; otherwise they are 0 up to the limiter's linearisation.
    v_zero = zero[:n, 0].copy()
    return Response(per_amp[:n], per_amp[n:2 * n], per_amp[2 * n:], power, v_zero, nu)


def _engine_response(array: "InvArray", columns: np.ndarray, nodes: list) -> tuple:
    """(node voltages (3n, k), static power at zero input, re-stamped?) from ngspice's own factored matrix -- of this
    programmed deck, or of the topology's template re-stamped to it (``amc.hw.restamp``) -- or (None, None, False)
    when the engine's checks send the measurement back to plain ngspice."""
    from amc.hw.runner import EngineFallback
    from amc.hw.periphery import supply_power
    from amc.hw import restamp
    cfg = array.config
    try:
        result, restamped = restamp.measure(array, columns, nodes,
                                            max(cfg.simulation.engine_rtol, RESPONSE_LINEAR_RTOL))
    except (EngineFallback, SimulationError) as exc:
        return _engine_gave_up(array, columns.shape[1], str(exc).splitlines()[0])
    if result.rejected:
        return _engine_gave_up(array, columns.shape[1], f"{result.rejected} unit columns outside the linear region "
                               f"(limiter error up to {result.limiter_error.max():.3g})")
    array.engine_stats["engine_rhs"] += columns.shape[1]
    return result.outputs, float(supply_power(result.supply, cfg.opamp.supply_v)[-1]), restamped


def _engine_gave_up(array: "InvArray", columns: int, why: str) -> tuple:
    import logging
    array.engine_stats["fallback_rhs"] += columns
    array.engine_stats["last_fallback"] = why
    logging.getLogger("amc.engine").warning("response of a %dx%d array measured by plain ngspice: %s",
                                            array.n, array.n, why)
    return None, None, False


def conductances_at(array: "InvArray", seconds: float, rng: Optional[np.random.Generator]) -> MappedArray:
    """The array's conductances at one read: drift after ``seconds`` since programming, then one read-noise draw."""
    mapped, d = array.mapped, array.config.device
    g_pos, g_neg = mapped.g_pos, mapped.g_neg
    nu = array.response().nu
    if nu is not None and seconds > d.drift_t0_s:
        ratio = seconds / d.drift_t0_s
        g_pos, g_neg = g_pos * ratio ** -nu[0], g_neg * ratio ** -nu[1]
    drifted = MappedArray(mapped.h, g_pos, g_neg, mapped.g0, mapped.condition)
    if rng is None:
        return drifted
    return drifted.with_read_noise(d.read_noise_sigma, rng, d)


def _perturbed_voltages(resp: Response, mapped: MappedArray, read: MappedArray, currents: np.ndarray) -> np.ndarray:
    d_pos, d_neg = read.g_pos - mapped.g_pos, read.g_neg - mapped.g_neg
    d_s = (d_pos + d_neg).sum(axis=1)
    # R[j, i] = dV_j / dI_i, so V = R_V I and the extra row currents are z = K (I + z).
    k_matrix = d_pos @ resp.r_out + d_neg @ resp.r_drive - d_s[:, None] * resp.r_row
    driven = np.linalg.solve(np.eye(mapped.n) - k_matrix, currents)
    return resp.r_out @ driven


def read_settles(array: "InvArray", g: np.ndarray, seconds_since_programming: float = 0.0) -> Solution:
    """Settle every column of g on the programmed array (converters, auto-ranging, saturation, read noise, drift)."""
    if array.config.wires.enabled and array.config.device.drift_nu > 0:
        raise ConfigError("drift of a wired array is not modelled (a drifted cell no longer sits between op-amp "
                          "driven nodes); set wires to 0 or drift_nu to 0")
    if array.config.wires.enabled and array.per_solve_noise:
        return array.solve(g)          # see the module docstring: perturbations need the full netlist then
    resp = array.response()
    mapped = array.mapped
    n = mapped.n
    g = validate_rhs(g, n)
    columns = g.reshape(n, -1)
    d = array.scaling
    cols = columns * d[:, None] if d is not None else columns
    noisy = array.per_solve_noise
    drift = resp.nu is not None and seconds_since_programming > array.config.device.drift_t0_s
    static = None if (noisy or drift) else mapped
    if drift and not noisy:
        static = conductances_at(array, seconds_since_programming, None)
    k = cols.shape[1]
    outputs, saturated, i0s = np.zeros((n, k)), np.zeros((n, k), dtype=bool), np.zeros(k)
    readout = array.readout
    settles = rescales = 0

    def settle(currents: np.ndarray) -> tuple:
        """One read per column: this read's conductances (a fresh draw when noisy), V from the measured response."""
        v = np.zeros(currents.shape)
        for c in range(currents.shape[1]):
            read = static if static is not None else conductances_at(array, seconds_since_programming, array.rng)
            v[:, c] = resp.v_zero + (resp.r_out @ currents[:, c] if read is mapped else
                                     _perturbed_voltages(resp, mapped, read, currents[:, c]))
        # no output-current sensing in the linear response: the auto-range aims at the drive limit instead
        return v, np.zeros(currents.shape[1]), np.zeros(currents.shape[1])

    for c in range(k):
        # column by column, so each column's reads (and noise draws) follow one another as on the chip
        ranged = readout.auto_range(mapped, cols[:, [c]], settle)
        outputs[:, c], saturated[:, c], i0s[c] = ranged.outputs[:, 0], ranged.saturated[:, 0], ranged.i0[0]
        settles, rescales = settles + ranged.settles, rescales + ranged.rescales
    array.counts.add(inv_settles=settles, dac_conversions=n * settles, adc_conversions=n * settles,
                     digital_flops=(2 * n * k if d is not None else 0))
    x = readout.x_from_v(outputs, i0s, cols, mapped.g0)
    if d is not None:
        x = x * d[:, None]
    total, per_column = residuals(array.matrix, x, columns)
    squeeze = g.ndim == 1
    return Solution(x=x[:, 0] if squeeze else x, method="direct", backend="circuit", relative_residual=total,
                    relative_residuals=per_column[0] if squeeze else per_column,
                    saturated=saturated[:, 0] if squeeze else saturated, i0_a=i0s[0] if squeeze else i0s,
                    static_power_w=resp.power_w, rescales=rescales, lambda_min=array.lambda_min,
                    condition_number=mapped.condition, g0_s=mapped.g0,
                    details=dict(path="measured-response", seconds_since_programming=seconds_since_programming))
