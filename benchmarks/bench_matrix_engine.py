"""Matrix-engine benchmark (issue 9): extract an n x n operator (n right-hand sides, the identity) against one .op.

Prints one Markdown table, every figure measured in this run, ideal preset, SPD matrices:
- one .op: a new AnalogSolver(config).solve(H, g) for one right-hand side (programming, checks, deck, ngspice .op);
- operator, engine: a new AnalogSolver(config).solve(H, I_n) with simulation.engine = "ngspice-matrix" (one ngspice
  .op, its matrix exported, factored and solved for all n columns, column 0 checked against ngspice);
- operator, plain ngspice: the same with simulation.engine = "ngspice" (quasi-static batch), only where it runs in
  well under a minute;
- engine share: time inside ngspice's .op + matrix export vs the rest (parse, factor, solve, checks).
Target: operator (engine) <= 3x one .op at n = 128 and 289.

Re-stamped programmings (issue 19; ``--restamp N ...``, ideal preset and the rram preset's op-amps, 16 levels): the
first programming of a topology measures the array's operator (n unit right-hand sides) through ngspice's .op and
its exported matrix; the second programming (another matrix, another device draw) re-stamps the cells into that
matrix and factors it. Its operator is held to numpy (the inverse of what the array holds, in closed form; exact
with ideal inverters, the rram preset's op-amp inverters add their own gain error) and, up to ``--op-max``, to a
real ngspice .op of the second programmed deck; the re-stamped LU + n solves is timed three ways: the Schur
factorisation the re-stamp uses (dense LU of the crossbar's unknowns), SuperLU and LAPACK's dense LU of everything. Target: second <= 1/10 of the first at 289. Above ``--seed-above`` (289) the full deck's .op would take hours
(n^4.6): the template comes from ngspice's .op of the same circuit with only its diagonal cells
(``amc.hw.restamp.seed``; tests/hw/test_restamp.py holds that path to a real .op at small n), and the "first" column
is that seed's time.

    python benchmarks/bench_matrix_engine.py                 # n = 16 32 64 128 289, and 1-ohm wires up to n = 32
    python benchmarks/bench_matrix_engine.py --wires-max 48  # wire rows up to n = 48
    python benchmarks/bench_matrix_engine.py --restamp 64 128 289 --skip-engine   # re-stamped programmings only
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from amc import AnalogSolver, CircuitConfig
from amc.hw import restamp
from amc.hw.inv_array import InvArray
from amc.hw.netlist import build_deck, output_node
from amc.hw.runner import NgspiceSession, session
from amc.solution import equivalent_bits
from amc.blas import limit_blas_threads


def spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    return a @ a.T / n + np.eye(n)


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def measure(n: int, wires: float, repeats: int, plain_max: int) -> dict:
    base = CircuitConfig.preset("ideal")
    if wires:
        base = base.replace(**{"wires.row_ohm": wires, "wires.col_ohm": wires})
    engine_cfg = base.replace(**{"simulation.engine": "ngspice-matrix"})
    plain_cfg = base.replace(**{"simulation.engine": "ngspice"})
    h = spd(n, 0)
    g = np.random.default_rng(n).standard_normal(n)
    eye = np.eye(n)
    # ngspice's share of an engine call: time spent in circuit_matrix (load, .op, mdump, mrdump, read-back).
    inside = []
    original = NgspiceSession.circuit_matrix

    def counted(self, deck):
        t, out = timed(lambda: original(self, deck))
        inside.append(t)
        return out

    ops, extracts = [], []
    NgspiceSession.circuit_matrix = counted
    try:
        for _ in range(repeats):  # interleaved, so drifts of this shared machine's speed hit both alike
            ops.append(timed(lambda: AnalogSolver(plain_cfg).solve(h, g))[0])
            t, sol = timed(lambda: AnalogSolver(engine_cfg).solve(h, eye))
            extracts.append(t)
            if sol.engine_fallbacks:
                print(f"n={n}: {sol.engine_fallbacks} columns fell back to ngspice", file=sys.stderr)
            error = equivalent_bits(sol.x, np.linalg.inv(h))[0]
    finally:
        NgspiceSession.circuit_matrix = original
    row = dict(n=n, wires=wires, op=float(np.median(ops)), extract=float(np.median(extracts)),
               ngspice=float(np.median(inside)), error=error, plain=None)
    if n <= plain_max:
        row["plain"] = timed(lambda: AnalogSolver(plain_cfg).solve(h, eye))[0]
    return row


def restamp_row(n: int, preset: str, op_max: int, dense_max: int, seed_above: int) -> dict:
    """First (ngspice .op) and second (re-stamped) programming of one topology: times and errors."""
    cfg = CircuitConfig.preset(preset)
    if preset != "ideal":
        cfg = cfg.replace(**{"device.levels": 16})
    restamp.reset()
    seeded = n > seed_above
    if seeded:      # the full deck's .op would take hours: the template from the diagonal-cells deck's .op
        t_first, _ = timed(lambda: restamp.seed(cfg, n))
    else:
        first = InvArray(cfg, rng=np.random.default_rng(1)).program(spd(n, 1))
        t_first, _ = timed(first.response)
    second = InvArray(cfg, rng=np.random.default_rng(2)).program(spd(n, 2))
    t_second, response = timed(second.response)
    assert second.counts.programmings_restamped == 1, "the second programming was not re-stamped"
    # What the array computes in closed form: V = -(G0 M)^-1 I with M its effective matrix (finite gain included).
    closed = -np.linalg.inv(second.mapped.effective_conductance(cfg.opamp.gain))
    err_numpy = float(np.linalg.norm(response.r_out - closed) / np.linalg.norm(closed))
    err_op = t_op = None
    if n <= op_max:       # the referee: ngspice's own .op of the second programmed deck, 0.1 V of output
        currents = np.random.default_rng(3).standard_normal(n)
        currents *= 0.1 / np.max(np.abs(response.r_out @ currents))
        ng = session()
        t0 = time.perf_counter()
        ng.load(build_deck(second.mapped, currents, cfg))
        raw = ng.run([output_node(j) for j in range(n)])
        ng.clean()
        t_op = time.perf_counter() - t0
        want = np.array([raw[output_node(j)][-1] for j in range(n)])
        err_op = float(np.max(np.abs(response.r_out @ currents - want)) / np.max(np.abs(want)))
    template = next(iter(restamp.store().templates.values()))
    factors = {}
    for kind in ("schur", "sparse", "dense"):   # the re-stamped LU and its n unit right-hand sides, three ways
        if kind == "dense" and n > dense_max or kind == "schur" and not template.schur():
            continue
        rhs = np.zeros((template.system.size, n))
        rhs[[template.system.equation(f"row_{i}") for i in range(n)], np.arange(n)] = 1e-6
        factors[kind] = timed(lambda: template.restamp(second.mapped, kind).solve(rhs))[0]
    return dict(seeded=seeded, factors=factors, n=n, preset=preset, first=t_first, second=t_second, err_numpy=err_numpy, err_op=err_op, t_op=t_op,
                unknowns=template.system.size, mbytes=restamp.store().nbytes / 1e6)


def print_restamp(rows: list) -> None:
    print("| n | op-amps | unknowns | first programming: ngspice .op + export + n rhs (s) | second: re-stamped + n rhs "
          "(s) | ratio second / first (target <= 0.1 at 289) | operator error vs numpy closed form | "
          "vs ngspice .op of the second deck | template (MB) | LU + n solves: Schur / SuperLU / dense LAPACK (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        op = "not run" if r["err_op"] is None else f"{r['err_op']:.1e} (.op {r['t_op']:.1f} s)"
        dense, schur = (f"{r['factors'][k]:.3f}" if k in r["factors"] else "not run" for k in ("dense", "schur"))
        first = f"{r['first']:.2f}" + (" (seed: diagonal cells only)" if r["seeded"] else "")
        print(f"| {r['n']} | {r['preset']} | {r['unknowns']} | {first} | {r['second']:.3f} | "
              f"{r['second'] / r['first']:.4f} | {r['err_numpy']:.1e} | {op} | {r['mbytes']:.1f} | "
              f"{schur} / {r['factors']['sparse']:.3f} / {dense} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[16, 32, 64, 128, 289])
    parser.add_argument("--wires-max", type=int, default=32, help="largest n for the 1-ohm wire rows")
    parser.add_argument("--plain-max", type=int, default=64, help="largest n for the plain-ngspice extraction")
    parser.add_argument("--restamp", nargs="*", type=int, default=[], help="sizes for the re-stamped-programming "
                        "rows (first programming through ngspice's .op, second re-stamped)")
    parser.add_argument("--restamp-presets", nargs="*", default=["ideal", "rram"])
    parser.add_argument("--op-max", type=int, default=289, help="largest n whose re-stamped programming is also "
                        "held to a real ngspice .op")
    parser.add_argument("--seed-above", type=int, default=289, help="above this n the template comes from the .op "
                        "of a deck with the diagonal cells only (amc.hw.restamp.seed), not the first programming's")
    parser.add_argument("--dense-max", type=int, default=289, help="largest n for the dense-LAPACK comparison")
    parser.add_argument("--skip-engine", action="store_true", help="only the re-stamped-programming rows")
    args = parser.parse_args()
    limit_blas_threads()        # one BLAS thread: on this shared 2-core machine more threads only spin
    if args.restamp:
        rows = []
        for n in args.restamp:
            for preset in args.restamp_presets:
                rows.append(restamp_row(n, preset, args.op_max, args.dense_max, args.seed_above))
                r = rows[-1]
                print(f"n={n} {preset}: first {r['first']:.2f} s, second {r['second']:.3f} s", file=sys.stderr)
        print_restamp(rows)
        if args.skip_engine:
            return
    rows = []
    for wires in (0.0, 1.0):
        for n in args.sizes:
            if wires and n > args.wires_max:
                continue
            repeats = 3 if n <= 64 else (2 if n <= 128 else 1)
            rows.append(measure(n, wires, repeats, args.plain_max if not wires else min(args.plain_max, 16)))
            r = rows[-1]
            print(f"n={n} wires={wires:g}: op {r['op']:.3f} s, operator {r['extract']:.3f} s", file=sys.stderr)
    print("| n | wires (ohm/segment) | one .op (s) | operator, engine (s) | ratio (target <= 3 at 128, 289) "
          "| of which ngspice .op + export (s) | operator, plain ngspice (s) | rel. error vs numpy inverse |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        plain = f"{r['plain']:.2f} ({r['plain'] / r['op']:.1f}x)" if r["plain"] is not None else "not run"
        print(f"| {r['n']} | {r['wires']:g} | {r['op']:.3f} | {r['extract']:.3f} | {r['extract'] / r['op']:.2f} "
              f"| {r['ngspice']:.3f} | {plain} | {r['error']:.1e} |")


if __name__ == "__main__":
    main()
