"""AnalogSolver: x = H^-1 g through the ngspice circuit, with the digital answer available behind the same API.

Flow for one call: validate -> map H into G+/G- (cached while H is unchanged: the array stays programmed)
-> stability check -> for each right-hand side: DAC, input scaling I0 (auto-ranged against the op-amp swing),
deck -> ngspice (.op, or .tran for settling time and energy) -> ADC -> x, diagnostics.
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from .config import DEFAULT_PRESET, CircuitConfig
from .converters import quantise_symmetric
from .errors import ConfigError, InputError, SimulationError
from .mapping import MappedArray, check_invertible, check_stability, map_matrix, validate_matrix, validate_rhs
from .netlist import (TransientSpec, batch_analysis, build_deck, crosspoint_nodes, input_node, input_source_name,
                      output_node, pwl_points)
from .runner import EngineFallback, matrix_operating_points, session
from . import transient as tran_analysis

SUPPLY_VECTORS = ("vcc#branch", "vee#branch")
_log = logging.getLogger("amc.engine")
# The engine's answer for the right-hand side ngspice also solved must match ngspice's own .op to this.
ENGINE_VERIFY_RTOL = 1e-9


@dataclass
class Solution:
    """Result of a solve. Arrays follow the shape of g: (n,) or (n, k); per-RHS scalars are (k,) or floats."""

    x: np.ndarray
    backend: str
    netlist: Optional[str]
    relative_residual: float
    relative_residuals: np.ndarray
    saturated: np.ndarray
    i0_a: np.ndarray
    static_power_w: Optional[np.ndarray] = None
    settling_time_s: Optional[np.ndarray] = None
    energy_j: Optional[np.ndarray] = None
    settled: Optional[np.ndarray] = None
    rescales: int = 0
    # Right-hand sides the matrix engine handed back to plain ngspice (non-linear region or a failed check).
    engine_fallbacks: int = 0
    lambda_min: Optional[float] = None
    condition_number: Optional[float] = None
    g0_s: Optional[float] = None
    waveforms: Optional[list] = field(default=None, repr=False)

    @property
    def saturated_any(self) -> bool:
        return bool(np.any(self.saturated))

    def relative_error(self, reference: np.ndarray) -> float:
        reference = np.asarray(reference, dtype=float)
        return float(np.linalg.norm(self.x - reference) / np.linalg.norm(reference))

    def to_dict(self) -> dict:
        def plain(value):
            if value is None:
                return None
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, (np.floating, np.integer, np.bool_)):
                return value.item()
            return value
        return {
            "backend": self.backend,
            "x": plain(self.x),
            "relative_residual": self.relative_residual,
            "relative_residuals": plain(self.relative_residuals),
            "saturated": bool(np.any(self.saturated)),
            "saturated_outputs": plain(np.argwhere(np.atleast_1d(self.saturated)).reshape(-1)) if self.saturated.ndim == 1
            else plain(np.argwhere(self.saturated)),
            "i0_a": plain(self.i0_a),
            "static_power_w": plain(self.static_power_w),
            "settling_time_s": plain(self.settling_time_s),
            "energy_j": plain(self.energy_j),
            "settled": plain(self.settled),
            "rescales": self.rescales,
            "engine_fallbacks": self.engine_fallbacks,
            "lambda_min": self.lambda_min,
            "condition_number": self.condition_number,
            "g0_s": self.g0_s,
        }

    def summary(self) -> str:
        parts = [f"backend={self.backend}", f"relative residual={self.relative_residual:.3e}",
                 f"saturated outputs={int(np.sum(self.saturated))}"]
        if self.static_power_w is not None:
            parts.append(f"static power={np.max(self.static_power_w) * 1e3:.4g} mW")
        if self.settling_time_s is not None:
            parts.append(f"settling time={np.max(self.settling_time_s) * 1e9:.4g} ns")
        if self.energy_j is not None:
            parts.append(f"energy={np.max(self.energy_j) * 1e9:.4g} nJ")
        if self.rescales:
            parts.append(f"re-ranged {self.rescales}x")
        if self.engine_fallbacks:
            parts.append(f"{self.engine_fallbacks} RHS solved by plain ngspice (matrix engine fell back)")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"Solution({self.summary()})"


class AnalogSolver:
    """Solve H x = g with the closed-loop RRAM/op-amp circuit simulated by ngspice (or exactly, with numpy).

    ``AnalogSolver(config).solve(H, g)``: g of shape (n,) or (n, k). The array is programmed once per distinct H
    (programming error is drawn then); read noise is drawn for every right-hand side.
    """

    def __init__(self, config: Union[CircuitConfig, str, None] = None, backend: str = "circuit"):
        if config is None:
            config = CircuitConfig.preset(DEFAULT_PRESET)
        elif isinstance(config, str):
            config = CircuitConfig.preset(config)
        if backend not in ("circuit", "numpy"):
            raise ConfigError(f"backend must be 'circuit' or 'numpy', got {backend!r}")
        self.config = config
        self.backend = backend
        self._rng = np.random.default_rng(config.device.seed + 1)
        self._programmed: Optional[MappedArray] = None
        self._programmed_key: Optional[bytes] = None
        self._lambda_min: Optional[float] = None
        self._inverse_norm: Optional[tuple] = None
        self._token = object()
        self._generation: object = None
        self.solves = 0
        # Matrix engine (issue 9): right-hand sides it answered, those it handed to plain ngspice, and why.
        self.engine_stats = {"calls": 0, "engine_rhs": 0, "fallback_rhs": 0, "last_fallback": None}

    # aihwkit-style: a solver reports whether repeated solves of one array are random.
    @property
    def per_solve_noise(self) -> bool:
        return self.backend == "circuit" and self.config.device.is_stochastic_per_read

    def __repr__(self) -> str:
        return f"AnalogSolver(backend={self.backend!r}, {self.config.describe()})"

    # ---- public ---------------------------------------------------------------------------------
    def program(self, h: np.ndarray) -> MappedArray:
        """Map H into the arrays (once per distinct H) and check that the loop is stable."""
        h = validate_matrix(h)
        key = hashlib.sha1(h.tobytes() + str(h.shape).encode()).digest()
        if key != self._programmed_key:
            mapped = map_matrix(h, self.config.device, rng=self._rng)
            lam = None
            if self.config.simulation.check_stability:
                lam = check_stability(mapped, self.config.opamp.gain)
            else:
                lam = float(np.min(np.linalg.eigvals(mapped.loop_matrix(self.config.opamp.gain)).real))
            self._programmed, self._programmed_key, self._lambda_min = mapped, key, lam
            self._generation = object()  # every programming (new draw of device errors) is a new array
        return self._programmed

    def solve(self, h: np.ndarray, g: np.ndarray, transient: bool = False) -> Solution:
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        columns = g.reshape(h.shape[0], -1)
        if self.backend == "numpy":
            return self._solve_numpy(h, g)
        if transient and self.config.opamp.gbw_hz is None:
            raise ConfigError("a transient solve needs op-amps with a finite gain-bandwidth (opamp.gbw_hz); "
                              f"the configured op-amp {self.config.opamp.name!r} has none (use e.g. preset 'ideal-dynamic')")
        d = self._equilibration(h)
        if d is not None:
            # Solve (D H D) y = D g on the array and return x = D y: D is a digital gain per input DAC and output ADC.
            h_array, g_array = h * d[:, None] * d[None, :], g * (d if g.ndim == 1 else d[:, None])
        else:
            h_array, g_array = h, g
        mapped = self.program(h_array)
        self.solves += columns.shape[1]
        columns_array = g_array.reshape(h.shape[0], -1)
        fallbacks_before = self.engine_stats["fallback_rhs"]
        if transient:
            result = self._solve_transient(mapped, columns_array)
        else:
            result = self._solve_op(mapped, columns_array)
        solution = self._finish(h_array, g_array, result)
        solution.engine_fallbacks = self.engine_stats["fallback_rhs"] - fallbacks_before
        if d is not None:
            solution.x = solution.x * (d if g.ndim == 1 else d[:, None])
            total, per_column = _residuals(h, solution.x.reshape(h.shape[0], -1), columns)
            solution.relative_residual = total
            solution.relative_residuals = per_column[0] if g.ndim == 1 else per_column
        return solution

    def _equilibration(self, h: np.ndarray) -> Optional[np.ndarray]:
        """Symmetric Jacobi scaling d = |diag(H)|^-1/2 (row norms where a diagonal entry is zero), or None."""
        if not self.config.io.equilibrate:
            return None
        diag = np.abs(np.diag(h))
        norms = np.linalg.norm(h, axis=1)
        base = np.where(diag > 1e-12 * norms.max(), diag, norms)
        return 1.0 / np.sqrt(base)

    # ---- internals ------------------------------------------------------------------------------
    def _solve_numpy(self, h: np.ndarray, g: np.ndarray) -> Solution:
        condition = check_invertible(h)
        x = np.linalg.solve(h, g)
        residuals = _residuals(h, x.reshape(h.shape[0], -1), g.reshape(h.shape[0], -1))
        k = 1 if g.ndim == 1 else g.shape[1]
        return Solution(x=x, backend="numpy", netlist=None, relative_residual=residuals[0],
                        relative_residuals=residuals[1], saturated=np.zeros(g.shape, dtype=bool),
                        i0_a=np.zeros(k), condition_number=condition)

    def _swing_limit(self) -> float:
        o = self.config.opamp
        return o.v_sat if o.v_sat is not None else o.supply_v

    def _initial_i0(self, mapped: MappedArray, g: np.ndarray) -> float:
        """I0 such that the largest output is expected at target_swing of the swing.

        |x|_inf <= ||H_mapped^-1||_2 ||g||_2 / max|g| bounds the output per unit of input scale; the bound is
        tight enough for the damped SPD matrices of training and never lets an exactly mapped system saturate.
        """
        io = self.config.io
        if io.i0_a is not None:
            return io.i0_a
        gmax = float(np.max(np.abs(g)))
        if self._inverse_norm is None or self._inverse_norm[0] is not mapped:
            self._inverse_norm = (mapped, 1.0 / np.linalg.svd(mapped.h_mapped, compute_uv=False)[-1])
        inverse_norm = self._inverse_norm[1]
        bound = inverse_norm * float(np.linalg.norm(g)) / gmax  # |x| per unit of g/max|g|
        return io.target_swing * self._swing_limit() * mapped.g0 / bound

    def _currents(self, g: np.ndarray, i0: float) -> np.ndarray:
        gmax = float(np.max(np.abs(g)))
        if gmax == 0.0:
            return np.zeros_like(g)
        return i0 * quantise_symmetric(g / gmax, self.config.io.dac_bits, 1.0)

    def _adc(self, v: np.ndarray) -> np.ndarray:
        return quantise_symmetric(v, self.config.io.adc_bits, self.config.io.adc_full_scale_fraction * self._swing_limit())

    def _is_saturated(self, v: np.ndarray) -> np.ndarray:
        if self.config.opamp.v_sat is None:
            return np.zeros(v.shape, dtype=bool)
        return np.abs(v) > self.config.io.linear_fraction * self.config.opamp.v_sat

    def _needs_upscale(self, v: np.ndarray) -> bool:
        # Only worth a second solve where amplitude buys precision: converters or an input offset.
        io, o = self.config.io, self.config.opamp
        if io.i0_a is not None or (io.adc_bits is None and o.offset_v == 0.0):
            return False
        return float(np.max(np.abs(v))) < 0.25 * io.target_swing * self._swing_limit()

    def _solve_op(self, mapped: MappedArray, columns: np.ndarray) -> dict:
        """Steady state for every column; columns that saturate (or under-use the swing) are re-ranged and re-run."""
        n, k = columns.shape
        outputs, saturated = np.zeros((n, k)), np.zeros((n, k), dtype=bool)
        i0s, power = np.zeros(k), np.zeros(k)
        pending = [c for c in range(k) if np.any(columns[:, c])]  # a zero column has x = 0 exactly
        for c in pending:
            i0s[c] = self._initial_i0(mapped, columns[:, c])
        # A fixed I0 (io.i0_a) means no auto-ranging: saturation is reported, not corrected.
        attempts = self.config.io.max_rescales + 1 if self.config.io.i0_a is None else 1
        rescales, first_deck = 0, None
        ng = session()
        try:
            for attempt in range(attempts):
                if not pending:
                    break
                currents = np.stack([self._currents(columns[:, c], i0s[c]) for c in pending], axis=1)
                v_all, p_all, deck = self._run_operating_points(mapped, currents)
                first_deck = first_deck or deck
                retry = []
                for index, c in enumerate(pending):
                    v = v_all[:, index]
                    sat = self._is_saturated(v)
                    last = attempt == attempts - 1
                    if sat.any() and not last:
                        i0s[c] *= 0.5 * self.config.io.target_swing * self._swing_limit() / np.max(np.abs(v))
                        retry.append(c)
                    elif not sat.any() and not last and self._needs_upscale(v):
                        i0s[c] *= self.config.io.target_swing * self._swing_limit() / max(np.max(np.abs(v)), 1e-30)
                        retry.append(c)
                    else:
                        outputs[:, c], saturated[:, c], power[c] = self._adc(v), sat, p_all[index]
                rescales += len(retry)
                pending = retry
        except Exception:
            ng.clean()
            raise
        if self.per_solve_noise:
            ng.clean()  # a noisy read is never reused
        return dict(outputs=outputs, i0=i0s, power=power, saturated=saturated, rescales=rescales,
                    deck=first_deck, mapped=mapped, columns=columns)

    def _run_operating_points(self, mapped: MappedArray, currents: np.ndarray,
                              engine: bool = True) -> tuple[np.ndarray, np.ndarray, Optional[str]]:
        """Output voltages (n, k) and supply power (k,) for input currents (n, k) on the programmed array.

        Several columns, by default: ngspice's own matrix factored once (see _matrix_operating_points).
        One column: an .op (or, when this array is already loaded, only the input sources altered and .op re-run).
        Several columns with engine "ngspice": a quasi-static batch (see netlist.build_deck); when the batch deck
        of this array is loaded, only the sources' waveforms are altered. With read noise every read gets a fresh deck.
        """
        ng = session()
        n, k = currents.shape
        outputs = [output_node(j) for j in range(n)]
        # ---- issue 9 call site: the matrix engine (one ngspice .op, then every right-hand side) ----
        if engine and k > 1 and self.config.simulation.engine == "ngspice-matrix":
            return self._matrix_operating_points(mapped, currents)
        if self.per_solve_noise:
            v, p, decks = np.zeros((n, k)), np.zeros(k), []
            for c in range(k):
                array = mapped.with_read_noise(self.config.device.read_noise_sigma, self._rng, self.config.device)
                decks.append(build_deck(array, currents[:, c], self.config))
                ng.load(decks[-1])
                raw = ng.run(outputs + list(SUPPLY_VECTORS))
                v[:, c] = [raw[name][-1] for name in outputs]
                p[c] = _supply_power(raw, self.config.opamp.supply_v)[-1]
            return v, p, decks[0]
        kind = "op" if k == 1 else "batch"
        # The tag holds this solver's own token (not id(): a freed solver's id can be reused by a new one).
        tag = (self._token, self._generation, kind)
        deck = None
        if ng.loaded and ng.tag == tag:
            if kind == "op":
                ng.alter_sources({input_source_name(i): currents[i, 0] for i in range(n)})
                raw = ng.run(outputs + list(SUPPLY_VECTORS), command="op")
            else:
                ng.alter_waveforms({input_source_name(i): pwl_points(currents[i]) for i in range(n)})
                try:
                    raw = ng.run(["time"] + outputs + list(SUPPLY_VECTORS), command=batch_analysis(k))
                except SimulationError:
                    raw = None
        else:
            deck = build_deck(mapped, currents[:, 0] if k == 1 else currents, self.config)
            ng.load(deck, tag=tag)
            try:
                raw = ng.run((["time"] if k > 1 else []) + outputs + list(SUPPLY_VECTORS))
            except SimulationError:
                if k == 1:
                    raise
                raw = None
        if k > 1 and raw is None:
            # The pole-free batch cannot follow an output into saturation (ngspice: "timestep too small");
            # the operating points of those columns still exist, so take them one .op at a time.
            ng.clean()
            columns = [self._run_operating_points(mapped, currents[:, [c]]) for c in range(k)]
            return (np.concatenate([c[0] for c in columns], axis=1), np.concatenate([c[1] for c in columns]),
                    columns[0][2])
        power = _supply_power(raw, self.config.opamp.supply_v)
        if k == 1:
            return np.array([[raw[name][-1]] for name in outputs]), power[-1:], deck
        time = raw["time"]
        samples = np.arange(k, dtype=float)
        v = np.stack([np.interp(samples, time, raw[name]) for name in outputs])
        return v, np.interp(samples, time, power), deck

    def _matrix_operating_points(self, mapped: MappedArray, currents: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """Issue 9: ngspice solves column 0 and exports its matrix; the factored matrix answers every column.

        Column 0 is held to ngspice's own .op; a column where the output limiter is not linear to
        simulation.engine_rtol, or the whole call when a check fails, goes to plain ngspice (logged, counted
        in engine_stats and in Solution.engine_fallbacks). With read noise every column is its own read: the
        deck holds read 0, and the other reads are conductance stamps on ngspice's matrix.
        """
        n, k = currents.shape
        o, sim = self.config.opamp, self.config.simulation
        stamps, array = None, mapped
        if self.per_solve_noise:
            reads = [mapped.with_read_noise(self.config.device.read_noise_sigma, self._rng, self.config.device)
                     for _ in range(k)]
            a_pos, b_pos, a_neg, b_neg = crosspoint_nodes(n, self.config.wires.enabled)
            stamps = (np.concatenate([a_pos.ravel(), a_neg.ravel()]), np.concatenate([b_pos.ravel(), b_neg.ravel()]),
                      np.stack([np.concatenate([(r.g_pos - reads[0].g_pos).ravel(), (r.g_neg - reads[0].g_neg).ravel()])
                                for r in reads], axis=1))
            array = reads[0]
        deck = build_deck(array, currents[:, 0], self.config)
        stats = self.engine_stats
        stats["calls"] += 1
        try:
            result = matrix_operating_points(
                "\n".join(line for line in deck.splitlines() if not line.startswith(".save ")) + "\n",
                [input_node(i) for i in range(n)], currents, [output_node(j) for j in range(n)], SUPPLY_VECTORS,
                quiescent_a=o.quiescent_current_a, v_sat=o.v_sat, sharpness=o.saturation_sharpness,
                rtol=ENGINE_VERIFY_RTOL, linear_rtol=sim.engine_rtol, stamps=stamps)
        except (EngineFallback, SimulationError) as exc:
            stats["fallback_rhs"] += k
            stats["last_fallback"] = str(exc).splitlines()[0]
            _log.warning("matrix engine fell back to ngspice for %d right-hand sides: %s", k, stats["last_fallback"])
            return self._run_operating_points(mapped, currents, engine=False)
        v, p = result.outputs, _supply_power(result.supply, o.supply_v)
        if result.rejected:
            bad = ~result.accepted
            stats["fallback_rhs"] += int(bad.sum())
            stats["last_fallback"] = (f"{int(bad.sum())} of {k} right-hand sides outside the linear region "
                                      f"(limiter error up to {result.limiter_error.max():.3g} > {sim.engine_rtol:g})")
            _log.info("matrix engine: %s; solving those with ngspice", stats["last_fallback"])
            v_bad, p_bad, _ = self._run_operating_points(mapped, currents[:, bad], engine=False)
            v[:, bad], p[bad] = v_bad, p_bad
        stats["engine_rhs"] += int(result.accepted.sum())
        return v, p, deck

    def _solve_transient(self, mapped: MappedArray, columns: np.ndarray) -> dict:
        n, k = columns.shape
        ng = session()
        sim, o = self.config.simulation, self.config.opamp
        # Time scale of the slowest loop mode; an unstable loop (forced past the check) grows at |lambda|.
        lam_max = float(np.max(np.abs(np.linalg.eigvals(mapped.loop_matrix(o.gain)))))
        tau = 1.0 / (2 * math.pi * o.gbw_hz * max(abs(self._lambda_min), 1e-6 * lam_max))
        stop = sim.tran_time_constants * tau
        step = min(stop / sim.tran_points, 0.2 / (2 * math.pi * o.gbw_hz * lam_max))
        if stop / step > 2e6:
            raise ConfigError(f"the transient would need {stop / step:.3g} time steps (condition number of the loop "
                              f"{lam_max / abs(self._lambda_min):.3g}); reduce simulation.tran_time_constants or damp H")
        spec = TransientSpec(step_s=step, stop_s=stop)
        vectors = ["time"] + [output_node(j) for j in range(n)] + list(SUPPLY_VECTORS)
        outputs = np.zeros((n, k))
        i0s, power, t_settle, energy = np.zeros(k), np.zeros(k), np.full(k, np.nan), np.full(k, np.nan)
        settled = np.zeros(k, dtype=bool)
        saturated = np.zeros((n, k), dtype=bool)
        waveforms = []
        first_deck = None
        try:
            for c in range(k):
                g = columns[:, c]
                i0 = self._initial_i0(mapped, g) if np.any(g) else 1e-9
                currents = self._currents(g, i0)
                array = mapped.with_read_noise(self.config.device.read_noise_sigma, self._rng, self.config.device)
                deck = build_deck(array, currents, self.config, transient=spec)
                for _ in range(4):
                    ng.load(deck)
                    raw = ng.run(vectors)
                    ng.clean()
                    time = raw["time"]
                    v = np.stack([raw[output_node(j)] for j in range(n)])
                    # Poles the loop model leaves out (e.g. op-amp inverters) can make the run end before the
                    # outputs settle: if the last tenth of the window still moves by more than the band, double it.
                    tail = time >= 0.9 * time[-1]
                    drift = float(np.max(np.abs(v[:, tail] - v[:, -1:])))
                    if drift <= 0.1 * sim.settle_tol * max(float(np.max(np.abs(v[:, -1]))), 1e-30):
                        break
                    spec = TransientSpec(step_s=spec.step_s, stop_s=2 * spec.stop_s)
                    deck = build_deck(array, currents, self.config, transient=spec)
                p = _supply_power(raw, o.supply_v)
                result = tran_analysis.settling(time, v, p, sim.settle_tol)
                outputs[:, c] = self._adc(v[:, -1])
                saturated[:, c] = self._is_saturated(v[:, -1])
                i0s[c], power[c] = i0, p[-1]
                t_settle[c], energy[c], settled[c] = result.time_s, result.energy_j, result.settled
                waveforms.append(dict(time=time, outputs=v, power=p))
                first_deck = first_deck or deck
        finally:
            ng.clean()
        return dict(outputs=outputs, i0=i0s, power=power, saturated=saturated, rescales=0, deck=first_deck,
                    mapped=mapped, columns=columns, settling=t_settle, energy=energy, settled=settled,
                    waveforms=waveforms)

    def _finish(self, h: np.ndarray, g: np.ndarray, r: dict) -> Solution:
        mapped, columns = r["mapped"], r["columns"]
        gmax = np.max(np.abs(columns), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cols = np.where(r["i0"] > 0, -r["outputs"] * mapped.g0 * gmax / np.where(r["i0"] > 0, r["i0"], 1), 0.0)
        residual, residuals = _residuals(h, x_cols, columns)
        squeeze = g.ndim == 1

        def shape(a):
            if a is None:
                return None
            return a[0] if squeeze and a.ndim == 1 else (a[:, 0] if squeeze else a)

        deck = r["deck"]
        fresh_single = r["deck"] is not None and r["rescales"] == 0 and columns.shape[1] == 1
        if "settling" not in r and not fresh_single:
            # The deck of the first right-hand side as finally solved (after any re-ranging): rerunnable as is.
            first = int(np.argmax(np.any(columns != 0, axis=0)))
            deck = build_deck(mapped, self._currents(columns[:, first], r["i0"][first]) if r["i0"][first] > 0
                              else np.zeros(mapped.n), self.config)
        return Solution(
            x=x_cols[:, 0] if squeeze else x_cols, backend="circuit", netlist=deck,
            relative_residual=residual, relative_residuals=residuals[0] if squeeze else residuals,
            saturated=shape(r["saturated"]), i0_a=shape(r["i0"]), static_power_w=shape(r["power"]),
            settling_time_s=shape(r.get("settling")), energy_j=shape(r.get("energy")), settled=shape(r.get("settled")),
            rescales=r["rescales"], lambda_min=self._lambda_min, condition_number=mapped.condition, g0_s=mapped.g0,
            waveforms=r.get("waveforms"))


def _residuals(h: np.ndarray, x: np.ndarray, g: np.ndarray) -> tuple[float, np.ndarray]:
    r = h @ x - g
    norms = np.linalg.norm(g, axis=0)
    per_column = np.where(norms > 0, np.linalg.norm(r, axis=0) / np.where(norms > 0, norms, 1), 0.0)
    total = float(np.linalg.norm(r) / max(np.linalg.norm(g), 1e-300))
    return total, per_column


def _supply_power(raw: dict, supply_v: float) -> np.ndarray:
    """Power delivered by the two rails: P = -(V+ I+ + V- I-), ngspice currents flowing into the + terminal."""
    return -(supply_v * raw["vcc#branch"] + (-supply_v) * raw["vee#branch"])
