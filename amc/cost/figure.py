"""Stacked-bar figure of a ledger: the analog energy split by component, and analog against digital."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from amc.errors import InputError
from amc.cost.ledger import COMPONENTS, Cost

COLOURS = {"opamps": "#1f77b4", "crosspoint array": "#aec7e8", "DAC": "#ff7f0e", "ADC": "#ffbb78",
           "programming": "#d62728", "digital control": "#9467bd", "digital remainder": "#c5b0d5",
           "static": "#8c564b"}


def _scale(values: list[float], unit: str) -> tuple[float, str]:
    top = max(values) if values else 0.0
    for prefix, s in (("", 1.0), ("m", 1e-3), ("µ", 1e-6), ("n", 1e-9), ("p", 1e-12)):
        if top >= s:
            return s, prefix + unit
    return 1e-15, "f" + unit


def plot_costs(analog: Mapping[str, Cost], path, title: str, conditions: str,
               digital: Optional[Mapping[str, tuple[float, float]]] = None) -> Path:
    """Write the figure to ``path``: left, analog energy per entry stacked by component; right (when ``digital``
    maps labels to (time_s, energy_j)), time and energy of every entry on log axes. The title names the preset and
    the subtitle the conditions (dataflow, array size, inverse_every, ...)."""
    if not analog:
        raise InputError("nothing to plot: no analog costs")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(analog)
    ncols = 3 if digital else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4.4), squeeze=False)
    ax = axes[0][0]
    scale, unit = _scale([c.energy_j for c in analog.values()], "J")
    bottom = [0.0] * len(labels)
    for comp in COMPONENTS:
        vals = [analog[l].breakdown.get(comp, 0.0) / scale for l in labels]
        if any(v > 0 for v in vals):
            ax.bar(labels, vals, bottom=bottom, label=comp, color=COLOURS[comp])
            bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel(f"analog energy ({unit})")
    ax.set_title("analog energy by component")
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    if digital:
        everything = {**{l: (c.time_s, c.energy_j) for l, c in analog.items()}, **digital}
        names = list(everything)
        colours = ["#2ca02c" if n in analog else "#7f7f7f" for n in names]
        reference = labels[0]
        for axis, index, what in ((axes[0][1], 0, "time (s)"), (axes[0][2], 1, "energy (J)")):
            # Points, not bars: a bar on a log axis has no true baseline, so its height exaggerates ratios.
            values = [everything[n][index] for n in names]
            axis.scatter(range(len(names)), values, color=colours, s=40, zorder=3)
            for i, (n, v) in enumerate(zip(names, values)):
                ratio = v / everything[reference][index]
                axis.annotate(f"{ratio:.3g}x" if n != reference else "1x (ref.)", (i, v), xytext=(0, 6),
                              textcoords="offset points", ha="center", fontsize=7)
            axis.set_yscale("log")
            lo, hi = min(values), max(values)
            axis.set_ylim(lo / 3, hi * 3)
            axis.set_xlim(-0.5, len(names) - 0.5)
            axis.set_xticks(range(len(names)), names)
            axis.set_ylabel(what)
            axis.set_title(f"{what.split()[0]}: analog (green) vs digital (grey);\nlabels: ratio to {reference}",
                           fontsize=9)
            axis.grid(True, which="major", axis="y", alpha=0.3)
            axis.tick_params(axis="x", labelrotation=30, labelsize=7)
    import textwrap
    wrapped = "\n".join(textwrap.wrap(conditions, 60 * ncols))
    fig.suptitle(f"{title}\n{wrapped}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
