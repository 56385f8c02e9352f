"""One count model: every method's stated plan equals what a run of it counts (hardware operations and digital
flops; ngspice runs and programming provenance are simulator artefacts and are not planned)."""
import warnings

import numpy as np
import pytest

from amc import CircuitConfig, MethodSolver
from amc.cost.workloads import Dataflow, factor_counts
from workflow.matrices import random_spd

ARTEFACTS = ("ngspice_runs", "programmings_verified", "programmings_restamped")


def hardware(counts) -> dict:
    return {k: v for k, v in counts.to_dict().items() if k not in ARTEFACTS}


CASES = [
    ("ideal", {"name": "direct"}, 8, 3),
    ("rram", {"preset": "direct", "equilibrate": True}, 10, 2),       # + the read-verified controller
    ("rram", {"name": "direct", "equilibrate": True}, 10, 2),
    ("ideal", {"preset": "blockamc", "array_size": 4}, 10, 2),
    ("ideal", {"preset": "blockamc", "array_size": 3}, 8, 3),            # two levels of partitioning
    ("rram", {"preset": "blockamc", "array_size": 4, "operators": "extracted", "shift": "verify",
              "equilibrate": True}, 10, 2),                              # + the controller on every leaf
    ("ideal", {"name": "hp-inv", "refinement": "pcg", "iterations": 3}, 8, 3),
    ("rram", {"name": "hp-inv", "refinement": "richardson", "iterations": 3, "shift": 0.1}, 10, 2),
    ("rram", {"preset": "hpinv-pcg", "iterations": 3, "shift": 0.2, "array_size": 4}, 8, 3),   # block-Jacobi
    ("rram", {"preset": "hpinv-pcg", "iterations": 3, "shift": 0.2, "operators": "extracted"}, 10, 2),
    ("ideal", {"name": "hp-inv", "refinement": "pcg", "iterations": 3, "preconditioner": "identity"}, 8, 3),
    ("ideal", {"name": "repast", "iterations": 0}, 8, 3),
    ("rram", {"preset": "repast", "shift": 0.2}, 8, 3),
]


@pytest.mark.slow
@pytest.mark.parametrize("circuit,method,n,k", CASES, ids=lambda v: str(v) if not isinstance(v, dict) else
                         ",".join(f"{a}={b}" for a, b in v.items()))
def test_plan_equals_what_a_run_counts(circuit, method, n, k):
    h = random_spd(n, seed=n)
    b = np.random.default_rng(k).standard_normal((n, k))
    solver = MethodSolver(circuit, method=method)
    plan = solver.plan(n, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, again = solver.solve(h, b), solver.solve(h, b)
        handle = solver.program(h)                                     # the handle the solves went through
        through_handle = handle.solve(b)
    assert hardware(first.operations) == hardware(plan.programming + plan.solve)
    assert hardware(again.operations) == hardware(plan.solve)          # programmed once, solved twice
    assert hardware(handle.programming) == hardware(plan.programming)  # the handle owns its programming's counts
    assert hardware(through_handle.operations) == hardware(plan.solve)


def test_the_ledger_prices_the_methods_plans():
    """amc/cost/workloads.py has no counting of its own: a dataflow's counts are its method's plan."""
    equilibrated = CircuitConfig.preset("ideal").replace(**{"io.equilibrate": True})     # the K-FAC recipe
    setup, step = factor_counts(10, 2, 4, Dataflow("direct"))           # above the array size: BlockAMC
    plan = MethodSolver(equilibrated, method={"preset": "blockamc", "array_size": 4}).plan(10, 2)
    assert hardware(setup) == hardware(plan.programming)
    assert hardware(step) == hardware(plan.solve)
    setup, step = factor_counts(16, 2, 16, Dataflow("hpinv", iterations=3, slices=4))
    plan = MethodSolver("ideal", method={"preset": "hpinv-pcg", "iterations": 3, "shift": None, "array_size": 16,
                                         "mvm": {"slices": 4, "array_size": 16}}).plan(16, 2)
    assert hardware(step) == hardware(plan.solve)
    with pytest.raises(Exception, match="no plan"):
        MethodSolver("ideal", backend="numpy").plan(4, 1)
