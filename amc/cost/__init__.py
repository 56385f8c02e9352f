"""Hardware cost ledger: time and energy of every analog operation, against digital processors.

Public surface (see amc/cost/*.py for the physics and the sources of every constant):

    HardwareCostModel.preset("rram-ic")                  circuit + converters + write-verify + digital
    settle_of_matrix(H, hw, g=None) -> SettleCost        exact INV settle of H programmed on hw.circuit
    settle_of_size(n, lambda_min, hw) -> SettleCost      closed form (Sun et al., IEEE TED 2020)
    cost_of(counts, hw, n=, settle= | lambda_min=, mvm_shape=, parallel_arrays=1) -> Cost
    Cost.parallel(*costs), Cost.serial(*costs)           arrays at once (max time) / in turn (sum)
    price_arrays([(counts, n, lambda_min | SettleCost), ...], hw, parallel=True) -> Cost   several arrays
    direct_solve_cost(H, g, hw) -> Cost                  programming + one settle per column (amc solve --json)
    Cost: time_s, energy_j, breakdown (component -> J, sums to energy_j), +, *, to_dict()
    static_cost(arrays, step_time_s, hw), area_mm2(sizes, hw)   periphery's static draw (gating policy), area
    DigitalNode(precision, units), kfac_engine_cost(dims, inverse_every, node)   equal-technology digital engine
    amc.cost.verdict / to_target / breakeven                   four-way verdict, energy to target, break-even map
"""
from amc.cost.ledger import (COMPONENTS, Cost, area_mm2, cost_of, direct_solve_cost, mvm_read, price_arrays,
                             programming, settle_of_matrix, settle_of_size, solve_counts, static_cost)
from amc.cost.node import DigitalNode, kfac_engine_cost
from amc.cost.presets import HardwareCostModel
from amc.cost.settle import SettleCost, settle_cost, settle_law

__all__ = ["COMPONENTS", "Cost", "DigitalNode", "HardwareCostModel", "SettleCost", "area_mm2", "cost_of",
           "direct_solve_cost", "kfac_engine_cost", "mvm_read", "price_arrays", "programming", "settle_cost",
           "settle_law", "settle_of_matrix", "settle_of_size", "solve_counts", "static_cost"]
