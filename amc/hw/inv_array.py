"""One programmed INV array: one programming = one device draw, kept until the array is programmed again.

``InvArray(config).program(H)`` maps H into the differential conductance pair (quantisation, programming error and
stuck cells drawn once), checks that the loop settles, and counts the programming. ``solve(g)`` settles the array
once per right-hand side through ngspice (.op, a quasi-static batch for many columns, or .tran for settling time
and energy) and counts every settle, conversion and simulator run. ``read(g)`` is the same settle computed from the
array's measured linear response (ngspice, once per programming) with a fresh read-noise draw and the drift of the
time since programming applied as a perturbation of the measured operator (``amc.hw.response``); a test holds it
to ngspice on decks carrying the same perturbed conductances.

Equilibration (``io.equilibrate``): the array holds D H D with D = |diag H|^-1/2 and the periphery applies D to the
inputs and outputs (a digital gain per DAC and ADC channel).
"""
from __future__ import annotations

import itertools
import logging
import math
from typing import Optional

import numpy as np

from amc.config import CircuitConfig
from amc.hw.converters import quantise_symmetric
from amc.errors import ConfigError, InputError, SimulationError
from amc.hw.mapping import MappedArray, check_stability, map_matrix, validate_matrix, validate_rhs
from amc.hw.netlist import (TransientSpec, batch_analysis, build_deck, crosspoint_nodes, input_node, input_source_name,
                       output_node, output_sense_sources, pwl_points)
from amc.hw import opamp_models
from amc.hw.runner import EngineFallback, matrix_operating_points, session
from amc.solution import Solution, residuals
from amc.hw import transient as tran_analysis
from amc.hw import periphery
from amc.hw.counters import OperationCounts
from amc.hw.periphery import SUPPLY_VECTORS

_SERIAL = itertools.count()
_log = logging.getLogger("amc.engine")
# The engine's answer for the right-hand side ngspice also solved must match ngspice's own .op to this.
ENGINE_VERIFY_RTOL = 1e-9


def jacobi_scaling(h: np.ndarray) -> np.ndarray:
    """d = |diag(H)|^-1/2 (row norms where a diagonal entry is zero): D H D has a unit diagonal."""
    diag = np.abs(np.diag(h))
    norms = np.linalg.norm(h, axis=1)
    base = np.where(diag > 1e-12 * norms.max(), diag, norms)
    return 1.0 / np.sqrt(base)


