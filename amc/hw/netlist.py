"""ngspice deck of the closed-loop inversion circuit, as plain text a person can read and rerun.

Node names: ``row_i`` is row line i at its op-amp (virtual ground), ``out_j`` is op-amp j's output driving
column j of G+, ``nout_j`` its inverted copy driving column j of G-. With wire resistance the array becomes a
grid: ``r_i_k`` is row i at crosspoint k (k < n: G+ column k, k >= n: G- column k - n) and ``cp_j_i`` /
``cn_j_i`` are G+/G- column j at row i.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from amc.config import CircuitConfig
from amc.hw import opamp_models
from amc.hw.mapping import MappedArray

# Shipped inside the package so a non-editable install has it; netlists/amc_opamps.lib is the same file for users.
LIBRARY_PATH = Path(__file__).resolve().parent.parent / "data" / "amc_opamps.lib"
NO_SATURATION_V = 1e30


def input_source_name(i: int) -> str:
    return f"iin_{i}"


def output_node(j: int) -> str:
    return f"out_{j}"


def input_node(i: int) -> str:
    """The node input source i injects into (row line i at its op-amp)."""
    return f"row_{i}"


def crosspoint_nodes(n: int, wires: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Node names (n, n) at both ends of every crosspoint resistor, as build_deck writes them:
    (row end of rp_i_j, column end of rp_i_j, row end of rn_i_j, column end of rn_i_j)."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    if wires:
        return (np.vectorize(lambda a, b: f"r_{a}_{b}")(i, j), np.vectorize(lambda a, b: f"cp_{b}_{a}")(i, j),
                np.vectorize(lambda a, b: f"r_{a}_{n + b}")(i, j), np.vectorize(lambda a, b: f"cn_{b}_{a}")(i, j))
    row = np.vectorize(lambda a: f"row_{a}")(i)
    return row, np.vectorize(output_node)(j), row.copy(), np.vectorize(lambda b: f"nout_{b}")(j)


@dataclass(frozen=True)
class OperatingPoint:
    """DC operating point: the settled state of one right-hand side."""

    def card(self) -> str:
        return ".op"

    def __repr__(self) -> str:
        return f"OperatingPoint({self.card()})"


@dataclass(frozen=True)
class TransientSpec:
    """Dynamic transient of one right-hand side from zero initial state (settling time, energy)."""

    step_s: float
    stop_s: float
    # False: uic, all-zero capacitor states with the inputs already applied (a step at t = 0; the behavioural
    # model's zero state is its operating point). True: start from the operating point with zero inputs and step
    # the inputs within one time step (a transistor-level amplifier must start biased).
    from_operating_point: bool = False

    def card(self) -> str:
        if self.from_operating_point:
            return f".tran {_fmt(self.step_s)} {_fmt(self.stop_s)} 0 {_fmt(self.step_s)}"
        return f".tran {_fmt(self.step_s)} {_fmt(self.stop_s)} 0 {_fmt(self.step_s)} uic"

    def __repr__(self) -> str:
        return f"Transient({self.card()})"


Transient = TransientSpec


@dataclass(frozen=True)
class QuasiStaticBatch:
    """k right-hand sides as one pole-free transient: right-hand side r at t = r, every time point an operating
    point of the same programmed array (ngspice orders its matrix once per batch)."""

    k: int

    def card(self) -> str:
        return f".tran 1 {max(self.k - 1, 1)} 0 1"

    def command(self) -> str:
        return self.card()[1:]

    def __repr__(self) -> str:
        return f"QuasiStaticBatch({self.card()})"


def _fmt(value: float) -> str:
    return f"{value:.17g}"


def opamp_params(config: CircuitConfig) -> str:
    o = config.opamp
    gbw = o.gbw_hz if o.gbw_hz is not None else 1.0  # no pole: C1 is open at DC and transients are refused
    vsat = o.v_sat if o.v_sat is not None else NO_SATURATION_V
    return (f"A0={_fmt(o.gain)} GBW={_fmt(gbw)} VSAT={_fmt(vsat)} P={_fmt(o.saturation_sharpness)} "
            f"VOS={_fmt(o.offset_v)} IQ={_fmt(o.quiescent_current_a)}")


@functools.lru_cache(maxsize=1)
def model_library() -> str:
    """The op-amp and inverter subcircuits, as text to inline in a deck."""
    return LIBRARY_PATH.read_text()


def pwl_points(values: np.ndarray) -> str:
    """Input waveform of the quasi-static batch: right-hand side r is applied at t = r seconds (linear in between)."""
    return " ".join(f"{r} {_fmt(v)}" for r, v in enumerate(values))


def batch_analysis(k: int) -> str:
    """The interactive command of a quasi-static batch over k right-hand sides."""
    return QuasiStaticBatch(k).command()


G_SCALE_NOT_RECORDED = "max|g| = not recorded (the solver scales each right-hand side by its own max|g|)"


def with_g_scale(deck: str, g_scale: float) -> str:
    """A solver-built deck (one right-hand side) with max|g| written into its header, to keep beside results."""
    return deck.replace(G_SCALE_NOT_RECORDED, f"max|g| = {g_scale:.17g}", 1)


def build_deck(mapped: MappedArray, currents: np.ndarray, config: CircuitConfig,
               transient: Optional[TransientSpec] = None, library: Optional[str] = None,
               title: str = "amc-cosim closed-loop inversion (INV) circuit", g_scale: Optional[float] = None,
               equilibration: Optional[np.ndarray] = None) -> str:
    """Return the deck for input currents in amperes: shape (n,) for one right-hand side (.op, or .tran with
    ``transient``), or (n, k) for a quasi-static batch.

    The op-amp models are inlined so the deck runs with ``ngspice -b`` from any directory; ``library`` names a
    file to ``.include`` instead. ``g_scale`` (max|g|) and ``equilibration`` (the diagonal d of a Jacobi-scaled
    array) go into the header so a reader can turn the output voltages back into x.

    The batch deck uses the pole-free op-amp model and piecewise-linear inputs that visit right-hand side r at
    t = r: every time point is an operating point of one programmed array, and ngspice orders its sparse matrix
    once for the whole batch instead of once per .op (that ordering dominates a dense crossbar's solve).
    """
    n = mapped.n
    currents = np.asarray(currents, dtype=float)
    batch = currents.ndim == 2 and currents.shape[1] > 1
    if batch and transient is not None:
        raise ValueError("a dynamic transient takes one right-hand side at a time")
    currents = currents.reshape(n, -1) if batch else currents.reshape(n)
    o, w = config.opamp, config.wires
    behavioural = opamp_models.is_behavioural(o)
    if transient is not None and not behavioural:
        transient = dataclasses.replace(transient, from_operating_point=True)
    i0 = float(np.max(np.abs(currents)))
    scale = "max|g|" if g_scale is None else f"{g_scale:.17g}"
    lines = [
        f"* {title}",
        f"* n = {n}, G0 = {mapped.g0:.17g} S per unit of H, I0 = max|I| = {i0:.17g} A, "
        + (G_SCALE_NOT_RECORDED if g_scale is None else f"max|g| = {g_scale:.17g}")
        + (f", {currents.shape[1]} right-hand sides (RHS r at t = r s)" if batch else ""),
        f"* Solution: x_j = -V(out_j) * G0 / I0 * {scale}  (the steady state is V = -(G0 H)^-1 I, I = I0 g / max|g|)",
    ]
    if equilibration is not None:
        d = " ".join(f"{v:.17g}" for v in equilibration)
        lines += ["* Equilibrated: the array holds D H D and the inputs are D g; multiply x_j above by d_j:",
                  f"* d = {d}"]
    lines += [
        f"* {config.describe()}",
        f"* device window {config.device.g_min:g}..{config.device.g_max:g} S; mapping G+ - G- = G0*H",
    ]
    if library is not None:
        lines.append(f'.include "{library}"')
    else:
        lines += ["* ---- op-amp models (amc/data/amc_opamps.lib, inlined so the deck runs anywhere) ----",
                  *model_library().strip().splitlines(), "* ---- end of models ----"]
    if not behavioural:
        lines += [f"* ---- op-amp model '{o.model}' ({o.name}), inlined ----",
                  *opamp_models.library_text(o).splitlines(), "* ---- end of op-amp model ----"]
    lines += [
        f"vcc vcc 0 DC {_fmt(o.supply_v)}",
        f"vee vee 0 DC {_fmt(-o.supply_v)}",
        "* input currents injected into the row lines",
    ]
    if batch:
        lines += [f"{input_source_name(i)} 0 row_{i} DC 0 PWL({pwl_points(currents[i])})" for i in range(n)]
    elif transient is not None and transient.from_operating_point:
        lines += [f"{input_source_name(i)} 0 row_{i} DC 0 PWL(0 0 {_fmt(transient.step_s)} {_fmt(currents[i])})"
                  for i in range(n)]
    else:
        lines += [f"{input_source_name(i)} 0 row_{i} DC {_fmt(currents[i])}" for i in range(n)]
    params = opamp_params(config)
    model = "amc_opamp_dc" if batch else "amc_opamp"
    lines.append("* one op-amp per row: row line to the inverting input, output drives column j")
    if behavioural:
        lines += [f"xamp_{i} 0 row_{i} {output_node(i)} vcc vee {model} {params}" for i in range(n)]
    else:
        # A 0 V source after each output measures the current it delivers (current-limit flags).
        for i in range(n):
            lines += [opamp_models.instance(f"xamp_{i}", dict(inp="0", inm=f"row_{i}", out=f"oa_{i}", vcc="vcc",
                                                              vee="vee"), o),
                      f"{amp_sense_source(i)} oa_{i} {output_node(i)} DC 0"]
    lines.append(f"* unity-gain inverters make -V_j for the G- array ({config.inverter.kind})")
    if config.inverter.kind == "ideal":
        lines += [f"xinv_{j} {output_node(j)} nout_{j} vcc vee amc_inverter_ideal IQ={_fmt(o.quiescent_current_a)}"
                  for j in range(n)]
    else:
        r = _fmt(config.inverter.resistance_ohm)
        for j in range(n):
            lines += [f"rinvin_{j} {output_node(j)} inv_{j} {r}",
                      f"rinvfb_{j} inv_{j} nout_{j} {r}"]
            if behavioural:
                lines.append(f"xinv_{j} 0 inv_{j} nout_{j} vcc vee {model} {params}")
            else:
                lines += [opamp_models.instance(f"xinv_{j}", dict(inp="0", inm=f"inv_{j}", out=f"oi_{j}", vcc="vcc",
                                                                  vee="vee"), o),
                          f"{inverter_sense_source(j)} oi_{j} nout_{j} DC 0"]
    if w.enabled:
        lines.append(f"* crosspoint array on a wire grid ({w.row_ohm:g} ohm per row segment, {w.col_ohm:g} per column "
                     "segment): rp_i_j = 1/G+_ij from r_i_j to cp_j_i, rn_i_j = 1/G-_ij from r_i_(n+j) to cn_j_i; "
                     "row i runs row_i -> r_i_0 .. r_i_(2n-1), column j runs out_j (nout_j) -> cp_j_0 (cn_j_0) ..")
    else:
        lines.append("* crosspoint array: rp_i_j = 1/G+_ij (row i to out_j), rn_i_j = 1/G-_ij (row i to nout_j)")
    lines += crossbar(mapped.g_pos, mapped.g_neg, [output_node(j) for j in range(n)], [f"nout_{j}" for j in range(n)],
                      w.row_ohm if w.enabled else None, w.col_ohm)
    if transient is not None and w.has_capacitance:
        lines += parasitic_capacitors(n, config)
    saves = " ".join(f"v({output_node(j)})" for j in range(n))
    if not behavioural:
        saves += " " + " ".join(f"i({s})" for s in output_sense_sources(n, config))
    lines.append(f".save {saves} i(vcc) i(vee)")
    analysis = QuasiStaticBatch(currents.shape[1]) if batch else (transient or OperatingPoint())
    lines.append(analysis.card())
    # `ngspice -b deck.cir` prints only what is requested (.op prints the saved nodes by itself); the shared library
    # ignores .print.
    if batch or transient is not None:
        lines.append(f".print tran {saves} i(vcc) i(vee)")
    lines.append(".end")
    return "\n".join(lines) + "\n"


def amp_sense_source(i: int) -> str:
    return f"vio_{i}"


def inverter_sense_source(j: int) -> str:
    return f"vjo_{j}"


def output_sense_sources(n: int, config: CircuitConfig) -> list[str]:
    """The 0 V sources that carry every op-amp's output current (non-behavioural models only)."""
    names = [amp_sense_source(i) for i in range(n)]
    if config.inverter.kind != "ideal":
        names += [inverter_sense_source(j) for j in range(n)]
    return names


def parasitic_capacitors(n: int, config: CircuitConfig) -> list[str]:
    """Line capacitance to ground (per crosspoint segment) and cell capacitance across every cell, for .tran decks.

    On a wire grid each grid node carries one segment's capacitance; without wires the line is one node, carrying
    all its segments (2n per row, n per column line of G+ and of G-).
    """
    w = config.wires
    lines = [f"* parasitics: {w.row_cap_f:g} F per row segment, {w.col_cap_f:g} F per column segment, {w.cell_cap_f:g} F"
             " per cell (transient decks only; open at an operating point)"]
    if w.row_cap_f > 0:
        if w.enabled:
            lines += [f"cwr_{i}_{k} r_{i}_{k} 0 {_fmt(w.row_cap_f)}" for i in range(n) for k in range(2 * n)]
        else:
            lines += [f"cwr_{i} row_{i} 0 {_fmt(2 * n * w.row_cap_f)}" for i in range(n)]
    if w.col_cap_f > 0:
        if w.enabled:
            lines += [f"cw{p}_{j}_{i} {p}_{j}_{i} 0 {_fmt(w.col_cap_f)}" for p in ("cp", "cn") for j in range(n)
                      for i in range(n)]
        else:
            lines += [f"cwc_{j} {output_node(j)} 0 {_fmt(n * w.col_cap_f)}" for j in range(n)]
            lines += [f"cwn_{j} nout_{j} 0 {_fmt(n * w.col_cap_f)}" for j in range(n)]
    if w.cell_cap_f > 0:
        a_pos, b_pos, a_neg, b_neg = crosspoint_nodes(n, w.enabled)
        for i in range(n):
            for j in range(n):
                lines.append(f"ccp_{i}_{j} {a_pos[i, j]} {b_pos[i, j]} {_fmt(w.cell_cap_f)}")
                lines.append(f"ccn_{i}_{j} {a_neg[i, j]} {b_neg[i, j]} {_fmt(w.cell_cap_f)}")
    return lines


def crossbar(g_pos: np.ndarray, g_neg: np.ndarray, pos_drivers: list, neg_drivers: list,
             row_ohm: Optional[float] = None, col_ohm: float = 0.0) -> list[str]:
    """The differential crosspoint array of every deck (INV and MVM): rp_i_j = 1/G+_ij from row i to the node that
    drives column j of G+ (``pos_drivers[j]``), rn_i_j = 1/G-_ij likewise for G-.

    With ``row_ohm`` (wires on) the cells sit on a resistive grid: row i runs row_i -> r_i_0 .. r_i_(2n-1) (G+ then
    G-), column j runs from its driver down cp_j_0 .. (cn_j_0 ..). A zero segment resistance on one kind of line is
    modelled as 1 micro-ohm so the grid stays one netlist.
    """
    m, n = g_pos.shape
    lines = []
    if row_ohm is None:
        for i in range(m):
            lines += [f"rp_{i}_{j} row_{i} {pos_drivers[j]} {_fmt(1.0 / g_pos[i, j])}" for j in range(n)]
            lines += [f"rn_{i}_{j} row_{i} {neg_drivers[j]} {_fmt(1.0 / g_neg[i, j])}" for j in range(n)]
        return lines
    rr = _fmt(max(row_ohm, 1e-6))
    rc = _fmt(max(col_ohm, 1e-6))
    for i in range(m):
        previous = f"row_{i}"
        for k in range(2 * n):
            node = f"r_{i}_{k}"
            lines.append(f"rwr_{i}_{k} {previous} {node} {rr}")
            previous = node
    for j in range(n):
        for prefix, driver in (("cp", pos_drivers[j]), ("cn", neg_drivers[j])):
            previous = driver
            for i in range(m):
                node = f"{prefix}_{j}_{i}"
                lines.append(f"rw{prefix}_{j}_{i} {previous} {node} {rc}")
                previous = node
    for i in range(m):
        for j in range(n):
            lines.append(f"rp_{i}_{j} r_{i}_{j} cp_{j}_{i} {_fmt(1.0 / g_pos[i, j])}")
            lines.append(f"rn_{i}_{j} r_{i}_{n + j} cn_{j}_{i} {_fmt(1.0 / g_neg[i, j])}")
    return lines


def standalone(deck: str) -> str:
    """The deck as an artefact for ``ngspice -b``: an .op deck gets a control block that prints the n outputs and x
    (one line each) instead of ngspice's listing of every node and device (~1,400 lines at n = 32); transient decks
    already print only their .print table. Only for decks written to disk: the solver loads decks without it."""
    if "\n.op\n" not in deck or ".control" in deck:
        return deck
    header = parse_header(deck)
    n = header["n"]
    outs = " ".join(f"v({output_node(j)})" for j in range(n))
    lines = ["* `ngspice -b` runs this block (and not the full listing): the op-amp outputs, then x from the header",
             ".control", "set numdgt=12", "op", f"print {outs}"]
    if header.get("g_scale") is not None:
        d = header.get("d") or [1.0] * n
        for j in range(n):
            k = header["g0"] / header["i0"] * header["g_scale"] * d[j]
            lines.append(f"let x_{j} = -v({output_node(j)}) * {k:.17g}")
        lines.append("print " + " ".join(f"x_{j}" for j in range(n)))
    lines += ["quit 0", ".endc"]      # quit: exit code 0 although the deck holds no dot-analysis of its own
    deck = deck.replace("\n.op\n", "\n* .op: run by the control block below\n", 1)
    return deck.replace("\n.end\n", "\n" + "\n".join(lines) + "\n.end\n", 1)


def parse_header(deck: str) -> dict:
    """n, G0, I0, max|g| (None when not recorded) and the equilibration d from a deck's header (build_deck)."""
    import re
    head = "\n".join(line for line in deck.splitlines()[:12] if line.startswith("*"))
    found = re.search(r"\* n = (\d+), G0 = (\S+) S per unit of H, I0 = max\|I\| = (\S+) A, (max\|g\| = (\S+))?", head)
    if not found:
        raise ValueError("no amc deck header (n, G0, I0) in its first lines")
    n, g0, i0 = int(found.group(1)), float(found.group(2)), float(found.group(3).rstrip(","))
    g_scale = None
    if found.group(5) and found.group(5) != "not":
        g_scale = float(found.group(5).rstrip(","))
    d = re.search(r"^\* d = (.+)$", head, re.M)
    return {"n": n, "g0": g0, "i0": i0, "g_scale": g_scale,
            "d": [float(v) for v in d.group(1).split()] if d else None}
