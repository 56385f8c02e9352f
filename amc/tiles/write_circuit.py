"""The write circuit: programming pulses reach a cell through its row and column lines (V/2 and V/3 schemes).

During a programming pulse the array is a resistive network: every cell a linear resistor 1/G (its conductance at
the time of the write), every row and column line a chain of wire segments (``row_ohm``, ``col_ohm``), row drivers
at column 0, column drivers at row 0. The selected cell (row i, column j) gets the full pulse V: its row is driven at
V and its column at 0; the V/2 scheme holds every other line at V/2 (half-selected cells see V/2), the V/3 scheme
unselected rows at V/3 and unselected columns at 2V/3 (every unselected cell sees ±V/3).

The network is linear, so one ngspice ``.op`` with its circuit matrix exported (the matrix engine of
amc/hw/runner.py, held to that .op) gives every unit driver's response, and any pulse pattern's cell voltages are that
transfer matrix times the pattern's driver voltages. The effective amplitude of cell (i, j) is its own voltage when it is the selected cell;
:func:`plain_ngspice_cell_voltages` solves a pattern directly (one ``.op``) to check it.

Amplitude → step: a pulse moves a cell in proportion to its overdrive above the switching threshold,
``factor = max(0, (|V_eff| - V_th)/(V_nom - V_th))`` for SET (up) and RESET (down) separately. Different thresholds
for the two polarities make an IR drop shrink up and down steps by different factors, which moves each cell's
symmetric point (``CellParameters.symmetric_points``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from amc.errors import ConfigError, SimulationError
from amc.hw.netlist import _fmt, pwl_points
from amc.hw.runner import session

SCHEMES = ("v/2", "v/3")


@dataclass(frozen=True)
class PulseModel:
    """SET/RESET pulse amplitudes and thresholds (volts, magnitudes) and the pulse's width.

    ASSUMPTION (no single source gives all four numbers for one cell): SET 1.2 V over a 0.8 V threshold and RESET
    1.5 V over a 0.9 V threshold, chosen so that half-selected cells (V/2 = 0.6 and 0.75 V) stay below threshold --
    the V/2 scheme's requirement -- and inside the 1-2 V programming range of TaOx/HfOx 1T1R cells (write pulses of
    2 V in amc/cost/presets.py; Wan et al., Nature 2022). The two polarities' overdrive ratios differ (1.2/0.4 = 3
    against 1.5/0.6 = 2.5), as SET and RESET kinetics generally do; that difference is what turns an IR drop into a
    symmetric-point shift. Pulse width 100 ns as in amc/cost/presets.py.
    """

    v_set: float = 1.2
    v_th_set: float = 0.8
    v_reset: float = 1.5
    v_th_reset: float = 0.9
    width_s: float = 100e-9

    def __post_init__(self):
        for nom, th, name in ((self.v_set, self.v_th_set, "set"), (self.v_reset, self.v_th_reset, "reset")):
            if not 0 < th < nom:
                raise ConfigError(f"write pulse: need 0 < v_th_{name} < v_{name}, got {th} and {nom}")

    def factors(self, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(up, down) step factors for cells whose effective amplitude is ``ratio`` × nominal."""
        r = np.abs(ratio)
        up = np.maximum(r * self.v_set - self.v_th_set, 0.0) / (self.v_set - self.v_th_set)
        down = np.maximum(r * self.v_reset - self.v_th_reset, 0.0) / (self.v_reset - self.v_th_reset)
        return up, down


def write_deck(g: np.ndarray, row_ohm: float, col_ohm: float, drivers: np.ndarray, title: str = "") -> str:
    """The array as a resistive network with row/column drivers. ``drivers``: (m+n,) volts for one ``.op``, or
    (m+n, k) for a quasi-static batch (pattern r at t = r). Nodes: ``r_i_j`` row i at cell j, ``c_j_i`` column j at
    cell i; sources ``vr_i`` (rows) and ``vc_j`` (columns)."""
    m, n = g.shape
    drivers = np.asarray(drivers, float)
    batch = drivers.ndim == 2
    rr, rc = _fmt(max(row_ohm, 1e-6)), _fmt(max(col_ohm, 1e-6))
    lines = [f"* amc-cosim write circuit: {m}x{n} cells as resistors 1/G, wires {row_ohm:g}/{col_ohm:g} ohm per "
             f"segment {title}",
             ".options reltol=1e-9 vntol=1e-12 abstol=1e-18"]
    names = [f"vr_{i} dr_{i}" for i in range(m)] + [f"vc_{j} dc_{j}" for j in range(n)]
    for k, name in enumerate(names):
        if batch:
            lines.append(f"{name} 0 DC 0 PWL({pwl_points(drivers[k])})")
        else:
            lines.append(f"{name} 0 DC {_fmt(drivers[k])}")
    for i in range(m):
        prev = f"dr_{i}"
        for j in range(n):
            lines.append(f"rwr_{i}_{j} {prev} r_{i}_{j} {rr}")
            prev = f"r_{i}_{j}"
    for j in range(n):
        prev = f"dc_{j}"
        for i in range(m):
            lines.append(f"rwc_{j}_{i} {prev} c_{j}_{i} {rc}")
            prev = f"c_{j}_{i}"
    for i in range(m):
        for j in range(n):
            lines.append(f"rcell_{i}_{j} r_{i}_{j} c_{j}_{i} {_fmt(1.0 / g[i, j])}")
    if batch:
        lines.append(f".tran 1 {max(drivers.shape[1] - 1, 1)} 0 1")
    else:
        lines.append(".op")
    lines.append(".end")
    return "\n".join(lines) + "\n"


