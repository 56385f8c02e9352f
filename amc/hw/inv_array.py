"""One programmed INV array: one programming = one device draw, kept until the array is programmed again.

``InvArray(config).program(H)`` maps H into the differential conductance pair (quantisation, programming error and
stuck cells drawn once), checks that the loop settles, and counts the programming. ``solve(g)`` settles the array
once per right-hand side through ngspice (``amc.hw.analyses``: .op, a quasi-static batch or the matrix engine for
many columns, .tran for settling time and energy) and counts every settle, conversion and simulator run.
``read(g)`` is the same settle computed from the array's measured linear response (ngspice, once per programming)
with a fresh read-noise draw and the drift of the time since programming applied as a perturbation of the measured
operator (``amc.hw.response``); a test holds it to ngspice on decks carrying the same perturbed conductances. Both
go through the one read-out of ``amc.hw.readout`` (DACs, auto-ranging, ADCs, x from the outputs).

Equilibration (``io.equilibrate``): the array holds D H D with D = |diag H|^-1/2 and the periphery applies D to the
inputs and outputs (a digital gain per DAC and ADC channel).
"""
from __future__ import annotations

import itertools
from typing import Optional

import numpy as np

from amc.config import CircuitConfig
from amc.errors import ConfigError, InputError
from amc.hw import analyses, opamp_models, periphery
from amc.hw import transient as tran_analysis
from amc.hw.counters import OperationCounts
from amc.hw.mapping import MappedArray, check_stability, map_matrix, validate_matrix, validate_rhs
from amc.hw.netlist import build_deck
from amc.hw.readout import Ranging, Readout
from amc.hw.runner import session
from amc.solution import Solution, residuals

