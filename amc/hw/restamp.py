"""Re-stamped programmings: one ngspice .op per array topology, the cells' new conductances stamped into its matrix.

A programming changes only the crosspoint resistors. ngspice's exported Jacobian at an operating point in the
op-amps' linear region (``amc.hw.mna``) is the same matrix for any programming of the same topology except for those
resistors' stamps (+G on both diagonals, -G between the nodes). So for every topology -- array size and everything
in the deck besides the cells and the input sources: op-amp model, inverters, wire grid -- ngspice runs once and its
matrix becomes a template; a later programming re-stamps the cells' conductance changes into the template and factors
it (SuperLU: LAPACK's dense LU of the same unknowns was slower at every size measured, see
benchmarks/bench_matrix_engine.py --restamp) instead of paying ngspice's .op of the whole programmed deck (n^4.6 on
the dense crossbar block).

Every re-stamped programming passes the cheap checks: every column's output limiter linear to the engine's tolerance
(the one-Newton-step estimate of ``runner.answer_columns``) and every op-amp output inside its swing. A real ngspice
.op of the programmed deck is run for the first programming of a topology, every ``simulation.verify_every``-th
programming of it, and any programming that fails a cheap check. At a periodic verification the re-stamped answer of
that same programming is held to ngspice's own solution (``ENGINE_VERIFY_RTOL``): that is the spot check. A failed
spot check or cheap check is logged (``amc.engine``), recorded in ``store().failures``, and the topology falls back to
per-programming verification (every later programming of it gets its own .op) for the rest of the process. Only a
verified programming whose every column is linear becomes the new template (a saturated operating point's Jacobian
is not the linear region's).

The templates are process-wide, like the ngspice session: the arrays of a training run (a new array object per
inverse update) and the blocks of BlockAMC share them. At most ``simulation.template_cache`` topologies are kept
(least recently used dropped). Which programmings were verified and which re-stamped is counted per array
(``OperationCounts.programmings_verified`` / ``programmings_restamped``) and so reaches every Solution and the
training account.

This module is written for INV arrays; ``Template``, ``TemplateStore`` (with its LRU and fallback set), the cheap
check and ``topology_sections`` are shared with MVM arrays (``amc.hw.mvm_restamp``: its templates sit in the same
store under ("mvm", rows, cols) keys and also re-stamp the TIA feedback resistors).
"""
from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from amc.hw.mna import CircuitMatrix, MatrixExportError, SchurFactor
from amc.hw.netlist import crosspoint_nodes, input_node
from amc.hw.periphery import SUPPLY_VECTORS, swing_limit
from amc.hw.runner import EngineFallback, MatrixSolve, answer_columns, source_sign, verified_system

if TYPE_CHECKING:
    from amc.hw.inv_array import InvArray
    from amc.hw.mapping import MappedArray

_log = logging.getLogger("amc.engine")
# Sections of CircuitConfig that never reach the circuit matrix: the cells' conductances (device: they are what is
# re-stamped), the input sources' values (io: replaced per right-hand side) and the analysis settings (simulation).
NOT_TOPOLOGY = ("name", "device", "io", "simulation")


def topology_key(config, n: int) -> tuple:
    """What fixes ngspice's matrix apart from the cells: n and every other config section (op-amp model and
    macromodel, inverters, wires, and any section added later)."""
    return (n,) + topology_sections(config)


def topology_sections(config) -> tuple:
    """Every config section that reaches the circuit matrix besides the cells (the part of a key all arrays share)."""
    return tuple((f.name, repr(getattr(config, f.name))) for f in dataclasses.fields(config)
                 if f.name not in NOT_TOPOLOGY)


def deck_conductances(mapped: "MappedArray") -> np.ndarray:
    """The cells' conductances as ngspice reads them from the deck (resistances written with 17 digits)."""
    return 1.0 / (1.0 / np.concatenate([mapped.g_pos.ravel(), mapped.g_neg.ravel()]))


# The Schur factorisation pays off while the crossbar's unknowns are a few per row (no wire grid: row, out, nout and
# the output sense currents, ~5n); with wires every cell has its own two grid nodes and SuperLU takes the whole.
SCHUR_MAX_PER_ROW = 8


