"""One-line account of what the analog hardware did in a run, for summaries, tables and figure labels."""
from __future__ import annotations

from typing import Optional

FALLBACK_LIMIT = 0.01   # above this fraction of solves replaced by exact ones, a result is marked everywhere


def fallback_mark(hardware: Optional[dict]) -> str:
    """'' or a loud marker naming the fallback fraction (more than 1 % of solves replaced by exact numpy)."""
    if not hardware or not hardware.get("solves"):
        return ""
    frac = hardware.get("fallback_fraction", 0.0)
    return f"FALLBACKS {100 * frac:.1f}%" if frac > FALLBACK_LIMIT else ""


def hardware_line(hardware: Optional[dict]) -> str:
    if not hardware:
        return "digital only (no analog arrays)"
    h = hardware
    analog = h.get("analog_error_mean")
    parts = [f"{h['inv_settles']:,} INV settles", f"{h['mvm_reads']:,} MVM reads",
             f"{h['programmings']:,} programmings ({h['cells_programmed']:,} cells)",
             f"{h['conversions']:,} conversions", f"{h['ngspice_runs']:,} ngspice runs",
             f"{h.get('programmings_verified', 0):,} programmings verified by ngspice, "
             f"{h.get('programmings_restamped', 0):,} re-stamped",
             f"{h['digital_flops']:.3g} digital flops beside the arrays",
             "analog error before refinement " + ("n/a" if analog is None else f"{analog:.3g} (mean)"),
             f"fallbacks {h['fallbacks']}/{h['solves']}"]
    cost = h.get("cost") or {}
    if "energy_j" in cost:
        parts.append(f"ledger ({h.get('cost_model')}): {cost['time_s']:.3g} s, {cost['energy_j']:.3g} J of analog work")
    reasons = h.get("fallback_reasons") or {}
    if reasons:
        parts[-1] += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) + ")"
    mark = fallback_mark(h)
    return ("*** " + mark + " *** " if mark else "") + "; ".join(parts)
