"""Re-stamped MVM responses: one ngspice .op per MVM array topology, later programmings re-stamped into its matrix.

An MVM array's response (``AnalogMVM.response``: the TIA outputs for a unit input on each column alone) is linear in
the inputs while the op-amps are in their linear region, and a programming changes only resistors: the cells
rp_i_j / rn_i_j and the TIA feedback rf_i (chosen per programming from the worst-case row current). So, as for INV
arrays (``amc.hw.restamp``, whose TemplateStore, Template and checks this module shares), ngspice's exported matrix
of one programmed deck is a template for its topology -- rows, columns and every config section that reaches the
matrix (op-amp model, wires) -- and a later programming re-stamps those resistors' conductances into it, factors it
once and solves all ``cols`` unit inputs as right-hand sides of the DAC sources' branch equations.

Every re-stamped programming passes the cheap checks (every column's output limiter linear to MVM_LINEAR_RTOL, every
TIA output inside its swing). ngspice measures the response itself -- the quasi-static transient batch every
programming used before -- at the first programming of a topology, every ``simulation.verify_every``-th, and any
programming whose cheap check failed (logged, recorded in ``restamp.store().failures``). At such a verified
programming the spot check holds two predictions to ngspice's batch at every column (MVM_SPOT_RTOL): the answer of
ngspice's exported matrix of this very programming (column 0 is ngspice's .op, the others its right-hand sides), and
the topology's template re-stamped to this programming. A failed spot check is logged and the topology falls back to
per-programming ngspice for the rest of the process; a passing one makes this programming's matrix the template.
Verified and re-stamped programmings are counted in the MVM's counts (``programmings_verified`` /
``programmings_restamped``) by ``AnalogMVM.response``.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from amc.errors import SimulationError
from amc.hw import restamp
from amc.hw.mna import CircuitMatrix, MatrixExportError
from amc.hw.periphery import SUPPLY_VECTORS
from amc.hw.runner import EngineFallback, MatrixSolve, answer_columns, source_sign, verified_system

# The re-stamped response must be ngspice's to 1e-9 relative (the same bar as the INV engine's ENGINE_VERIFY_RTOL):
# a column whose limiter deviates more than that from linear cannot be answered by a linear solve.
MVM_LINEAR_RTOL = 1e-9
# The spot check's bar: ngspice's batch and the matrix answers differ only by Newton's convergence under the MVM
# deck's reltol 1e-12 (amc.hw.mvm.MVM_OPTIONS), far below this.
MVM_SPOT_RTOL = 1e-9


def topology_key(config, rows: int, cols: int) -> tuple:
    """What fixes ngspice's matrix of an MVM array apart from its resistors (cells and feedback)."""
    return (("mvm", rows, cols),) + restamp.topology_sections(config)


def resistor_nodes(rows: int, cols: int, wires: bool) -> tuple[list, list]:
    """(node_a, node_b) of every re-stamped resistor as build_mvm_deck writes them: rp_i_j (row-major), rn_i_j,
    then the feedback rf_i."""
    a_pos, b_pos, a_neg, b_neg = [], [], [], []
    for i in range(rows):
        for j in range(cols):
            if wires:      # netlist.crossbar's grid: row i's taps r_i_0 .. r_i_(2 cols - 1), column j's cp_j_i
                a_pos.append(f"r_{i}_{j}"), b_pos.append(f"cp_{j}_{i}")
                a_neg.append(f"r_{i}_{cols + j}"), b_neg.append(f"cn_{j}_{i}")
            else:
                a_pos.append(f"row_{i}"), b_pos.append(f"cp_{j}")
                a_neg.append(f"row_{i}"), b_neg.append(f"cn_{j}")
    return (a_pos + a_neg + [f"row_{i}" for i in range(rows)],
            b_pos + b_neg + [f"out_{i}" for i in range(rows)])


def conductances(g_pos: np.ndarray, g_neg: np.ndarray, rf: float) -> np.ndarray:
    """The re-stamped resistors' conductances as ngspice reads them from the deck (resistances with 17 digits)."""
    ohms = np.concatenate([1.0 / g_pos.ravel(), 1.0 / g_neg.ravel(), np.full(g_pos.shape[0], float(rf))])
    return 1.0 / ohms


def sources(cols: int) -> list[str]:
    """The DAC sources' branch equations, whose right-hand side entries are the column voltages (+V_j, -V_j)."""
    return [f"vp_{j}#branch" for j in range(cols)] + [f"vn_{j}#branch" for j in range(cols)]