@dataclass
class Template:
    system: CircuitMatrix          # ngspice's matrix and right-hand side of a verified programming
    conductances: np.ndarray       # the cells' conductances stamped in it (deck_conductances)
    positions: np.ndarray          # (4, 2 n^2) stamp positions of the cells in system.matrix.data
    sign: float                    # sign of the input sources in the right-hand side
    cells: tuple                   # (equation of node a, of node b) of every cell, -1 for ground
    since_verified: int = 0        # re-stamped programmings since the last ngspice .op of this topology
    _schur: object = None          # SchurFactor (built at the first re-stamp), False where it does not apply
    lines: int = 0                 # the array's larger dimension (Schur's size limit); 0: n of a square INV array

    def restamp(self, mapped: "MappedArray | np.ndarray", kind: str = "auto") -> CircuitMatrix:
        """ngspice's matrix with this programming's cells, factored: ``"auto"`` (Schur where it applies, else
        SuperLU), ``"schur"``, ``"sparse"`` or ``"dense"``. ``mapped``: an INV array's MappedArray, or the
        re-stamped resistors' conductances in the order of ``positions`` (an MVM array's cells and feedback)."""
        conductances = mapped if isinstance(mapped, np.ndarray) else deck_conductances(mapped)
        if conductances.shape != self.conductances.shape:
            raise MatrixExportError(f"{conductances.size} conductances for a template of {self.conductances.size}")
        delta = conductances - self.conductances
        system = self.system.restamped(self.positions, delta)
        schur = self.schur() if kind in ("auto", "schur") else None
        if schur:
            return system.with_factor(schur.restamped(schur.local_index(self.cells[0]),
                                                      schur.local_index(self.cells[1]), delta))
        if kind == "schur":
            raise MatrixExportError("the Schur factorisation does not apply to this topology")
        return system.factor("sparse" if kind == "auto" else kind)

    def schur(self):
        if self._schur is None:
            boundary = np.unique(np.concatenate(self.cells))
            boundary = boundary[boundary >= 0]
            n = self.lines or int(round(np.sqrt(self.conductances.size / 2)))
            self._schur = False
            if boundary.size <= SCHUR_MAX_PER_ROW * n:
                try:
                    self._schur = SchurFactor(self.system.matrix, boundary)
                except MatrixExportError as exc:
                    _log.info("re-stamped programming: no Schur factorisation (%s); SuperLU instead", exc)
                if self._schur and self._schur.c.size > SCHUR_MAX_PER_ROW * n:
                    self._schur = False
        return self._schur

    @property
    def nbytes(self) -> int:
        m = self.system.matrix
        schur = self._schur.nbytes if self._schur else 0
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + self.positions.nbytes
                   + self.conductances.nbytes + self.system.rhs.nbytes + self.cells[0].nbytes
                   + self.cells[1].nbytes + schur)


@dataclass
class Failure:
    topology: tuple
    kind: str                      # "spot check" or "cheap check"
    reason: str


@dataclass
class TemplateStore:
    """The process-wide templates (an LRU), the topologies that fell back to per-programming verification, and
    every failed check."""

    templates: "OrderedDict[tuple, Template]" = field(default_factory=OrderedDict)
    fallback: set = field(default_factory=set)
    failures: list = field(default_factory=list)

    def lookup(self, key: tuple) -> Optional[Template]:
        template = self.templates.get(key)
        if template is not None:
            self.templates.move_to_end(key)
        return template

    def keep(self, key: tuple, template: Template, capacity: int) -> None:
        self.templates[key] = template
        self.templates.move_to_end(key)
        while len(self.templates) > capacity:
            self.templates.popitem(last=False)

    def fail(self, key: tuple, kind: str, reason: str, fallback: bool = True) -> None:
        """Record and log a failed check; ``fallback``: the topology is verified by ngspice at every programming
        from now on (otherwise only this programming is)."""
        self.failures.append(Failure(key, kind, reason))
        del self.failures[:-100]           # the latest hundred: bounded over a long run
        if fallback:
            self.fallback.add(key)
        _log.warning("re-stamped programming: %s failed on a %s array (%s); %s", kind, shape_label(key), reason,
                     "this topology is now verified by ngspice at every programming" if fallback else
                     "this programming is verified by ngspice")

    def due(self, key: tuple, template: Optional[Template], verify_every: int) -> bool:
        """Must this programming of topology ``key`` be verified by ngspice? The first of a topology, every
        verify_every-th and every one of a topology in fallback."""
        return template is None or key in self.fallback or template.since_verified + 1 >= verify_every

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.templates.values())


def shape_label(key: tuple) -> str:
    """"rows x cols" of a topology key: an INV key starts with n, an MVM key with ("mvm", rows, cols)."""
    head = key[0]
    return f"{head[1]}x{head[2]} MVM" if isinstance(head, tuple) else f"{head}x{head}"


_STORE = TemplateStore()


def store() -> TemplateStore:
    return _STORE


def reset() -> None:
    """Forget every template and fallback (a fresh process)."""
    global _STORE
    _STORE = TemplateStore()


