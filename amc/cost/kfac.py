"""Analog cost of K-FAC per training step and per epoch: operation counts of a dataflow priced by the ledger.

Each factor has its own arrays (so factors are programmed and solved at the same time); within a layer the G solves
wait for the A solves (their right-hand sides are the A solutions). With ``layers_parallel`` the step's critical
path is the slowest layer, otherwise the layers take turns. Programming happens once per inverse update and is
amortised over ``inverse_every`` steps in the per-step figures (the per-update cost is reported too).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from amc.errors import InputError
from amc.hw.counters import OperationCounts
from amc.cost.ledger import Cost, cost_of, settle_of_size
from amc.cost.presets import HardwareCostModel
from amc.cost.workloads import Dataflow, LayerFactors, factor_counts

# Loop lambda_min of the damped, Jacobi-equilibrated factors of the 64x64 reference variant on rram-ic, geometric
# mean over 3 inverse updates of a 30-step K-FAC run on EMNIST a-m: benchmarks/cost_kfac_factors.py (README "## Cost").
REFERENCE_LOOP_LAMBDA = {("conv", "A"): 0.0542, ("conv", "G"): 0.739, ("fc", "A"): 0.00376, ("fc", "G"): 0.164}
# For other networks: the smallest loop lambda_min measured above (fc A, 0.0031 at step 0). ASSUMPTION: damping
# (lambda 1e-2 with the pi split) bounds the conditioning of every factor alike; bigger factors may do worse.
DEFAULT_LOOP_LAMBDA = 0.0031


@dataclass
class KfacCost:
    """Per-step cost (programming amortised), the cost of one inverse update, and the per-layer split."""

    per_step: Cost
    inverse_update: Cost
    layers: dict = field(default_factory=dict)   # name -> per-step Cost
    counts_per_step: OperationCounts = field(default_factory=OperationCounts)

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


def factor_cost(d: int, rhs: int, hw: HardwareCostModel, flow: Dataflow, array_size: int,
                lambda_min: float, parallel_arrays: int = 1) -> tuple[Cost, Cost, OperationCounts]:
    """(per inverse update, per step, per-step counts) of one factor priced on arrays of array_size."""
    setup, step = factor_counts(d, rhs, array_size, flow)
    n = min(d, array_size)
    settle = settle_of_size(n, lambda_min, hw)
    shape = (n, n)
    return (cost_of(setup, hw, n=n, settle=settle, mvm_shape=shape, parallel_arrays=parallel_arrays),
            cost_of(step, hw, n=n, settle=settle, mvm_shape=shape, parallel_arrays=parallel_arrays), step)


def kfac_step_cost(layers: list[LayerFactors], hw: HardwareCostModel, flow: Dataflow = Dataflow(),
                   array_size: int = 64, inverse_every: int = 10,
                   lambdas: Optional[Mapping | float] = None, layers_parallel: bool = True,
                   parallel_arrays: int = 1) -> KfacCost:
    """Analog K-FAC cost per step. lambdas: loop lambda_min per (layer, "A"/"G"), one number, or None (default).

    parallel_arrays: copies of each factor's arrays working at once on its independent solves, tiles and rows
    (ledger.cost_of); 1 = one array set per factor doing everything in turn."""
    if not isinstance(inverse_every, int) or inverse_every < 1:
        raise InputError(f"inverse_every must be a positive integer, got {inverse_every!r}")
    if not isinstance(array_size, int) or array_size < 2:
        raise InputError(f"array_size must be an integer >= 2, got {array_size!r}")
    if not layers:
        raise InputError("no layers: nothing to cost")
    total_update, total_step = Cost.zero(), Cost.zero()
    per_layer, counts = {}, OperationCounts()
    layer_times, update_times = [], []
    for layer in layers:
        ua, sa, ca = factor_cost(layer.a_dim, layer.a_rhs, hw, flow, array_size, _lambda_for(layer, "A", lambdas),
                                 parallel_arrays)
        ug, sg, cg = factor_cost(layer.g_dim, layer.g_rhs, hw, flow, array_size, _lambda_for(layer, "G", lambdas),
                                 parallel_arrays)
        update = ua + ug
        # the two factors of a layer are programmed at once (their own arrays), solved one after the other
        update = update.with_time(max(ua.time_s, ug.time_s))
        step = sa + sg + update * (1.0 / inverse_every)
        step = step.with_time(sa.time_s + sg.time_s + update.time_s / inverse_every)
        per_layer[layer.name] = step
        layer_times.append(step.time_s)
        update_times.append(update.time_s)
        total_update, total_step = total_update + update, total_step + step
        counts = counts + ca + cg
    if layers_parallel:
        total_step = total_step.with_time(max(layer_times))
        total_update = total_update.with_time(max(update_times))
    return KfacCost(per_step=total_step, inverse_update=total_update, layers=per_layer, counts_per_step=counts)
