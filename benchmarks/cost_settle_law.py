"""Fit of the closed-form settle law (amc/cost/settle.py LAW_OFFSET, ledger.ENERGY_LAW_FACTOR) to the exact linear
model, and the exact model against ngspice transients.

    .venv/bin/python benchmarks/cost_settle_law.py

Random SPD systems (eigenvalues lam_min once, the rest uniform in [1, 2]) mapped to rram-ic (8 levels, op-amp
inverters); systems that map to an unstable loop are skipped, as the solver would refuse them.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from amc.cost import HardwareCostModel, settle_of_matrix  # noqa: E402
from amc.cost.settle import fit_law_offset  # noqa: E402
from amc.errors import AmcError  # noqa: E402
from amc.solver import AnalogSolver  # noqa: E402


def spd(n, seed, lam_min):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([[lam_min], rng.uniform(1.0, 2.0, n - 1)])
    return (q * lam) @ q.T


def main() -> int:
    hw = HardwareCostModel.preset("rram-ic")
    o, tol = hw.circuit.opamp, hw.circuit.simulation.settle_tol
    samples, factors = [], []
    for n in (8, 16, 32, 48):
        for lam in (0.05, 0.2, 1.0):
            for seed in range(2):
                h = spd(n, 100 * n + seed, lam)
                g = np.random.default_rng(seed).standard_normal(n)
                try:
                    s = settle_of_matrix(h, hw, g)
                except AmcError:
                    continue
                samples.append(s)
                factors.append(s.energy_j / (s.time_s * 2 * n * 2 * o.supply_v * o.quiescent_current_a))
    products = [s.time_s * 2 * math.pi * o.gbw_hz * s.lambda_min for s in samples]
    print(f"{len(samples)} systems: t 2 pi GBW lambda_min from {min(products):.3g} to {max(products):.3g}; "
          f"law offset {fit_law_offset(samples, o.gbw_hz, tol):.3g} (ln(1/tol) = {math.log(1 / tol):.3g}); "
          f"energy / (quiescent power x t) mean {np.mean(factors):.4g} ({min(factors):.4g}-{max(factors):.4g})")
    print("exact model against ngspice .tran (amc.solver, transient=True):")
    for n, lam, seed in [(4, 1.0, 11), (8, 0.2, 2), (16, 0.3, 4), (32, 0.5, 5)]:
        h, g = spd(n, seed, lam), np.random.default_rng(seed).standard_normal(n)
        sol = AnalogSolver(hw.circuit).solve(h, g, transient=True)
        s = settle_of_matrix(h, hw, g)
        print(f"  n={n:3d} loop lambda_min {s.lambda_min:.3g}: ngspice {float(sol.settling_time_s) * 1e9:.4g} ns "
              f"{float(sol.energy_j) * 1e12:.4g} pJ; model {s.time_s * 1e9:.4g} ns {s.energy_j * 1e12:.4g} pJ "
              f"({100 * (s.time_s / float(sol.settling_time_s) - 1):+.2f} %, "
              f"{100 * (s.energy_j / float(sol.energy_j) - 1):+.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