def measure(array: "InvArray", currents: np.ndarray, nodes: list, linear_rtol: float) -> tuple[MatrixSolve, bool]:
    """(operating points of every column of ``currents`` on the programmed array, re-stamped?).

    Raises EngineFallback / SimulationError when ngspice's own engine cannot answer (the caller runs plain ngspice).
    """
    cfg = array.config
    sim = cfg.simulation
    mapped = array.mapped
    n = mapped.n
    if sim.verify_every == 1:              # today's behaviour: every programming is ngspice's own .op
        return _verified(array, currents, nodes, linear_rtol)[0], False
    st = store()
    key = topology_key(cfg, n)
    template = st.lookup(key)
    if not st.due(key, template, sim.verify_every):
        try:
            result = _restamped(array, template, currents, nodes, linear_rtol)
            failure = cheap_check_failure(result, cfg, linear_rtol, 2 * n)
        except (EngineFallback, MatrixExportError) as exc:
            failure = str(exc).splitlines()[0]
        if failure is None:
            template.since_verified += 1
            return result, True
        st.fail(key, "cheap check", failure)
    result, system = _verified(array, currents, nodes, linear_rtol)
    if template is not None and key not in st.fallback:
        failure = spot_check_failure(template, array.mapped, system, cfg.opamp.quiescent_current_a)
        if failure is not None:
            st.fail(key, "spot check", failure)
    if not result.rejected:                # a linear operating point: the freshest template of this topology
        a_pos, b_pos, a_neg, b_neg = crosspoint_nodes(n, cfg.wires.enabled)
        system.canonical()
        if template is not None and _same_structure(template.system, system):    # the positions carry over
            positions, cells = template.positions, template.cells
        else:
            node_a = np.concatenate([a_pos.ravel(), a_neg.ravel()])
            node_b = np.concatenate([b_pos.ravel(), b_neg.ravel()])
            positions = system.stamp_positions(node_a, node_b)
            cells = tuple(np.array([-1 if x == "0" else system.equation(x) for x in nodes], dtype=np.int64)
                          for nodes in (node_a, node_b))
        sign = source_sign(system, [input_node(i) for i in range(n)], currents[:, 0])
        st.keep(key, Template(system, deck_conductances(mapped), positions, sign, cells), sim.template_cache)
    return result, False


def _same_structure(a: CircuitMatrix, b: CircuitMatrix) -> bool:
    return (a.unknowns == b.unknowns and np.array_equal(a.matrix.indptr, b.matrix.indptr)
            and np.array_equal(a.matrix.indices, b.matrix.indices))


def _verified(array: "InvArray", currents: np.ndarray, nodes: list, linear_rtol: float
              ) -> tuple[MatrixSolve, CircuitMatrix]:
    """ngspice's .op of the programmed deck (column 0), its matrix answering every column."""
    from amc.hw.analyses import ENGINE_VERIFY_RTOL
    o = array.config.opamp
    n = array.mapped.n
    deck = array.engine_deck(array.mapped, currents[:, 0])
    system, verification = verified_system(deck, ENGINE_VERIFY_RTOL)
    sources = [input_node(i) for i in range(n)]
    sign = source_sign(system, sources, currents[:, 0])
    result = answer_columns(system, sign, sources, currents, nodes, SUPPLY_VECTORS, o.quiescent_current_a, o.v_sat,
                            o.saturation_sharpness, ENGINE_VERIFY_RTOL, linear_rtol, None, verification)
    return result, system


def _restamped(array: "InvArray", template: Template, currents: np.ndarray, nodes: list,
               linear_rtol: float) -> MatrixSolve:
    from amc.hw.analyses import ENGINE_VERIFY_RTOL
    o = array.config.opamp
    system = template.restamp(array.mapped)
    sources = [input_node(i) for i in range(array.mapped.n)]
    return answer_columns(system, template.sign, sources, currents, nodes, SUPPLY_VECTORS, o.quiescent_current_a,
                          o.v_sat, o.saturation_sharpness, ENGINE_VERIFY_RTOL, linear_rtol, None, None)


def cheap_check_failure(result: MatrixSolve, config, linear_rtol: float, amplifiers: int) -> Optional[str]:
    """Why a re-stamped answer cannot stand without ngspice (None when it can): an output limiter outside its
    linear region, or an op-amp output (the first ``amplifiers`` outputs: an INV array's out_j, nout_j, an MVM
    array's out_i) beyond its swing."""
    if result.rejected:
        return (f"{result.rejected} of {result.accepted.size} columns outside the limiter's linear region "
                f"(estimated error up to {float(np.max(result.limiter_error)):.3g} > {linear_rtol:g})")
    v = result.outputs[:amplifiers]
    if not np.all(np.isfinite(v)):
        return "non-finite op-amp outputs"
    limit = swing_limit(config)
    peak = float(np.max(np.abs(v)))
    if peak > limit:
        return f"an op-amp output at {peak:.3g} V beyond its {limit:.3g} V swing"
    return None


