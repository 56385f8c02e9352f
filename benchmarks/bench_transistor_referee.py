"""Transistor-level referee: the CMOS two-stage op-amp against the macromodel fitted to it by `amc characterise`.

For n = 4, 8, 16 the same programmed array (rram-cmos: continuous cells here, so the op-amps are the only error
source, line and cell capacitance in the transients) is solved with the transistor-level amplifiers and with the
fitted macromodel: x error against numpy (operating point), the difference between the two answers, and the
settling time and supply energy of one settle (.tran). Run: python benchmarks/bench_transistor_referee.py
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from amc import AnalogSolver, CircuitConfig
from amc.hw.characterise import characterise_config


def spd(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    return a @ a.T / n + np.eye(n), rng.standard_normal(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,8,16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shunt-fit", action="store_true",
                        help="fit the shunt (datasheet-style) macromodel instead of the Miller one")
    parser.add_argument("--study-control", action="store_true",
                        help="only the 64x64 16-level operating points: behavioural AD823, its macromodel, the "
                             "transistor op-amp")
    args = parser.parse_args()
    if args.study_control:
        study_control(args.seed)
        return
    transistor = CircuitConfig.preset("rram-cmos").replace(**{"device.levels": None})
    figures = characterise_config(transistor.opamp)
    fitted = figures.fitted_macromodel("cmos-2stage-macro")
    if args.shunt_fit:
        # the datasheet-style topology: the output resistance after a shunt dominant pole (no Miller stage)
        fitted = dataclasses.replace(fitted, output_stage_gm_s=None)
    macro = dataclasses.replace(transistor, name="rram-cmos fitted macromodel", opamp=fitted)
    print(figures.report())
    print()
    print("| n | op-amp | x error vs numpy | transistor vs macromodel | settle time | energy / settle | "
          "current limited | slewed | wall time (op + tran) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        h, g = spd(n, args.seed + n)
        exact = np.linalg.solve(h, g)
        xs = {}
        for label, cfg in (("transistor", transistor), ("fitted macromodel", macro)):
            t0 = time.perf_counter()
            solver = AnalogSolver(cfg)
            op = solver.solve(h, g)
            tran = solver.solve(h, g, transient=True)
            wall = time.perf_counter() - t0
            xs[label] = op.x
            diff = "" if label == "transistor" else \
                f"{np.linalg.norm(op.x - xs['transistor']) / np.linalg.norm(exact):.3g}"
            print(f"| {n} | {label} | {op.error_against(exact):.3g} | {diff} | "
                  f"{float(tran.settling_time_s) * 1e9:.4g} ns | {float(tran.energy_j) * 1e9:.4g} nJ | "
                  f"{bool(op.current_limited)} | {bool(tran.slewed)} | {wall:.1f} s |")


def study_control(seed: int = 0) -> None:
    """The 64x64 study's one-step 16-level operating points with the AD823 macromodel instead of the behavioural
    AD823, and with the transistor op-amp (same device draw: 16 levels, 3 % programming error, Jacobi
    equilibration)."""
    n = 64
    h, _ = spd(n, seed)
    rng = np.random.default_rng(seed + 1)
    g = rng.standard_normal((n, 8))
    exact = np.linalg.solve(h, g)
    study = {"device.levels": 16, "device.program_sigma": 0.03, "io.equilibrate": True}
    rows = []
    for preset in ("rram", "rram-macro", "rram-cmos"):
        sol = AnalogSolver(CircuitConfig.preset(preset).replace(**study)).solve(h, g)
        rows.append((preset, sol))
    (_, behavioural), (_, macro), _ = rows
    print()
    print("| 64x64, 16 levels, 3 % programming error, 8 right-hand sides | x error vs numpy | current limited |")
    print("|---|---|---|")
    for preset, sol in rows:
        print(f"| {preset} | {sol.error_against(exact):.4g} | {int(np.sum(sol.current_limited))}/8 |")
    print(f"| behavioural vs macromodel, ||dx|| / ||x|| | {np.linalg.norm(macro.x - behavioural.x) / np.linalg.norm(exact):.3g} | |")


if __name__ == "__main__":
    main()
