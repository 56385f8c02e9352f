"""The ways a programmed INV array is simulated, behind one interface: ``run(conductances, currents) -> result``.

- ``OperatingPoints``: plain ngspice. One column is an .op (when this array's deck is loaded already, only the
  input sources are altered and .op re-run); several columns are a quasi-static batch (see netlist.build_deck),
  its waveforms altered in place when the batch deck is loaded; a batch that cannot follow an output into
  saturation falls back to one .op per column. With read noise every read gets a fresh deck and draw.
- ``MatrixEngine``: ngspice solves column 0 and exports its own factored matrix, which answers the other columns
  (``amc.hw.runner.matrix_operating_points``); read noise enters as conductance stamps on that matrix. A check that
  fails, or a column outside the limiter's linear region, goes to ``OperatingPoints`` (logged and counted).
- ``Transient``: one right-hand side from zero state through .tran (settling time, energy), the window doubled while
  the outputs still move.

The first two return an ``OperatingPointResult``, the last a ``TransientResult`` (``amc.hw.results``). What the
read-out makes of them (ranging, converters, x) is ``amc.hw.readout``; the array that owns the conductances and
counts is ``amc.hw.inv_array``.
"""
from __future__ import annotations

import logging
import math
from typing import Optional, Protocol, Union

import numpy as np

from amc.config import CircuitConfig
from amc.errors import ConfigError, SimulationError
from amc.hw import opamp_models, periphery
from amc.hw.mapping import MappedArray
from amc.hw.netlist import (TransientSpec, batch_analysis, build_deck, crosspoint_nodes, input_node, input_source_name,
                            output_node, output_sense_sources, pwl_points)
from amc.hw.periphery import SUPPLY_VECTORS
from amc.hw.results import OperatingPointResult, TransientResult
from amc.hw.runner import EngineFallback, matrix_operating_points, session

_log = logging.getLogger("amc.engine")
# The engine's answer for the right-hand side ngspice also solved must match ngspice's own .op to this.
ENGINE_VERIFY_RTOL = 1e-9


class Analysis(Protocol):
    def run(self, conductances: MappedArray, currents: np.ndarray) -> Union[OperatingPointResult, TransientResult]:
        """Simulate the array holding ``conductances`` driven by the input ``currents`` (n, k) in amperes."""


def sense_sources(config: CircuitConfig, n: int) -> list:
    """The 0 V sources carrying every op-amp's output current (none for the behavioural model: no current limit)."""
    return [] if opamp_models.is_behavioural(config.opamp) else output_sense_sources(n, config)


def _branch(source: str) -> str:
    return f"{source}#branch"


class OperatingPoints:
    """Plain ngspice operating points; ``tag`` names this array's device draw so a loaded deck is reused only by it."""

    def __init__(self, config: CircuitConfig, rng: np.random.Generator, tag: tuple):
        self.config, self.rng, self.tag = config, rng, tag

    def __repr__(self) -> str:
        return f"OperatingPoints({self.config.name}, ngspice .op / quasi-static batch)"

    def run(self, conductances: MappedArray, currents: np.ndarray) -> OperatingPointResult:
        cfg = self.config
        ng = session()
        n, k = currents.shape
        outputs = [output_node(j) for j in range(n)]
        sense = sense_sources(cfg, n)
        vectors = outputs + list(SUPPLY_VECTORS) + [_branch(s) for s in sense]
        if cfg.device.is_stochastic_per_read:
            raws, decks = [], []
            for c in range(k):
                array = conductances.with_read_noise(cfg.device.read_noise_sigma, self.rng, cfg.device)
                decks.append(build_deck(array, currents[:, c], cfg))
                ng.load(decks[-1])
                raws.append(ng.run(vectors))
            return OperatingPointResult(
                {name: np.array([raw[name][-1] for raw in raws]) for name in outputs},
                {s: np.array([raw[_branch(s)][-1] for raw in raws]) for s in sense},
                np.array([periphery.supply_power(raw, cfg.opamp.supply_v)[-1] for raw in raws]), decks[0])
        kind = "op" if k == 1 else "batch"
        # The tag holds the array's own token (not id(): a freed array's id can be reused by a new one).
        tag = self.tag + (kind,)
        deck = None
        if ng.loaded and ng.tag == tag:
            if kind == "op":
                ng.alter_sources({input_source_name(i): currents[i, 0] for i in range(n)})
                raw = ng.run(vectors, command="op")
            else:
                ng.alter_waveforms({input_source_name(i): pwl_points(currents[i]) for i in range(n)})
                try:
                    raw = ng.run(["time"] + vectors, command=batch_analysis(k))
                except SimulationError:
                    raw = None
        else:
            deck = build_deck(conductances, currents[:, 0] if k == 1 else currents, cfg)
            ng.load(deck, tag=tag)
            try:
                raw = ng.run((["time"] if k > 1 else []) + vectors)
            except SimulationError:
                if k == 1:
                    raise
                raw = None
        if k > 1 and raw is None:
            # The pole-free batch cannot follow an output into saturation (ngspice: "timestep too small");
            # the operating points of those columns still exist, so take them one .op at a time.
            ng.clean()
            columns = [self.run(conductances, currents[:, [c]]) for c in range(k)]
            return OperatingPointResult(
                {name: np.concatenate([r.v(name) for r in columns]) for name in outputs},
                {s: np.concatenate([r.i(s) for r in columns]) for s in sense},
                np.concatenate([r.supply_power() for r in columns]), columns[0].deck)
        power = periphery.supply_power(raw, cfg.opamp.supply_v)
        if k == 1:
            return OperatingPointResult({name: np.array([raw[name][-1]]) for name in outputs},
                                        {s: np.array([raw[_branch(s)][-1]]) for s in sense}, power[-1:], deck)
        time = raw["time"]
        samples = np.arange(k, dtype=float)
        return OperatingPointResult({name: np.interp(samples, time, raw[name]) for name in outputs},
                                    {s: np.interp(samples, time, raw[_branch(s)]) for s in sense},
                                    np.interp(samples, time, power), deck)