def spot_check_failure(template: Template, conductances, system: CircuitMatrix, quiescent: float) -> Optional[str]:
    """Re-stamp the template to this programming and hold its answer for the deck's own right-hand side to
    ngspice's .op of that deck (None when it agrees to ENGINE_VERIFY_RTOL): every node voltage and branch current,
    the supply rails as the engine computes them (the rail bookkeeping of the output currents: its max(+-i, 0) halves
    are piecewise linear, so a Jacobian taken at another programming's output signs cannot carry them)."""
    from amc.hw.analyses import ENGINE_VERIFY_RTOL
    try:
        predicted = template.restamp(conductances)
        if predicted.unknowns != system.unknowns:
            return "ngspice's unknowns differ from the template's"
        x = predicted.solve(system.rhs)
    except MatrixExportError as exc:
        return str(exc)
    names, ref = system.unknowns, system.reference
    rails = np.array([name in SUPPLY_VECTORS for name in names])
    current = np.array(["#branch" in name for name in names]) & ~rails
    sense = np.array([name.endswith(".vsense#branch") for name in names])
    x = x.copy()
    for name in SUPPLY_VECTORS:
        sourcing = name.startswith("vcc")
        part = np.maximum(x[sense] if sourcing else -x[sense], 0.0).sum()
        x[names.index(name)] = (-1.0 if sourcing else 1.0) * (part + sense.sum() * quiescent)
    worst = []
    for label, mask in (("node voltages", ~current & ~rails), ("branch currents", current), ("supply rails", rails)):
        scale = float(np.max(np.abs(ref[mask]))) if mask.any() else 0.0
        diff = float(np.max(np.abs(x[mask] - ref[mask]))) if mask.any() else 0.0
        error = diff / scale if scale > 0 else diff
        if error > ENGINE_VERIFY_RTOL:
            worst.append(f"{label} differ by {error:.3g}")
    if worst:
        return f"re-stamped answer vs ngspice's .op: {', '.join(worst)} (relative, tolerance {ENGINE_VERIFY_RTOL:g})"
    return None


def seed(config, n: int) -> Template:
    """A template for topology (config, n) from ngspice's .op of a deck holding only the diagonal cells.

    For sizes whose full .op does not finish (ngspice's Sparse grows like n^4.6 on the dense crossbar: hours at
    n = 1,024) the template can come from the same circuit with its off-diagonal cells left out: the op-amps, inverters
    and wires are the same devices at a linear operating point, so their stamps are the ones a full deck would
    export, and every cell is a resistor stamp that the re-stamp adds (the missing ones from zero). The .op of the
    sparse deck takes seconds. Kept in the store like any template; the next verification of the topology (its
    verify_every-th programming) holds it to a real .op of a full deck, as any spot check.
    """
    import re
    from amc.hw.analyses import ENGINE_VERIFY_RTOL
    from amc.hw.inv_array import InvArray
    array = InvArray(config).program(np.eye(n))
    mapped = array.mapped
    currents = np.zeros(n)
    currents[0] = 0.05 * array.readout.initial_i0(mapped, np.eye(n)[:, 0])
    cell = re.compile(r"^r[pn]_(\d+)_(\d+) ")

    def diagonal_only(line: str) -> bool:
        match = cell.match(line)
        return match is None or match.group(1) == match.group(2)
    deck = "".join(line + "\n" for line in array.engine_deck(mapped, currents).splitlines() if diagonal_only(line))
    system, _ = verified_system(deck, ENGINE_VERIFY_RTOL)
    a_pos, b_pos, a_neg, b_neg = crosspoint_nodes(n, config.wires.enabled)
    node_a = np.concatenate([a_pos.ravel(), a_neg.ravel()])
    node_b = np.concatenate([b_pos.ravel(), b_neg.ravel()])
    cells = tuple(np.array([-1 if x == "0" else system.equation(x) for x in nodes], dtype=np.int64)
                  for nodes in (node_a, node_b))
    # every cell's stamp as stored structure (explicit zeros where the sparse deck had no resistor)
    rows = np.concatenate([cells[0], cells[1], cells[0], cells[1]])
    cols = np.concatenate([cells[0], cells[1], cells[1], cells[0]])
    keep = (rows >= 0) & (cols >= 0)
    coo = system.matrix.tocoo()
    import scipy.sparse
    matrix = scipy.sparse.csc_matrix((np.concatenate([coo.data, np.zeros(int(keep.sum()))]),
                                      (np.concatenate([coo.row, rows[keep]]), np.concatenate([coo.col, cols[keep]]))),
                                     shape=system.matrix.shape)
    full = CircuitMatrix(matrix, system.rhs, system.unknowns, system.reference).canonical()
    conductances = deck_conductances(mapped).reshape(2, n, n) * np.eye(n)[None, :, :]
    template = Template(full, conductances.ravel(), full.stamp_positions(node_a, node_b),
                        source_sign(full, [input_node(i) for i in range(n)], currents), cells)
    store().keep(topology_key(config, n), template, config.simulation.template_cache)
    return template