def source_values(cols: int, read_voltage: float) -> np.ndarray:
    """(2 cols, cols): column r drives +read_voltage on vp_r and -read_voltage on vn_r, every other DAC at 0."""
    unit = read_voltage * np.eye(cols)
    return np.concatenate([unit, -unit])


def response(config, g_pos: np.ndarray, g_neg: np.ndarray, rf: float, read_voltage: float,
             export_deck: Callable[[], str], batch: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """((rows, cols) TIA outputs for ``read_voltage`` on each column alone, re-stamped?).

    ``export_deck()``: the programmed array's .op deck with column 0 driven, saving every vector; ``batch()``:
    ngspice's quasi-static batch of the programmed deck (the real response, (rows, cols)).
    """
    sim = config.simulation
    rows, cols = g_pos.shape
    if sim.engine != "ngspice-matrix" or sim.verify_every == 1:
        return batch(), False
    st = restamp.store()
    key = topology_key(config, rows, cols)
    template = st.lookup(key)
    g = conductances(g_pos, g_neg, rf)
    values = source_values(cols, read_voltage)
    if not st.due(key, template, sim.verify_every):
        try:
            result = _answer(template.restamp(g), template.sign, values, rows, config)
            failure = restamp.cheap_check_failure(result, config, MVM_LINEAR_RTOL, rows)
        except (EngineFallback, MatrixExportError) as exc:
            failure = str(exc).splitlines()[0]
        if failure is None:
            template.since_verified += 1
            return result.outputs[:rows], True
        # this programming is ngspice's; only a failed spot check below condemns the template
        st.fail(key, "cheap check", failure, fallback=False)
    measured = batch()
    if key in st.fallback:
        return measured, False
    fresh, failure = None, None
    try:
        system, verification = verified_system(export_deck(), MVM_SPOT_RTOL)
        sign = source_sign(system, sources(cols), values[:, 0])
        fresh = _answer(system, sign, values, rows, config, verification)
        failure = _disagreement("ngspice's matrix of this programming", fresh, measured)
        if failure is None and template is not None:
            failure = _disagreement("the re-stamped template",
                                    _answer(template.restamp(g), template.sign, values, rows, config), measured)
    except (EngineFallback, MatrixExportError, SimulationError) as exc:
        failure = f"ngspice's matrix export: {str(exc).splitlines()[0]}"
    if failure is not None:
        st.fail(key, "spot check", failure)
        return measured, False
    st.keep(key, _template(system, g, sign, rows, cols, config, template), sim.template_cache)
    return measured, False


def _answer(system: CircuitMatrix, sign: float, values: np.ndarray, rows: int, config,
            verification=None) -> MatrixSolve:
    """TIA outputs of every column of ``values`` from a factored system (one LU, ``cols`` right-hand sides)."""
    o = config.opamp
    return answer_columns(system, sign, sources(values.shape[1]), values, [f"out_{i}" for i in range(rows)],
                          SUPPLY_VECTORS, o.quiescent_current_a, o.v_sat, o.saturation_sharpness,
                          MVM_SPOT_RTOL, MVM_LINEAR_RTOL, None, verification)


def _disagreement(what: str, predicted: MatrixSolve, measured: np.ndarray) -> Optional[str]:
    """Why ``predicted`` is not ngspice's batch (None when it agrees to MVM_SPOT_RTOL at every column)."""
    if predicted.rejected:
        return (f"{what}: {predicted.rejected} of {predicted.accepted.size} columns outside the limiter's linear "
                f"region (estimated error up to {float(np.max(predicted.limiter_error)):.3g})")
    scale = float(np.max(np.abs(measured)))
    error = float(np.max(np.abs(predicted.outputs - measured))) / max(scale, 1e-300)
    if not error <= MVM_SPOT_RTOL:
        return f"{what} differs from ngspice's response by {error:.3g} (relative, tolerance {MVM_SPOT_RTOL:g})"
    return None


def _template(system: CircuitMatrix, g: np.ndarray, sign: float, rows: int, cols: int, config,
              previous: Optional[restamp.Template]) -> restamp.Template:
    system.canonical()
    if previous is not None and restamp._same_structure(previous.system, system):    # the positions carry over
        positions, cells = previous.positions, previous.cells
    else:
        node_a, node_b = resistor_nodes(rows, cols, config.wires.enabled)
        positions = system.stamp_positions(node_a, node_b)
        cells = tuple(np.array([-1 if x == "0" else system.equation(x) for x in nodes], dtype=np.int64)
                      for nodes in (node_a, node_b))
    return restamp.Template(system, g, positions, sign, cells, lines=max(rows, cols))
