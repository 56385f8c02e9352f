"""The four-way verdict of a K-FAC training step: analog arrays, the equal-technology digital engine, this CPU and
the GPU model -- per step and, with a finished study, to the target accuracy.

Every entry is ``{"time_s", "energy_j", "area_mm2" (or None), "breakdown": {part: J}}`` with the breakdown summing
to energy_j. The preconditioner (K-FAC inverse and apply work) is what differs between entries; with a study the
rest of the training step (forward, backward, sampled backward, factor statistics: to_target.CnnShape) is priced on
a digital baseline and added, so energy and time to target compare whole runs.
"""
from __future__ import annotations

from typing import Optional

from amc.cost.digital import GpuModel, gpu_kfac, measure_cpu_kfac
from amc.cost.kfac import KfacCost
from amc.cost.node import DigitalNode, kfac_engine_cost
from amc.cost.to_target import CnnShape, StudyOutcome, measure_cpu_rest, to_target
from amc.cost.workloads import LayerFactors


def analog_entry(k: KfacCost, layers) -> dict:
    from amc.cost.workloads import kfac_flops
    s = k.per_step
    inverse, step = kfac_flops(layers)
    flops = step + inverse / k.inverse_every if k.inverse_every else step
    return {"time_s": s.time_s, "energy_j": s.energy_j, "area_mm2": k.area_mm2,
            # throughput density in the digital flops the analog step stands in for
            "tops_per_mm2": flops / s.time_s / 1e12 / k.area_mm2 if k.area_mm2 else None,
            "breakdown": dict(s.breakdown), "time_breakdown": dict(s.time_breakdown),
            "area_breakdown_mm2": dict(k.area), "cell_cycles_per_step": s.cell_cycles}


def engine_entry(layers: list[LayerFactors], inverse_every: int, node: DigitalNode, leakage_fraction: float) -> dict:
    c = kfac_engine_cost([(l.a_dim, l.g_dim) for l in layers], inverse_every, node)
    # the same logic leakage as the analog side's digital units (presets.StaticModel.logic_leakage_fraction)
    leak = leakage_fraction * node.units * node.clock_hz * (node.mac_j + node.rf_j_per_mac) * c.time_s
    breakdown = {**c.breakdown, "static": leak}
    d = c.to_dict()
    d.update(energy_j=sum(breakdown.values()), breakdown=breakdown)
    return d


def cpu_entry(layers, inverse_every, repeats) -> dict:
    c = measure_cpu_kfac(layers, inverse_every, repeats=repeats)
    d = c.to_dict()
    d["area_mm2"] = None      # a socket's die is not a K-FAC engine's area
    return d


def gpu_entries(layers, inverse_every, gpu: GpuModel) -> tuple[dict, dict]:
    batched, parts = gpu_kfac(layers, inverse_every, gpu), gpu_kfac(layers, inverse_every, gpu, batched=False)
    d = batched.to_dict()
    d["area_mm2"] = None
    d["unbatched_time_s"], d["unbatched_energy_j"] = parts.time_s, parts.energy_j
    return d, parts.to_dict()


def rest_of_step(shape: CnnShape, node: DigitalNode, gpu: GpuModel, leakage_fraction: float,
                 cpu_repeats: int) -> dict:
    """{baseline: (time_s, energy_j)} of the step's non-preconditioner work on each digital baseline: the engine's
    MAC units (arithmetic, register file, leakage; its SRAM traffic is left out, which favours both runs alike), the
    products timed on this CPU, the GPU model with one launch per product."""
    macs = sum(shape.step_macs().values())
    t_engine = macs / (node.units * node.clock_hz)
    e_engine = macs * (node.mac_j + node.rf_j_per_mac) * (1 + leakage_fraction)
    t_cpu, threads = measure_cpu_rest(shape, cpu_repeats)
    from amc.cost.digital import CPU_WATTS_PER_CORE
    e_cpu = t_cpu * CPU_WATTS_PER_CORE * threads
    # a product's efficiency follows its size as a cube: (m k n)^(1/3)
    work = [(2.0 * m * k * n, float(m * k + k * n + m * n), round((m * k * n) ** (1 / 3)))
            for mats in shape.gemms().values() for m, k, n in mats]
    launches = sum(len(m) for m in shape.gemms().values())
    t_gpu = gpu.batch_time_s(work, launches)
    return {"digital_same_node": (t_engine, e_engine), "cpu": (t_cpu, e_cpu), "gpu": (t_gpu, gpu.energy_j(t_gpu))}


def add_to_target(entries: dict, rest: dict, analog_run: StudyOutcome, digital_run: StudyOutcome) -> dict:
    """Energy and time to target of every entry (analog: with the rest of the step on each baseline, the same-node
    engine's as the headline); the preconditioner's Amdahl share of the step. Returns a summary."""
    steps = analog_run.steps_per_epoch or digital_run.steps_per_epoch
    for name, entry in entries.items():
        if name == "analog":
            by = {}
            for base, (t_rest, e_rest) in rest.items():
                by[base] = to_target(entry["energy_j"] + e_rest, entry["time_s"] + t_rest, analog_run.mean_epochs,
                                     steps)
                by[base]["preconditioner_share_energy"] = entry["energy_j"] / (entry["energy_j"] + e_rest)
                by[base]["preconditioner_share_time"] = entry["time_s"] / (entry["time_s"] + t_rest)
            entry["to_target_by_rest_baseline"] = by
            entry.update({k: by["digital_same_node"][k] for k in ("energy_to_target_j", "time_to_target_s",
                                                                  "epochs_to_target")})
            entry["reached"] = f"{analog_run.reached}/{analog_run.runs}"
        else:
            t_rest, e_rest = rest[name]
            entry.update(to_target(entry["energy_j"] + e_rest, entry["time_s"] + t_rest, digital_run.mean_epochs,
                                   steps))
            entry["preconditioner_share_energy"] = entry["energy_j"] / (entry["energy_j"] + e_rest)
            entry["preconditioner_share_time"] = entry["time_s"] / (entry["time_s"] + t_rest)
            entry["reached"] = f"{digital_run.reached}/{digital_run.runs}"
        entry["rest_of_step"] = {"time_s": rest[name if name != "analog" else "digital_same_node"][0],
                                 "energy_j": rest[name if name != "analog" else "digital_same_node"][1]}
    return {"analog_runs": analog_run.describe(), "digital_runs": digital_run.describe(), "steps_per_epoch": steps}


def verdict(analog: KfacCost, layers, inverse_every: int, node: DigitalNode, gpu: GpuModel, leakage_fraction: float,
            cpu_repeats: int = 5, shape: Optional[CnnShape] = None, study: Optional[dict] = None) -> dict:
    gpu_batched, _ = gpu_entries(layers, inverse_every, gpu)
    entries = {"analog": analog_entry(analog, layers),
               "digital_same_node": engine_entry(layers, inverse_every, node, leakage_fraction),
               "cpu": cpu_entry(layers, inverse_every, cpu_repeats), "gpu": gpu_batched}
    out = {"entries": entries}
    if study is not None and shape is not None:
        rest = rest_of_step(shape, node, gpu, leakage_fraction, cpu_repeats)
        out["study"] = add_to_target(entries, rest, study["analog"], study["digital"])
    return out