def _cell_vectors(m: int, n: int) -> list[str]:
    return [f"r_{i}_{j}" for i in range(m) for j in range(n)] + [f"c_{j}_{i}" for i in range(m) for j in range(n)]


def plain_ngspice_cell_voltages(g: np.ndarray, row_ohm: float, col_ohm: float, drivers: np.ndarray) -> np.ndarray:
    """Cell voltages (m, n) of one pulse pattern from its own ngspice ``.op`` (the referee of the transfer matrix)."""
    m, n = g.shape
    ng = session()
    try:
        ng.load(write_deck(g, row_ohm, col_ohm, drivers, title="(one pattern)"))
        raw = ng.run(_cell_vectors(m, n))
    finally:
        ng.clean()
    rows = np.array([raw[f"r_{i}_{j}"][-1] for i in range(m) for j in range(n)])
    cols = np.array([raw[f"c_{j}_{i}"][-1] for i in range(m) for j in range(n)])
    return (rows - cols).reshape(m, n)


class WriteCircuit:
    """The array's write network solved in ngspice once (unit drivers), reused for every pulse pattern."""

    def __init__(self, g: np.ndarray, row_ohm: float, col_ohm: float, region: Optional[tuple] = None):
        """``region`` = (row slice, column slice): the cells whose voltages are kept (default: all)."""
        self.g = np.asarray(g, float)
        if self.g.ndim != 2 or not np.all(self.g > 0):
            raise ConfigError("the write circuit needs a 2-D array of positive conductances")
        if row_ohm < 0 or col_ohm < 0:
            raise ConfigError(f"wire resistance must be >= 0, got {row_ohm}/{col_ohm}")
        self.row_ohm, self.col_ohm = float(row_ohm), float(col_ohm)
        m, n = self.g.shape
        rows, cols = region if region is not None else (slice(0, m), slice(0, n))
        self.rows = np.arange(m)[rows]
        self.cols = np.arange(n)[cols]
        self.ngspice_runs = 0
        if row_ohm == 0 and col_ohm == 0:
            # No wires: every cell sees exactly its row driver minus its column driver.
            t = np.zeros((len(self.rows), len(self.cols), m + n))
            t[np.arange(len(self.rows)), :, self.rows] = 1.0
            t[:, np.arange(len(self.cols)), m + self.cols] = -1.0
            self.transfer = t
            return
        # ngspice's own circuit matrix of the network (exported after one .op whose solution it is held to at
        # 1e-9), factored once; each unit-driver pattern is one more right-hand side (the matrix engine's way).
        reference = 1.0 + 0.01 * np.arange(m + n)          # distinct driver values: each source is identified
        ng = session()
        runs0 = ng.runs
        matrix = ng.circuit_matrix(write_deck(self.g, row_ohm, col_ohm, reference, title="(matrix export)"))
        self.ngspice_runs = ng.runs - runs0
        check = matrix.verify(1e-9)
        if not check.passed:
            raise SimulationError(f"the write network's exported matrix does not reproduce ngspice's .op ({check})")
        sources = [f"vr_{i}#branch" for i in range(m)] + [f"vc_{j}#branch" for j in range(n)]
        rows = np.array([matrix.equation(name) for name in sources])
        if not np.allclose(matrix.rhs[rows], reference, rtol=1e-12):
            raise SimulationError("the write network's right-hand side does not hold the driver voltages where expected")
        rhs = np.zeros((matrix.size, m + n))
        rhs[rows, np.arange(m + n)] = 1.0
        solution = matrix.solve(rhs)
        r_idx = np.array([[matrix.equation(f"r_{i}_{j}") for j in self.cols] for i in self.rows])
        c_idx = np.array([[matrix.equation(f"c_{j}_{i}") for j in self.cols] for i in self.rows])
        self.transfer = solution[r_idx] - solution[c_idx]

    def cell_voltages(self, drivers: np.ndarray) -> np.ndarray:
        """Every kept cell's voltage for one pattern of driver voltages (rows then columns)."""
        return self.transfer @ np.asarray(drivers, float)

    def pattern(self, i: int, j: int, scheme: str, v: float = 1.0) -> np.ndarray:
        """Driver voltages that select cell (i, j) with amplitude v in the V/2 or V/3 scheme."""
        m, n = self.g.shape
        if scheme == "v/2":
            drivers = np.full(m + n, v / 2)
        elif scheme == "v/3":
            drivers = np.concatenate([np.full(m, v / 3), np.full(n, 2 * v / 3)])
        else:
            raise ConfigError(f"write scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
        drivers[i] = v
        drivers[m + j] = 0.0
        return drivers

    def effective_amplitudes(self, scheme: str = "v/2") -> np.ndarray:
        """Per cell: its voltage when it is the selected cell, as a fraction of the nominal pulse."""
        if scheme not in SCHEMES:
            raise ConfigError(f"write scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
        m, n = self.g.shape
        t = self.transfer
        a, b = np.arange(len(self.rows))[:, None], np.arange(len(self.cols))[None, :]
        own_row = t[a, b, self.rows[:, None]]               # T[ij, row i]
        own_col = t[a, b, m + self.cols[None, :]]           # T[ij, col j]
        if scheme == "v/2":
            # drivers V/2·1 + V/2·e_row_i - V/2·e_col_j; equal drivers everywhere move no current (T·1 = 0)
            return 0.5 * (own_row - own_col)
        # drivers V/3·1_rows + 2V/3·1_cols + 2V/3·e_row_i - 2V/3·e_col_j, with T·1_cols = -T·1_rows = -s
        s = t[:, :, :m].sum(axis=2)
        return -s / 3.0 + 2.0 / 3.0 * (own_row - own_col)