class InvArray:
    """One physical INV array (a differential G+/G- pair with its n op-amps and converters) and its counter."""

    def __init__(self, config: CircuitConfig, rng: Optional[np.random.Generator] = None, name: str = "inv"):
        # A transistor-level or user op-amp brings its measured figures (amc.hw.characterise) to the config.
        self.config = opamp_models.resolved(config)
        self._output_currents: Optional[np.ndarray] = None
        self.name = name
        self._rng = rng if rng is not None else np.random.default_rng(config.device.seed + 1)
        self.counts = OperationCounts()
        # The controller of amc/hw/controller.py: its share of the counts, what it measured and decided.
        self.controller_counts = OperationCounts()
        self.measured_inverse_norm: Optional[float] = None
        self.shift, self.shift_diag, self.verification = 0.0, None, None
        self._mapped: Optional[MappedArray] = None
        self._matrix: Optional[np.ndarray] = None
        self._d: Optional[np.ndarray] = None
        self._lambda_min: Optional[float] = None
        self._inverse_norm: Optional[tuple] = None
        self._response = None
        self._token = object()
        self._generation: object = None
        self.serial = next(_SERIAL)
        # Matrix engine: right-hand sides it answered, those it handed to plain ngspice, and why.
        self.engine_stats = {"calls": 0, "engine_rhs": 0, "fallback_rhs": 0, "last_fallback": None}

    # ---- what the array is -----------------------------------------------------------------------------------
    @property
    def per_solve_noise(self) -> bool:
        return self.config.device.is_stochastic_per_read

    @property
    def programmed(self) -> bool:
        return self._mapped is not None

    @property
    def n(self) -> Optional[int]:
        return None if self._matrix is None else self._matrix.shape[0]

    @property
    def matrix(self) -> np.ndarray:
        """The matrix the array was asked to hold (before equilibration)."""
        self._require()
        return self._matrix

    @property
    def mapped(self) -> MappedArray:
        """The conductances as programmed (this programming's device draw), in equilibrated coordinates."""
        self._require()
        return self._mapped

    @property
    def scaling(self) -> Optional[np.ndarray]:
        return self._d

    @property
    def lambda_min(self) -> Optional[float]:
        return self._lambda_min

    def effective_matrix(self) -> np.ndarray:
        """What the array inverts, in the coordinates of H: D^-1 (G + diag(S)/A0)/G0 D^-1 (closed form)."""
        m = self.mapped.effective_conductance(self.config.opamp.gain) / self.mapped.g0
        if self._d is None:
            return m
        return m / self._d[:, None] / self._d[None, :]

    def __repr__(self) -> str:
        state = "unprogrammed" if self._mapped is None else f"{self.n}x{self.n} programmed"
        lam = "" if self._lambda_min is None else f", loop lambda_min {self._lambda_min:.3g}"
        return (f"InvArray({self.name!r}, {state}{lam}, {self.config.name}: {self._levels()}, "
                f"{self.counts.programmings} programmings, {self.counts.inv_settles} settles)")

    def _levels(self) -> str:
        levels = self.config.device.levels
        return "continuous cells" if levels is None else f"{levels} levels"

    def _require(self) -> None:
        if self._mapped is None:
            raise InputError(f"array {self.name!r} is not programmed; call program(H) first")

    # ---- programming ----------------------------------------------------------------------------------------
    def program(self, h: np.ndarray) -> "InvArray":
        """Write H into the array (one device draw) and check that the loop settles."""
        h = validate_matrix(h)
        n = h.shape[0]
        d = jacobi_scaling(h) if self.config.io.equilibrate else None
        h_array = h * d[:, None] * d[None, :] if d is not None else h
        mapped = map_matrix(h_array, self.config.device, rng=self._rng)
        # The cells are written before the controller checks the loop: a refused programming still cost a write.
        self._mapped = self._matrix = None
        self.counts.add(programmings=1, cells_programmed=2 * n * n,
                        digital_flops=(3 * n * n if d is not None else 0))
        if self.config.simulation.check_stability:
            lam = check_stability(mapped, self.config.opamp.gain)
        else:
            lam = float(np.min(np.linalg.eigvals(mapped.loop_matrix(self.config.opamp.gain)).real))
        self._mapped, self._matrix, self._d, self._lambda_min = mapped, h, d, lam
        self._inverse_norm = None
        self._response = None
        self.measured_inverse_norm, self.shift, self.shift_diag, self.verification = None, 0.0, None, None
        self._generation = object()  # a new device draw: a deck loaded for the old one must not be reused
        return self

    # ---- settles through ngspice ----------------------------------------------------------------------------
    def solve(self, g: np.ndarray, transient: bool = False) -> Solution:
        """One settle per column of g through ngspice: x = H^-1 g as the programmed circuit computes it."""
        self._require()
        h = self._matrix
        g = validate_rhs(g, h.shape[0])
        if transient and self.config.opamp.gbw_hz is None:
            raise ConfigError("a transient solve needs op-amps with a finite gain-bandwidth (opamp.gbw_hz); "
                              f"the configured op-amp {self.config.opamp.name!r} has none (use e.g. preset 'ideal-dynamic')")
        n = h.shape[0]
        columns = g.reshape(n, -1)
        d = self._d
        columns_array = columns * d[:, None] if d is not None else columns
        runs0 = session().runs
        fallbacks0 = self.engine_stats["fallback_rhs"]
        result = self._solve_transient(self._mapped, columns_array) if transient else \
            self._solve_op(self._mapped, columns_array)
        k_settled = int(np.count_nonzero(np.any(columns_array != 0, axis=0))) + result["rescales"]
        self.counts.add(inv_settles=k_settled, dac_conversions=n * k_settled, adc_conversions=n * k_settled,
                        ngspice_runs=session().runs - runs0,
                        digital_flops=(2 * n * columns.shape[1] if d is not None else 0))
        solution = self._finish(g, result)
        solution.engine_fallbacks = self.engine_stats["fallback_rhs"] - fallbacks0
        if d is not None:
            solution.x = solution.x * (d if g.ndim == 1 else d[:, None])
            total, per_column = residuals(h, solution.x.reshape(n, -1), columns)
            solution.relative_residual = total
            solution.relative_residuals = per_column[0] if g.ndim == 1 else per_column
        return solution

    def deck(self, g: np.ndarray, transient: bool = False) -> str:
        """The ngspice deck of one settle of this programmed array for the right-hand side g (first column)."""
        self._require()
        g = validate_rhs(g, self.n).reshape(self.n, -1)[:, 0]
        g_array = g * self._d if self._d is not None else g
        i0 = self._initial_i0(self._mapped, g_array) if np.any(g_array) else 1e-9
        spec = self._transient_spec(self._mapped) if transient else None
        gmax = float(np.max(np.abs(g_array))) if np.any(g_array) else 1.0
        return build_deck(self._mapped, self._currents(g_array, i0), self.config, transient=spec, g_scale=gmax,
                          equilibration=self._d)

    # ---- settles from the measured response --------------------------------------------------------------------
    def read(self, g: np.ndarray, seconds_since_programming: float = 0.0) -> Solution:
        """One settle per column computed from the measured linear response (see ``amc.hw.response``)."""
        from amc.hw.response import read_settles
        self._require()
        return read_settles(self, g, seconds_since_programming)

    def response(self):
        """The array's measured linear response (ngspice, once per programming)."""
        from amc.hw.response import measure_response
        self._require()
        if self._response is None:
            runs0 = session().runs
            self._response = measure_response(self)
            self.counts.add(ngspice_runs=session().runs - runs0)
        return self._response

    def _swing_limit(self) -> float:
        return periphery.swing_limit(self.config)

    @property
    def _behavioural(self) -> bool:
        return opamp_models.is_behavioural(self.config.opamp)

    def _sense_vectors(self) -> list:
        """ngspice vectors of every op-amp's output current (non-behavioural models; the behavioural one has no
        current limit)."""
        if self._behavioural:
            return []
        return [f"{name}#branch" for name in output_sense_sources(self.n or self._mapped.n, self.config)]

    def _initial_i0(self, mapped: MappedArray, g: np.ndarray) -> float:
        """I0 such that the largest output is expected at target_swing of the swing.

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
        return io.target_swing * self._drive_limit(mapped) * mapped.g0 / bound

    def _drive_limit(self, mapped: MappedArray) -> float:
        """The largest output voltage the amplifiers can hold on this array: the swing, or less where the output
        current limit is reached first on the most heavily loaded column (G+ column plus the inverter's input
        resistor for a main amplifier, G- column plus its feedback resistor for an inverter)."""
        swing = self._swing_limit()
        limit = self.config.opamp.i_limit_a
        if limit is None or self._behavioural:
            return swing
        extra = 0.0 if self.config.inverter.kind == "ideal" else 1.0 / self.config.inverter.resistance_ohm
        load = max(float(mapped.g_pos.sum(axis=0).max()), float(mapped.g_neg.sum(axis=0).max())) + extra
        return min(swing, limit / load)

    def _currents(self, g: np.ndarray, i0: float) -> np.ndarray:
        gmax = float(np.max(np.abs(g)))
        if gmax == 0.0:
            return np.zeros_like(g)
        return i0 * quantise_symmetric(g / gmax, self.config.io.dac_bits, 1.0)

    def _adc(self, v: np.ndarray) -> np.ndarray:
        return periphery.adc(v, self.config)

    def _is_saturated(self, v: np.ndarray) -> np.ndarray:
        return periphery.saturated(v, self.config)

    def _needs_upscale(self, v: np.ndarray) -> bool:
        # Only worth a second solve where amplitude buys precision: converters or an input offset.
        io, o = self.config.io, self.config.opamp
        if io.i0_a is not None or (io.adc_bits is None and o.offset_v == 0.0):
            return False
        return float(np.max(np.abs(v))) < 0.25 * io.target_swing * self._drive_limit(self._mapped)

    def _solve_op(self, mapped: MappedArray, columns: np.ndarray) -> dict:
        """Steady state for every column; columns that saturate (or under-use the swing) are re-ranged and re-run."""
        n, k = columns.shape
        outputs, saturated = np.zeros((n, k)), np.zeros((n, k), dtype=bool)
        i0s, power = np.zeros(k), np.zeros(k)
        limited, load_fraction = np.zeros(k, dtype=bool), np.zeros(k)
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
                    # output current as a fraction of the limit in its direction (0 for the behavioural model)
                    fraction = periphery.current_fraction(self._output_currents[:, index], self.config) \
                        if self._output_currents is not None and self._output_currents.shape[0] else 0.0
                    over = fraction > self.config.io.linear_fraction
                    last = attempt == attempts - 1
                    if (sat.any() or over) and not last:
                        factor = 0.5 * self.config.io.target_swing * self._swing_limit() / np.max(np.abs(v)) \
                            if sat.any() else 1.0
                        if over:
                            factor = min(factor, 0.5 * self.config.io.target_swing / fraction)
                        i0s[c] *= factor
                        retry.append(c)
                    elif not sat.any() and not last and self._needs_upscale(v):
                        i0s[c] *= self.config.io.target_swing * self._drive_limit(mapped) / max(np.max(np.abs(v)), 1e-30)
                        retry.append(c)
                    else:
                        outputs[:, c], saturated[:, c], power[c] = self._adc(v), sat, p_all[index]
                        limited[c], load_fraction[c] = over, fraction
                rescales += len(retry)
                pending = retry
        except Exception:
            ng.clean()
            raise
        if self.per_solve_noise:
            ng.clean()  # a noisy read is never reused
        return dict(outputs=outputs, i0=i0s, power=power, saturated=saturated, rescales=rescales,
                    deck=first_deck, mapped=mapped, columns=columns, current_limited=limited,
                    current_fraction=load_fraction)

    def _run_operating_points(self, mapped: MappedArray, currents: np.ndarray,
                              engine: bool = True) -> tuple[np.ndarray, np.ndarray, Optional[str]]:
        """Output voltages (n, k) and supply power (k,) for input currents (n, k) on the programmed array.

        One column: an .op (or, when this array is already loaded, only the input sources altered and .op re-run).
        Several columns: a quasi-static batch (see netlist.build_deck); when the batch deck of this array is
        loaded, only the sources' waveforms are altered. With read noise every read gets a fresh deck.
        """
        ng = session()
        n, k = currents.shape
        outputs = [output_node(j) for j in range(n)]
        sense = self._sense_vectors()
        self._output_currents = np.zeros((len(sense), k))
        if engine and k > 1 and self.config.simulation.engine == "ngspice-matrix" and self._behavioural:
            return self._matrix_operating_points(mapped, currents)
        if self.per_solve_noise:
            v, p, decks = np.zeros((n, k)), np.zeros(k), []
            for c in range(k):
                array = mapped.with_read_noise(self.config.device.read_noise_sigma, self._rng, self.config.device)
                decks.append(build_deck(array, currents[:, c], self.config))
                ng.load(decks[-1])
                raw = ng.run(outputs + list(SUPPLY_VECTORS) + sense)
                v[:, c] = [raw[name][-1] for name in outputs]
                self._output_currents[:, c] = [raw[name][-1] for name in sense]
                p[c] = periphery.supply_power(raw, self.config.opamp.supply_v)[-1]
            return v, p, decks[0]
        kind = "op" if k == 1 else "batch"
        # The tag holds this solver's own token (not id(): a freed solver's id can be reused by a new one).
        tag = (self._token, self._generation, kind)
        deck = None
        if ng.loaded and ng.tag == tag:
            if kind == "op":
                ng.alter_sources({input_source_name(i): currents[i, 0] for i in range(n)})
                raw = ng.run(outputs + list(SUPPLY_VECTORS) + sense, command="op")
            else:
                ng.alter_waveforms({input_source_name(i): pwl_points(currents[i]) for i in range(n)})
                try:
                    raw = ng.run(["time"] + outputs + list(SUPPLY_VECTORS) + sense, command=batch_analysis(k))
                except SimulationError:
                    raw = None
        else:
            deck = build_deck(mapped, currents[:, 0] if k == 1 else currents, self.config)
            ng.load(deck, tag=tag)
            try:
                raw = ng.run((["time"] if k > 1 else []) + outputs + list(SUPPLY_VECTORS) + sense)
            except SimulationError:
                if k == 1:
                    raise
                raw = None
        if k > 1 and raw is None:
            # The pole-free batch cannot follow an output into saturation (ngspice: "timestep too small");
            # the operating points of those columns still exist, so take them one .op at a time.
            ng.clean()
            columns, column_currents = [], []
            for c in range(k):
                columns.append(self._run_operating_points(mapped, currents[:, [c]], engine=False))
                column_currents.append(self._output_currents)
            self._output_currents = np.concatenate(column_currents, axis=1)
            return (np.concatenate([c[0] for c in columns], axis=1), np.concatenate([c[1] for c in columns]),
                    columns[0][2])
        power = periphery.supply_power(raw, self.config.opamp.supply_v)
        if k == 1:
            self._output_currents = np.array([[raw[name][-1]] for name in sense]).reshape(len(sense), 1)
            return np.array([[raw[name][-1]] for name in outputs]), power[-1:], deck
        time = raw["time"]
        samples = np.arange(k, dtype=float)
        v = np.stack([np.interp(samples, time, raw[name]) for name in outputs])
        if sense:
            self._output_currents = np.stack([np.interp(samples, time, raw[name]) for name in sense])
        return v, np.interp(samples, time, power), deck

    def engine_deck(self, conductances: MappedArray, currents: np.ndarray) -> str:
        """The .op deck of one right-hand side saving every vector (what the matrix engine exports)."""
        if not self._behavioural:
            # The engine's linearity check knows the behavioural limiter only.
            raise EngineFallback(f"the matrix engine serves the behavioural op-amp only (this one is "
                                 f"{self.config.opamp.model!r})")
        deck = build_deck(conductances, currents, self.config)
        return "\n".join(line for line in deck.splitlines() if not line.startswith(".save ")) + "\n"

    def engine_solve(self, conductances: MappedArray, currents: np.ndarray, nodes: list, linear_rtol: float,
                     stamps: Optional[tuple] = None):
        """(deck, MatrixSolve): ngspice solves column 0 of ``currents`` on these conductances and exports its matrix,
        which answers every column for the named node voltages (raises EngineFallback / SimulationError)."""
        o = self.config.opamp
        deck = self.engine_deck(conductances, currents[:, 0])
        result = matrix_operating_points(deck, [input_node(i) for i in range(conductances.n)], currents, nodes,
                                         SUPPLY_VECTORS, quiescent_a=o.quiescent_current_a, v_sat=o.v_sat,
                                         sharpness=o.saturation_sharpness, rtol=ENGINE_VERIFY_RTOL,
                                         linear_rtol=linear_rtol, stamps=stamps)
        return deck, result

    def _matrix_operating_points(self, mapped: MappedArray, currents: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """ngspice solves column 0 and exports its own matrix; the factored matrix answers every column.

        Column 0 is held to ngspice's own .op; a column where the output limiter is not linear to
        simulation.engine_rtol, or the whole call when a check fails, goes to plain ngspice (logged, counted in
        engine_stats and in Solution.engine_fallbacks). With read noise every column is its own read: the deck
        holds read 0, and the other reads are conductance stamps on ngspice's matrix.
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
        stats = self.engine_stats
        stats["calls"] += 1
        try:
            deck, result = self.engine_solve(array, currents, [output_node(j) for j in range(n)], sim.engine_rtol,
                                             stamps)
        except (EngineFallback, SimulationError) as exc:
            stats["fallback_rhs"] += k
            stats["last_fallback"] = str(exc).splitlines()[0]
            _log.warning("matrix engine fell back to ngspice for %d right-hand sides: %s", k, stats["last_fallback"])
            return self._run_operating_points(mapped, currents, engine=False)
        v, p = result.outputs, periphery.supply_power(result.supply, o.supply_v)
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

    def _transient_spec(self, mapped: MappedArray) -> TransientSpec:
        sim, o = self.config.simulation, self.config.opamp
        # Time scale of the slowest loop mode; an unstable loop (forced past the check) grows at |lambda|.
        lam_max = float(np.max(np.abs(np.linalg.eigvals(mapped.loop_matrix(o.gain)))))
        tau = 1.0 / (2 * math.pi * o.gbw_hz * max(abs(self._lambda_min), 1e-6 * lam_max))
        stop = sim.tran_time_constants * tau
        step = min(stop / sim.tran_points, 0.2 / (2 * math.pi * o.gbw_hz * lam_max))
        if stop / step > 2e6:
            raise ConfigError(f"the transient would need {stop / step:.3g} time steps (condition number of the loop "
                              f"{lam_max / abs(self._lambda_min):.3g}); reduce simulation.tran_time_constants or damp H")
        return TransientSpec(step_s=step, stop_s=stop)

    def _solve_transient(self, mapped: MappedArray, columns: np.ndarray) -> dict:
        n, k = columns.shape
        ng = session()
        sim, o = self.config.simulation, self.config.opamp
        spec = self._transient_spec(mapped)
        sense = self._sense_vectors()
        vectors = ["time"] + [output_node(j) for j in range(n)] + list(SUPPLY_VECTORS) + sense
        outputs = np.zeros((n, k))
        limited, slewed, load_fraction = np.zeros(k, dtype=bool), np.zeros(k, dtype=bool), np.zeros(k)
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
                p = periphery.supply_power(raw, o.supply_v)
                result = tran_analysis.settling(time, v, p, sim.settle_tol)
                outputs[:, c] = self._adc(v[:, -1])
                saturated[:, c] = self._is_saturated(v[:, -1])
                i0s[c], power[c] = i0, p[-1]
                t_settle[c], energy[c], settled[c] = result.time_s, result.energy_j, result.settled
                if sense:
                    load_fraction[c] = periphery.current_fraction(np.stack([raw[s] for s in sense]), self.config)
                    limited[c] = load_fraction[c] > self.config.io.linear_fraction
                slewed[c] = periphery.slewing(time, v, self.config)
                waveforms.append(dict(time=time, outputs=v, power=p))
                first_deck = first_deck or deck
        finally:
            ng.clean()
        return dict(outputs=outputs, i0=i0s, power=power, saturated=saturated, rescales=0, deck=first_deck,
                    mapped=mapped, columns=columns, settling=t_settle, energy=energy, settled=settled,
                    waveforms=waveforms, current_limited=limited, slewed=slewed, current_fraction=load_fraction)

    def _finish(self, g: np.ndarray, r: dict) -> Solution:
        mapped, columns = r["mapped"], r["columns"]
        h = mapped.h
        gmax = np.max(np.abs(columns), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cols = np.where(r["i0"] > 0, -r["outputs"] * mapped.g0 * gmax / np.where(r["i0"] > 0, r["i0"], 1), 0.0)
        residual, per_column = residuals(h, x_cols, columns)
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
            x=x_cols[:, 0] if squeeze else x_cols, method="direct", backend="circuit", netlist=deck,
            relative_residual=residual, relative_residuals=per_column[0] if squeeze else per_column,
            saturated=shape(r["saturated"]), i0_a=shape(r["i0"]), static_power_w=shape(r["power"]),
            settling_time_s=shape(r.get("settling")), energy_j=shape(r.get("energy")), settled=shape(r.get("settled")),
            rescales=r["rescales"], lambda_min=self._lambda_min, condition_number=mapped.condition, g0_s=mapped.g0,
            waveforms=r.get("waveforms"), current_limited=shape(r.get("current_limited")),
            slewed=shape(r.get("slewed")), output_current_fraction=shape(r.get("current_fraction")))
