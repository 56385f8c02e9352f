"""Sweep points can run HP-INV and BlockAMC (issue 4) and record bits and array-operation counts."""
import pytest

from amc.errors import ConfigError
from workflow.points import run_circuit_point
from workflow.spec import build_sweep


def _sweep(solve, grid):
    return build_sweep({"name": "m", "kind": "circuit",
                        "base": {"circuit": "rram", "matrix": {"n": 16, "kind": "spd", "condition": 10, "seed": 0},
                                 "solve": solve}, "grid": grid}, source="test")


@pytest.mark.slow
def test_hp_inv_points_gain_bits_with_iterations():
    sweep = _sweep({"method": "hp-inv", "options": {"refinement": "pcg", "shift": "auto", "equilibrate": True}},
                   {"solve.iterations": [2, 8]})
    few, many = (run_circuit_point(p.spec) for p in sweep.points)
    assert few["method"] == "hp-inv" and few["ops_inv_settles"] >= 2
    assert many["equivalent_bits"] > few["equivalent_bits"] + 6


def test_blockamc_points_count_array_operations():
    sweep = _sweep({"method": "blockamc", "array_size": 8}, {"matrix.n": [16]})
    metrics = run_circuit_point(sweep.points[0].spec)
    assert metrics["ops_inv_settles"] > 0 and metrics["ops_mvm_reads"] > 0


def test_unknown_method_is_rejected_naming_the_key():
    with pytest.raises(ConfigError, match="solve.method"):
        _sweep({"method": "magic"}, {"matrix.n": [8]})
