"""Where analog K-FAC wins and where it cannot: digital/analog time and energy ratios of one layer's K-FAC work
against factor size, loop lambda_min and cell levels, for the equal-technology engine, this CPU and the GPU model.

The workload is one square layer (A and G factors both d x d, d right-hand sides each per step, inverse_every 10)
on one-step INV arrays of ``array_size`` (BlockAMC above it). Levels enter through write-verify: ASSUMPTION, the
pulses per cell grow with the bits a cell must hold, 10 x log2(levels) / 3 (10 pulses at 8 levels, presets.
WriteVerifyModel); the settle itself follows lambda_min, which the levels change only through the mapped matrix
(give the measured lambda_min of a configuration, as amc cost training --study does).
"""
from __future__ import annotations

import dataclasses
import math

from amc.cost.digital import GpuModel, gpu_kfac, measure_cpu_kfac
from amc.cost.kfac import kfac_step_cost
from amc.cost.node import DigitalNode
from amc.cost.presets import HardwareCostModel
from amc.cost.verdict import engine_entry
from amc.cost.workloads import Dataflow, LayerFactors
from amc.errors import InputError

BASELINES = ("digital_same_node", "cpu", "gpu")


def pulses_for_levels(levels: int, base_pulses: float = 10.0) -> float:
    if not isinstance(levels, int) or levels < 2:
        raise InputError(f"levels must be an integer >= 2, got {levels!r}")
    return base_pulses * math.log2(levels) / 3.0


def breakeven_grid(sizes, lambdas, levels, hw: HardwareCostModel, gpu: GpuModel = GpuModel(),
                   array_size: int = 128, inverse_every: int = 10, cpu_repeats: int = 2,
                   precision: str = "fp32") -> list[dict]:
    """One row per (size, lambda_min, levels): analog and the three baselines' time and energy, and the ratios
    digital / analog (> 1: analog wins)."""
    if not sizes or not lambdas or not levels:
        raise InputError("breakeven needs at least one size, one lambda_min and one level count")
    for lam in lambdas:
        if not lam > 0:
            raise InputError(f"lambda_min must be positive, got {lam!r}")
    rows = []
    for d in sizes:
        if not isinstance(d, int) or d < 2:
            raise InputError(f"factor size must be an integer >= 2, got {d!r}")
        layer = [LayerFactors("layer", d, d)]
        cpu = measure_cpu_kfac(layer, inverse_every, repeats=cpu_repeats, reference=False)
        g = gpu_kfac(layer, inverse_every, gpu)
        for lev in levels:
            hw_l = hw.replace(write=dataclasses.replace(hw.write, pulses_per_cell=pulses_for_levels(lev)))
            for lam in lambdas:
                a = kfac_step_cost(layer, hw_l, Dataflow("direct"), array_size, inverse_every, float(lam))
                node = DigitalNode(precision=precision, units=sum(a.array_sizes))
                e = engine_entry(layer, inverse_every, node, hw.static.logic_leakage_fraction)
                digital = {"digital_same_node": (e["time_s"], e["energy_j"]), "cpu": (cpu.time_s, cpu.energy_j),
                           "gpu": (g.time_s, g.energy_j)}
                row = {"size": d, "lambda_min": float(lam), "levels": lev, "analog_time_s": a.per_step.time_s,
                       "analog_energy_j": a.per_step.energy_j}
                for name, (t, en) in digital.items():
                    row[f"{name}_time_s"], row[f"{name}_energy_j"] = t, en
                    row[f"{name}_time_ratio"] = t / a.per_step.time_s
                    row[f"{name}_energy_ratio"] = en / a.per_step.energy_j
                rows.append(row)
    return rows


def plot_breakeven(rows: list[dict], path, levels: int, conditions: str):
    """Heat maps of log10(digital / analog) against size and lambda_min (one level count), time above, energy
    below, one column per baseline; the contour at ratio 1 is the break-even line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    sel = [r for r in rows if r["levels"] == levels]
    if not sel:
        raise InputError(f"no rows at {levels} levels to plot")
    sizes = sorted({r["size"] for r in sel})
    lams = sorted({r["lambda_min"] for r in sel})
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), squeeze=False)
    for j, base in enumerate(BASELINES):
        for i, what in enumerate(("time", "energy")):
            z = np.array([[math.log10(next(r for r in sel if r["size"] == d and r["lambda_min"] == lam)
                                      [f"{base}_{what}_ratio"]) for d in sizes] for lam in lams])
            ax = axes[i][j]
            lim = max(1.0, float(np.max(np.abs(z))))
            mesh = ax.pcolormesh(range(len(sizes)), range(len(lams)), z, cmap="RdBu", vmin=-lim, vmax=lim,
                                 shading="nearest")
            if z.min() < 0 < z.max():
                ax.contour(range(len(sizes)), range(len(lams)), z, levels=[0.0], colors="k", linewidths=1.5)
            for (yi, xi), v in np.ndenumerate(z):
                ax.text(xi, yi, f"{10 ** v:.2g}", ha="center", va="center", fontsize=6)
            ax.set_xticks(range(len(sizes)), [str(d) for d in sizes], fontsize=7)
            ax.set_yticks(range(len(lams)), [f"{lam:g}" for lam in lams], fontsize=7)
            ax.set_xlabel("factor size d")
            ax.set_ylabel("loop λ_min")
            ax.set_title(f"{what}: {base.replace('_', ' ')} / analog", fontsize=9)
            fig.colorbar(mesh, ax=ax, label="log10 ratio (>0: analog wins)")
    import textwrap
    fig.suptitle(f"K-FAC break-even, {levels} levels: digital / analog per step (blue: analog wins; black line: "
                 f"ratio 1)\n" + "\n".join(textwrap.wrap(conditions, 170)), fontsize=9)
    fig.tight_layout()
    from pathlib import Path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
