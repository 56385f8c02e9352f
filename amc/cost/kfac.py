"""Analog cost of K-FAC per training step and per epoch: operation counts of a dataflow priced by the ledger.

Each factor has its own arrays (so factors are programmed and solved at the same time); within a layer the G solves
wait for the A solves (their right-hand sides are the A solutions). With ``layers_parallel`` the step's critical
path is the slowest layer, otherwise the layers take turns. Programming happens once per inverse update and is
amortised over ``inverse_every`` steps in the per-step figures (the per-update cost is reported too).

Beyond the operation counts of the plan (amc.cost.workloads): the controller's own work per programming of an INV
array (``controller_flops``), the periphery's static draw over the step's critical path (ledger.static_cost: gating
policy, wake-ups, references, leakage), double-buffered programming (``hw.double_buffered``), and, when a training
run is priced, its measured settles and programmings per step relative to the plan (re-ranges, shift re-programmings).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from amc.errors import InputError
from amc.hw.counters import OperationCounts
from amc.cost.ledger import Cost, area_mm2, cost_of, settle_of_size, static_cost
from amc.cost.presets import HardwareCostModel
from amc.cost.workloads import Dataflow, LayerFactors, factor_counts
from amc.methods.blockamc import split_point

# Loop lambda_min of the damped, Jacobi-equilibrated factors of the 64x64 reference variant on rram-ic, geometric
# mean over 3 inverse updates of a 30-step K-FAC run on EMNIST a-m: benchmarks/cost_kfac_factors.py (README "## Cost").
REFERENCE_LOOP_LAMBDA = {("conv", "A"): 0.0542, ("conv", "G"): 0.739, ("fc", "A"): 0.00376, ("fc", "G"): 0.164}
# For other networks: the smallest loop lambda_min measured above (fc A, 0.0031 at step 0). ASSUMPTION: damping
# (lambda 1e-2 with the pi split) bounds the conditioning of every factor alike; bigger factors may do worse.
DEFAULT_LOOP_LAMBDA = 0.0031


# What the controller computes per programming of an n x n INV array before it may use it (amc/hw/inv_array.py,
# amc/hw/mapping.py, amc/methods/direct.py): the loop matrix's eigenvalues for the stability check (general real
# matrix, eigenvalues only by the Francis QR algorithm: ~10 n^3 flops), the smallest singular value that sets the
# input scale (singular values only: 4 m n^2 - 4 n^3/3 = 8 n^3/3 for m = n) and the symmetric part's smallest
# eigenvalue for the shift check (tridiagonalisation: 4 n^3/3). Flop counts: Golub & Van Loan, Matrix Computations,
# 4th ed., secs. 7.5.6, 8.3 and 8.6.3.
CONTROLLER_FLOPS_PER_N3 = 10.0 + 8.0 / 3.0 + 4.0 / 3.0


def inv_leaves(d: int, size: int) -> list[int]:
    """Sizes of the INV arrays one d x d factor occupies on size x size arrays (BlockAMC leaves above the size)."""
    if d <= size:
        return [d]
    d1 = split_point(d, size)
    return inv_leaves(d1, size) + inv_leaves(d - d1, size)


def controller_flops(d: int, size: int) -> float:
    """Controller flops per programming of the INV arrays of one d x d factor (CONTROLLER_FLOPS_PER_N3 x n^3 each)."""
    return sum(CONTROLLER_FLOPS_PER_N3 * float(n) ** 3 for n in inv_leaves(d, size))


@dataclass
class KfacCost:
    """Per-step cost (programming amortised, static included), the cost of one inverse update, the per-layer split,
    and the area of the arrays with their periphery."""

    per_step: Cost
    inverse_update: Cost
    layers: dict = field(default_factory=dict)   # name -> per-step Cost (static not split by layer)
    counts_per_step: OperationCounts = field(default_factory=OperationCounts)
    area: dict = field(default_factory=dict)     # part -> mm^2
    array_sizes: list = field(default_factory=list)
    inverse_every: int = 0

    @property
    def area_mm2(self) -> float:
        return float(sum(self.area.values()))

    def per_epoch(self, steps_per_epoch: int) -> Cost:
        if steps_per_epoch < 1:
            raise InputError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
        return self.per_step * steps_per_epoch


def _lambda_for(layer: LayerFactors, kind: str, lambdas) -> float:
    if lambdas is None:
        return DEFAULT_LOOP_LAMBDA
    if isinstance(lambdas, (int, float)):
        return float(lambdas)
    return float(lambdas.get((layer.name, kind), DEFAULT_LOOP_LAMBDA))


def factor_settles(layers: list[LayerFactors], hw: HardwareCostModel, array_size: int,
                   lambdas: Optional[Mapping | float] = None) -> dict:
    """{"layer A"/"layer G": {dim, array, lambda_min, settle_s, settle_j}}: the one INV settle every factor is priced
    with (on its array of min(dim, array_size) rows: a BlockAMC leaf above the array size) at its loop lambda_min."""
    out = {}
    for layer in layers:
        for kind, d in (("A", layer.a_dim), ("G", layer.g_dim)):
            lam = _lambda_for(layer, kind, lambdas)
            s = settle_of_size(min(d, array_size), lam, hw)
            out[f"{layer.name} {kind}"] = {"dim": d, "array": min(d, array_size), "lambda_min": lam,
                                           "settle_s": s.time_s, "settle_j": s.energy_j}
    return out


def _scaled(counts: OperationCounts, settles: float = 1.0, everything: float = 1.0) -> OperationCounts:
    """Counts with every entry times ``everything`` and the INV settles (with their conversions) times ``settles``."""
    d = {k: v * everything for k, v in counts.to_dict().items()}
    if settles != 1.0 and counts.inv_settles:
        per_settle_conv = (counts.dac_conversions + counts.adc_conversions) / max(counts.inv_settles + counts.mvm_reads, 1)
        extra = counts.inv_settles * everything * (settles - 1.0)
        d["inv_settles"] += extra
        d["dac_conversions"] += extra * per_settle_conv / 2
        d["adc_conversions"] += extra * per_settle_conv / 2
    return OperationCounts(**d)


def factor_cost(d: int, rhs: int, hw: HardwareCostModel, flow: Dataflow, array_size: int,
                lambda_min: float, parallel_arrays: int = 1, settle_scale: float = 1.0,
                programming_scale: float = 1.0) -> tuple[Cost, Cost, OperationCounts]:
    """(per inverse update, per step, per-step counts) of one factor priced on arrays of array_size.

    settle_scale / programming_scale: measured over planned INV settles per step / programmings per update of the
    run being priced (1 = the plan)."""
    setup, step = factor_counts(d, rhs, array_size, flow)
    setup = setup.copy()
    if flow.controller == "oracle":     # a read-verified controller's reads and flops are in the plan already
        setup.add(digital_flops=controller_flops(d, array_size))
    setup = _scaled(setup, everything=programming_scale)
    step = _scaled(step, settles=settle_scale)
    n = min(d, array_size)
    settle = settle_of_size(n, lambda_min, hw)
    shape = (n, n)
    return (cost_of(setup, hw, n=n, settle=settle, mvm_shape=shape, parallel_arrays=parallel_arrays),
            cost_of(step, hw, n=n, settle=settle, mvm_shape=shape, parallel_arrays=parallel_arrays), step)


def kfac_step_cost(layers: list[LayerFactors], hw: HardwareCostModel, flow: Dataflow = Dataflow(),
                   array_size: int = 64, inverse_every: int = 10,
                   lambdas: Optional[Mapping | float] = None, layers_parallel: bool = True,
                   parallel_arrays: int = 1, settle_scale: float = 1.0, programming_scale: float = 1.0) -> KfacCost:
    """Analog K-FAC cost per step. lambdas: loop lambda_min per (layer, "A"/"G"), one number, or None (default).

    parallel_arrays: copies of each factor's arrays working at once on its independent solves, tiles and rows
    (ledger.cost_of); 1 = one array set per factor doing everything in turn. settle_scale, programming_scale: see
    factor_cost."""
    if not isinstance(inverse_every, int) or inverse_every < 1:
        raise InputError(f"inverse_every must be a positive integer, got {inverse_every!r}")
    if not isinstance(array_size, int) or array_size < 2:
        raise InputError(f"array_size must be an integer >= 2, got {array_size!r}")
    if not layers:
        raise InputError("no layers: nothing to cost")
    for name, value in (("settle_scale", settle_scale), ("programming_scale", programming_scale)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise InputError(f"{name} must be a positive number, got {value!r}")
    total_update, total_step = Cost.zero(), Cost.zero()
    per_layer, counts = {}, OperationCounts()
    layer_times, update_times = [], []
    busy = []          # (n, busy_s, settle_s) per factor array set, for the static draw
    sizes, cells = [], 0
    for layer in layers:
        ua, sa, ca = factor_cost(layer.a_dim, layer.a_rhs, hw, flow, array_size, _lambda_for(layer, "A", lambdas),
                                 parallel_arrays, settle_scale, programming_scale)
        ug, sg, cg = factor_cost(layer.g_dim, layer.g_rhs, hw, flow, array_size, _lambda_for(layer, "G", lambdas),
                                 parallel_arrays, settle_scale, programming_scale)
        for d, solve in ((layer.a_dim, sa), (layer.g_dim, sg)):
            t = solve.time_breakdown
            busy.append((min(d, array_size), t["INV settles"] + t["MVM reads"] + t["conversions"], t["INV settles"]))
            sizes.extend(inv_leaves(d, array_size))
            cells += factor_counts(d, 0, array_size, flow)[0].cells_programmed
        update = ua + ug
        # the two factors of a layer are programmed at once (their own arrays), solved one after the other
        update = update.with_time(max(ua.time_s, ug.time_s))
        solve_time = sa.time_s + sg.time_s
        update_path = update.time_s
        if hw.double_buffered:
            # the spare array set is written while the other serves: only what the writes do not hide stays
            write = max(ua.time_breakdown["programming"], ug.time_breakdown["programming"])
            update_path = update.time_s - write + max(0.0, write - inverse_every * solve_time)
        step = sa + sg + update * (1.0 / inverse_every)
        step = step.with_time(solve_time + update_path / inverse_every)
        per_layer[layer.name] = step
        layer_times.append(step.time_s)
        update_times.append(update.time_s)
        total_update, total_step = total_update + update, total_step + step
        counts = counts + ca + cg
    if layers_parallel:
        total_step = total_step.with_time(max(layer_times))
        total_update = total_update.with_time(max(update_times))
    # every copy of an array set (parallel_arrays) has its own periphery drawing static power and taking area
    static_j, wake_s = static_cost(busy * parallel_arrays, total_step.time_s, hw)
    path = total_step.time_s + wake_s
    static = Cost.from_parts({"static": static_j}, {"wake-up": wake_s})
    total_step = (total_step + static).with_time(path)
    return KfacCost(per_step=total_step, inverse_update=total_update, layers=per_layer, counts_per_step=counts,
                    area={k: v * parallel_arrays for k, v in area_mm2(sizes, hw, cells).items()},
                    array_sizes=sizes * parallel_arrays, inverse_every=inverse_every)