def engine_deck(config: CircuitConfig, conductances: MappedArray, currents: np.ndarray) -> str:
    """The .op deck of one right-hand side saving every vector (what the matrix engine exports)."""
    if not opamp_models.is_behavioural(config.opamp):
        # The engine's linearity check knows the behavioural limiter only.
        raise EngineFallback(f"the matrix engine serves the behavioural op-amp only (this one is "
                             f"{config.opamp.model!r})")
    deck = build_deck(conductances, currents, config)
    return "\n".join(line for line in deck.splitlines() if not line.startswith(".save ")) + "\n"


def engine_solve(config: CircuitConfig, conductances: MappedArray, currents: np.ndarray, nodes: list,
                 linear_rtol: float, stamps: Optional[tuple] = None):
    """(deck, MatrixSolve): ngspice solves column 0 of ``currents`` on these conductances and exports its matrix,
    which answers every column for the named node voltages (raises EngineFallback / SimulationError)."""
    o = config.opamp
    deck = engine_deck(config, conductances, currents[:, 0])
    result = matrix_operating_points(deck, [input_node(i) for i in range(conductances.n)], currents, nodes,
                                     SUPPLY_VECTORS, quiescent_a=o.quiescent_current_a, v_sat=o.v_sat,
                                     sharpness=o.saturation_sharpness, rtol=ENGINE_VERIFY_RTOL,
                                     linear_rtol=linear_rtol, stamps=stamps)
    return deck, result


class MatrixEngine:
    """ngspice's own factored matrix answering every column of a batch; one column goes to ``ngspice`` directly.

    Column 0 is held to ngspice's own .op; a column where the output limiter is not linear to
    simulation.engine_rtol, or the whole call when a check fails, goes to ``ngspice`` (logged, counted in ``stats``
    and so in Solution.engine_fallbacks). With read noise every column is its own read: the deck holds read 0, and
    the other reads are conductance stamps on ngspice's matrix.
    """

    def __init__(self, config: CircuitConfig, rng: np.random.Generator, stats: dict, ngspice: OperatingPoints):
        self.config, self.rng, self.stats, self.ngspice = config, rng, stats, ngspice

    def __repr__(self) -> str:
        return f"MatrixEngine({self.config.name}, {self.stats['engine_rhs']} right-hand sides answered)"

    def run(self, conductances: MappedArray, currents: np.ndarray) -> OperatingPointResult:
        n, k = currents.shape
        if k == 1:
            return self.ngspice.run(conductances, currents)
        cfg = self.config
        o, sim = cfg.opamp, cfg.simulation
        stamps, array = None, conductances
        if cfg.device.is_stochastic_per_read:
            reads = [conductances.with_read_noise(cfg.device.read_noise_sigma, self.rng, cfg.device)
                     for _ in range(k)]
            a_pos, b_pos, a_neg, b_neg = crosspoint_nodes(n, cfg.wires.enabled)
            stamps = (np.concatenate([a_pos.ravel(), a_neg.ravel()]), np.concatenate([b_pos.ravel(), b_neg.ravel()]),
                      np.stack([np.concatenate([(r.g_pos - reads[0].g_pos).ravel(), (r.g_neg - reads[0].g_neg).ravel()])
                                for r in reads], axis=1))
            array = reads[0]
        stats = self.stats
        stats["calls"] += 1
        outputs = [output_node(j) for j in range(n)]
        try:
            deck, result = engine_solve(cfg, array, currents, outputs, sim.engine_rtol, stamps)
        except (EngineFallback, SimulationError) as exc:
            stats["fallback_rhs"] += k
            stats["last_fallback"] = str(exc).splitlines()[0]
            _log.warning("matrix engine fell back to ngspice for %d right-hand sides: %s", k, stats["last_fallback"])
            return self.ngspice.run(conductances, currents)
        v, p = result.outputs, periphery.supply_power(result.supply, o.supply_v)
        if result.rejected:
            bad = ~result.accepted
            stats["fallback_rhs"] += int(bad.sum())
            stats["last_fallback"] = (f"{int(bad.sum())} of {k} right-hand sides outside the linear region "
                                      f"(limiter error up to {result.limiter_error.max():.3g} > {sim.engine_rtol:g})")
            _log.info("matrix engine: %s; solving those with ngspice", stats["last_fallback"])
            plain = self.ngspice.run(conductances, currents[:, bad])
            v[:, bad], p[bad] = plain.outputs(n), plain.supply_power()
        stats["engine_rhs"] += int(result.accepted.sum())
        return OperatingPointResult({name: v[j] for j, name in enumerate(outputs)}, {}, p, deck)


