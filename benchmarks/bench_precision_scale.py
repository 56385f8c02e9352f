"""Precision and scale benchmark: HP-INV and BlockAMC at circuit level (ngspice), printed as Markdown tables.

    python benchmarks/bench_precision_scale.py            # n = 16, 32, 64, 128; array size 16, 32, 64
    python benchmarks/bench_precision_scale.py --quick    # n <= 64

Table 1 - HP-INV: one n x n INV array (preset 'rram': 8 levels, A0 = 1e5, op-amp inverters) holds H0; the residual
is formed by the bit-sliced MVM (8 slices x 3 bits, same devices/op-amps, ideal converters, TIA gain calibration),
its arrays tiled to the array size. Systems: SPD, an 8-level-representable matrix plus a full-precision
perturbation with rho(I - H H0^-1) = 0.12 (generic cond-10 SPD matrices diverge at 8 levels; see tests).
Table 2 - BlockAMC with ideal components (preset 'ideal') on SPD cond-10 systems: time, operations, error.
Table 3 - BlockAMC vs one n x n array, both with non-ideal components (preset 'rram'), n = 128 (damped Wishart
matrices W W^T/n + lambda I, like the damped K-FAC factors).
Wall times are single-process on a shared 2-core machine.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amc import AnalogSolver, CircuitConfig, solve_system  # noqa: E402
from workflow.matrices import quantisable_spd  # noqa: E402
from amc.errors import AmcError  # noqa: E402
from amc.solution import equivalent_bits  # noqa: E402


def spd(n: int, seed: int, cond: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q @ np.diag(np.geomspace(1.0, cond, n)) @ q.T


def ops_text(ops: dict) -> str:
    return f"{ops.inv_settles} | {ops.mvm_reads} | {ops.programmings} | {ops.ngspice_runs}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n <= 64 only")
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args(argv)
    sizes = [16, 32, 64] if args.quick else [16, 32, 64, 128]
    arrays = [16, 32, 64]
    rram = CircuitConfig.preset("rram")

    print("## HP-INV (INV: one n x n 'rram' array; MVM: 8 x 3-bit slices tiled to the array size, ideal ADC/DAC)\n")
    print("| n | MVM array | cond | rho | bits after 5 it. | final bits | iterations | wall time (s) "
          "| INV solves | MVM ops | programmings | ngspice runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        h, g = quantisable_spd(n, seed=n)
        for a in arrays:
            if a > n:
                continue
            try:
                sol = solve_system(h, g, method="hp-inv", config=rram, iterations=args.iterations,
                                   mvm={"array_size": a})
            except AmcError as exc:
                print(f"| {n} | {a} | {np.linalg.cond(h):.1f} | - | - | - | - | - | error: {exc} | | | |")
                continue
            hist = sol.history
            b5 = hist[min(5, len(hist) - 1)]["bits"]
            print(f"| {n} | {a} | {np.linalg.cond(h):.1f} | {sol.details['rho']:.3f} | {b5:.1f} | "
                  f"{sol.equivalent_bits:.1f} | {hist[-1]['iteration']} | {sol.wall_time_s:.2f} | {ops_text(sol.operations)} |")
            sys.stdout.flush()

    print("\n## BlockAMC, ideal components (preset 'ideal'), SPD cond 10\n")
    print("| n | array size | depth | leaf arrays | relative error | wall time (s) | setup time (s) "
          "| INV solves | MVM ops | programmings | ngspice runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        h = spd(n, seed=n)
        g = np.random.default_rng(n + 1).standard_normal(n)
        for a in arrays:
            if a >= n:
                continue
            sol = solve_system(h, g, method="blockamc", config="ideal", array_size=a)
            print(f"| {n} | {a} | {sol.details['depth']} | {sol.details['leaves']} | {sol.relative_error:.2e} | "
                  f"{sol.wall_time_s:.2f} | {sol.details['setup_time_s']:.2f} | {ops_text(sol.operations)} |")
            sys.stdout.flush()

    if not args.quick:
        print("\n## Non-ideal components (preset 'rram'), n = 128: BlockAMC vs one 128 x 128 array\n")
        print("| matrix | cond | method | array size | MVM slices | relative error | wall time (s) | INV solves | MVM ops "
              "| programmings |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        n = 128
        for lam in (1.0, 2.0):
            rng = np.random.default_rng(int(lam * 10))
            w = rng.standard_normal((n, n))
            h = w @ w.T / n + lam * np.eye(n)
            g = rng.standard_normal(n)
            label = f"W W^T/n + {lam:g} I"
            cond = np.linalg.cond(h)
            exact = np.linalg.solve(h, g)
            start = time.perf_counter()
            try:
                one = AnalogSolver(rram).solve(h, g)
                err = f"{equivalent_bits(one.x, exact)[0]:.3e}"
            except AmcError as exc:
                err = f"refused: {str(exc)[:60]}"
            print(f"| {label} | {cond:.1f} | one array (direct) | 128 | - | {err} | {time.perf_counter() - start:.2f} "
                  f"| 1 | 0 | 1 |")
            for a, slices in ((16, 1), (32, 1), (64, 1), (32, 4)):
                try:
                    sol = solve_system(h, g, method="blockamc", config=rram, array_size=a,
                                       mvm={"slices": slices, "gain_calibration": slices > 1})
                    o = sol.operations
                    print(f"| {label} | {cond:.1f} | BlockAMC | {a} | {slices} | {sol.relative_error:.3e} | "
                          f"{sol.wall_time_s:.2f} | {o.inv_settles} | {o.mvm_reads} | {o.programmings} |")
                except AmcError as exc:
                    print(f"| {label} | {cond:.1f} | BlockAMC | {a} | {slices} | refused: {str(exc)[:80]} | | | | |")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
