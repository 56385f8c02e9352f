"""Matrix-engine benchmark (issue 9): extract an n x n operator (n right-hand sides, the identity) against one .op.

Prints one Markdown table, every figure measured in this run, ideal preset, SPD matrices:
- one .op: a new AnalogSolver(config).solve(H, g) for one right-hand side (programming, checks, deck, ngspice .op);
- operator, engine: a new AnalogSolver(config).solve(H, I_n) with simulation.engine = "ngspice-matrix" (one ngspice
  .op, its matrix exported, factored and solved for all n columns, column 0 checked against ngspice);
- operator, plain ngspice: the same with simulation.engine = "ngspice" (quasi-static batch), only where it runs in
  well under a minute;
- engine share: time inside ngspice's .op + matrix export vs the rest (parse, factor, solve, checks).
Target: operator (engine) <= 3x one .op at n = 128 and 289.

    python benchmarks/bench_matrix_engine.py                 # n = 16 32 64 128 289, and 1-ohm wires up to n = 32
    python benchmarks/bench_matrix_engine.py --wires-max 48  # wire rows up to n = 48
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from amc import AnalogSolver, CircuitConfig
from amc.hw.runner import NgspiceSession


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
            error = sol.relative_error(np.linalg.inv(h))
    finally:
        NgspiceSession.circuit_matrix = original
    row = dict(n=n, wires=wires, op=float(np.median(ops)), extract=float(np.median(extracts)),
               ngspice=float(np.median(inside)), error=error, plain=None)
    if n <= plain_max:
        row["plain"] = timed(lambda: AnalogSolver(plain_cfg).solve(h, eye))[0]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[16, 32, 64, 128, 289])
    parser.add_argument("--wires-max", type=int, default=32, help="largest n for the 1-ohm wire rows")
    parser.add_argument("--plain-max", type=int, default=64, help="largest n for the plain-ngspice extraction")
    args = parser.parse_args()
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