_SERIAL = itertools.count()


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
        self.name = name
        self._rng = rng if rng is not None else np.random.default_rng(config.device.seed + 1)
        self.readout = Readout(self.config)
        self.counts = OperationCounts()
        # The controller of amc/hw/controller.py: its share of the counts, what it measured and decided.
        self.controller_counts = OperationCounts()
        self.shift, self.shift_diag, self.verification = 0.0, None, None
        self._mapped: Optional[MappedArray] = None
        self._matrix: Optional[np.ndarray] = None
        self._d: Optional[np.ndarray] = None
        self._lambda_min: Optional[float] = None
        self._response = None
        self._token = object()
        self._generation: object = None
        self.serial = next(_SERIAL)
        # Matrix engine: right-hand sides it answered, those it handed to plain ngspice, and why.
        self.engine_stats = {"calls": 0, "engine_rhs": 0, "fallback_rhs": 0, "last_fallback": None}

    # ---- what the array is -----------------------------------------------------------------------------------
    @property
    def rng(self) -> np.random.Generator:
        """The array's own random stream: device draws at programming, read noise, drift exponents."""
        return self._rng

    @property
    def measured_inverse_norm(self) -> Optional[float]:
        """||A^-1||_2 as the controller measured it through reads; auto-ranging uses it (``amc.hw.readout``)."""
        return self.readout.measured_inverse_norm

    @measured_inverse_norm.setter
    def measured_inverse_norm(self, value: Optional[float]) -> None:
        self.readout.measured_inverse_norm = value

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
        self._response = None
        self.readout.forget()
        self.shift, self.shift_diag, self.verification = 0.0, None, None
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
        if transient:
            ranging, deck, dynamics = self._solve_transient(self._mapped, columns_array)
        else:
            (ranging, deck), dynamics = self._solve_op(self._mapped, columns_array), {}
        k_settled = int(np.count_nonzero(np.any(columns_array != 0, axis=0))) + ranging.rescales
        self.counts.add(inv_settles=k_settled, dac_conversions=n * k_settled, adc_conversions=n * k_settled,
                        ngspice_runs=session().runs - runs0,
                        digital_flops=(2 * n * columns.shape[1] if d is not None else 0))
        solution = self._finish(g, self._mapped, columns_array, ranging, deck, dynamics)
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
        i0 = self.readout.initial_i0(self._mapped, g_array) if np.any(g_array) else 1e-9
        spec = analyses.transient_spec(self.config, self._mapped, self._lambda_min) if transient else None
        gmax = float(np.max(np.abs(g_array))) if np.any(g_array) else 1.0
        return build_deck(self._mapped, self.readout.dac(g_array, i0), self.config, transient=spec, g_scale=gmax,
                          equilibration=self._d)

    def engine_deck(self, conductances: MappedArray, currents: np.ndarray) -> str:
        """The .op deck of one right-hand side saving every vector (what the matrix engine exports)."""
        return analyses.engine_deck(self.config, conductances, currents)

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

    # ---- the two ways solve() runs -------------------------------------------------------------------------
    def _solve_op(self, mapped: MappedArray, columns: np.ndarray) -> tuple[Ranging, Optional[str]]:
        """Steady state for every column, auto-ranged by the read-out (a re-ranged column is settled again)."""
        n = mapped.n
        analysis = analyses.steady_state(self.config, self._rng, (self._token, self._generation), self.engine_stats)
        first_deck = None

        def settle(currents: np.ndarray) -> tuple:
            nonlocal first_deck
            result = analysis.run(mapped, currents)
            first_deck = first_deck or result.deck
            sensed = result.sense_currents()
            # output current as a fraction of the limit in its direction (0 for the behavioural model)
            fractions = [periphery.current_fraction(sensed[:, c], self.config) if sensed.shape[0] else 0.0
                         for c in range(result.k)]
            return result.outputs(n), result.supply_power(), fractions

        ng = session()
        try:
            ranging = self.readout.auto_range(mapped, columns, settle)
        except Exception:
            ng.clean()
            raise
        if self.per_solve_noise:
            ng.clean()  # a noisy read is never reused
        return ranging, first_deck

    def _solve_transient(self, mapped: MappedArray, columns: np.ndarray) -> tuple[Ranging, Optional[str], dict]:
        """Every column from zero state through .tran at its first-guess I0 (no re-ranging: the settling time and
        energy are those of that one settle)."""
        n, k = columns.shape
        cfg, readout = self.config, self.readout
        analysis = analyses.Transient(cfg, self._rng, analyses.transient_spec(cfg, mapped, self._lambda_min))
        sense = analyses.sense_sources(cfg, n)
        outputs, saturated = np.zeros((n, k)), np.zeros((n, k), dtype=bool)
        limited, slewed, load_fraction = np.zeros(k, dtype=bool), np.zeros(k, dtype=bool), np.zeros(k)
        i0s, power, t_settle, energy = np.zeros(k), np.zeros(k), np.full(k, np.nan), np.full(k, np.nan)
        settled = np.zeros(k, dtype=bool)
        waveforms, first_deck = [], None
        for c in range(k):
            g = columns[:, c]
            i0 = readout.initial_i0(mapped, g) if np.any(g) else 1e-9
            result = analysis.run(mapped, readout.dac(g, i0))
            time, v, p = result.time, result.outputs(n), result.supply_power()
            settling = tran_analysis.settling(time, v, p, cfg.simulation.settle_tol)
            outputs[:, c], saturated[:, c] = readout.adc(v[:, -1]), readout.saturated(v[:, -1])
            i0s[c], power[c] = i0, p[-1]
            t_settle[c], energy[c], settled[c] = settling.time_s, settling.energy_j, settling.settled
            if sense:
                load_fraction[c] = periphery.current_fraction(np.stack([result.i(s) for s in sense]), cfg)
                limited[c] = load_fraction[c] > cfg.io.linear_fraction
            slewed[c] = periphery.slewing(time, v, cfg)
            waveforms.append(dict(time=time, outputs=v, power=p))
            first_deck = first_deck or result.deck
        settles = int(np.count_nonzero(np.any(columns != 0, axis=0)))   # a zero column runs but converts nothing
        ranging = Ranging(outputs, i0s, power, saturated, limited, load_fraction, settles=settles, rescales=0)
        return ranging, first_deck, dict(settling=t_settle, energy=energy, settled=settled, slewed=slewed,
                                         waveforms=waveforms)

    def _finish(self, g: np.ndarray, mapped: MappedArray, columns: np.ndarray, r: Ranging, deck: Optional[str],
                dynamics: dict) -> Solution:
        x_cols = self.readout.x_from_v(r.outputs, r.i0, columns, mapped.g0)
        residual, per_column = residuals(mapped.h, x_cols, columns)
        squeeze = g.ndim == 1

        def shape(a):
            if a is None:
                return None
            return a[0] if squeeze and a.ndim == 1 else (a[:, 0] if squeeze else a)

        fresh_single = deck is not None and r.rescales == 0 and columns.shape[1] == 1
        if not dynamics and not fresh_single:
            # The deck of the first right-hand side as finally solved (after any re-ranging): rerunnable as is.
            first = int(np.argmax(np.any(columns != 0, axis=0)))
            deck = build_deck(mapped, self.readout.dac(columns[:, first], r.i0[first]) if r.i0[first] > 0
                              else np.zeros(mapped.n), self.config)
        return Solution(
            x=x_cols[:, 0] if squeeze else x_cols, method="direct", backend="circuit", netlist=deck,
            relative_residual=residual, relative_residuals=per_column[0] if squeeze else per_column,
            saturated=shape(r.saturated), i0_a=shape(r.i0), static_power_w=shape(r.power),
            settling_time_s=shape(dynamics.get("settling")), energy_j=shape(dynamics.get("energy")),
            settled=shape(dynamics.get("settled")), rescales=r.rescales, lambda_min=self._lambda_min,
            condition_number=mapped.condition, g0_s=mapped.g0, waveforms=dynamics.get("waveforms"),
            current_limited=shape(r.current_limited), slewed=shape(dynamics.get("slewed")),
            output_current_fraction=shape(r.current_fraction))