def steady_state(config: CircuitConfig, rng: np.random.Generator, tag: tuple, stats: dict
                 ) -> Union[OperatingPoints, MatrixEngine]:
    """The operating-point strategy the config asks for (the matrix engine serves the behavioural op-amp only)."""
    ngspice = OperatingPoints(config, rng, tag)
    if config.simulation.engine == "ngspice-matrix" and opamp_models.is_behavioural(config.opamp):
        return MatrixEngine(config, rng, stats, ngspice)
    return ngspice


def transient_spec(config: CircuitConfig, conductances: MappedArray, lambda_min: float) -> TransientSpec:
    """A window of simulation.tran_time_constants of the slowest loop mode, steps resolving the fastest."""
    sim, o = config.simulation, config.opamp
    # Time scale of the slowest loop mode; an unstable loop (forced past the check) grows at |lambda|.
    lam_max = float(np.max(np.abs(np.linalg.eigvals(conductances.loop_matrix(o.gain)))))
    tau = 1.0 / (2 * math.pi * o.gbw_hz * max(abs(lambda_min), 1e-6 * lam_max))
    stop = sim.tran_time_constants * tau
    step = min(stop / sim.tran_points, 0.2 / (2 * math.pi * o.gbw_hz * lam_max))
    if stop / step > 2e6:
        raise ConfigError(f"the transient would need {stop / step:.3g} time steps (condition number of the loop "
                          f"{lam_max / abs(lambda_min):.3g}); reduce simulation.tran_time_constants or damp H")
    return TransientSpec(step_s=step, stop_s=stop)


class Transient:
    """One right-hand side (a single column of currents) through .tran with one read-noise draw; the window
    (``spec``) doubles, up to three times, while the last tenth of it still moves by more than a tenth of the
    settling band -- poles the loop model leaves out (e.g. op-amp inverters) can outlast it -- and a doubled window
    is kept for the next right-hand side."""

    def __init__(self, config: CircuitConfig, rng: np.random.Generator, spec: TransientSpec):
        if config.opamp.gbw_hz is None:
            raise ConfigError("a transient solve needs op-amps with a finite gain-bandwidth (opamp.gbw_hz); "
                              f"the configured op-amp {config.opamp.name!r} has none (use e.g. preset 'ideal-dynamic')")
        self.config, self.rng, self.spec = config, rng, spec

    def __repr__(self) -> str:
        return f"Transient({self.config.name}, {self.spec.stop_s:.3g} s window)"

    def run(self, conductances: MappedArray, currents: np.ndarray) -> TransientResult:
        cfg = self.config
        n = conductances.n
        currents = np.asarray(currents).reshape(n)
        ng = session()
        vectors = (["time"] + [output_node(j) for j in range(n)] + list(SUPPLY_VECTORS)
                   + [_branch(s) for s in sense_sources(cfg, n)])
        array = conductances.with_read_noise(cfg.device.read_noise_sigma, self.rng, cfg.device)
        deck = build_deck(array, currents, cfg, transient=self.spec)
        try:
            for _ in range(4):
                ng.load(deck)
                raw = ng.run(vectors)
                ng.clean()
                time = raw["time"]
                v = np.stack([raw[output_node(j)] for j in range(n)])
                tail = time >= 0.9 * time[-1]
                drift = float(np.max(np.abs(v[:, tail] - v[:, -1:])))
                if drift <= 0.1 * cfg.simulation.settle_tol * max(float(np.max(np.abs(v[:, -1]))), 1e-30):
                    break
                self.spec = TransientSpec(step_s=self.spec.step_s, stop_s=2 * self.spec.stop_s)
                deck = build_deck(array, currents, cfg, transient=self.spec)
        finally:
            ng.clean()
        return TransientResult(time, raw, cfg.opamp.supply_v, self.spec, deck)
