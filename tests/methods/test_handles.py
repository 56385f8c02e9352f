"""Explicit programmed-array handles: ``solver.program(H) -> Programmed`` owns its arrays, counts and programming
time; an equal H finds the held handle (no new write); a refused programming is remembered; the facade
``solve(H, B)`` is program-then-solve, so both paths give the same numbers and the same counts."""

import numpy as np
import pytest

from amc import ConfigError, MethodConfig, MethodSolver, UnstableCircuitError
from amc.hw.counters import OperationCounts
from amc.methods.programmed import Programmed, ProgrammedCache
from workflow.matrices import random_spd

from tests.methods.test_plan import hardware


def test_program_once_solve_many():
    h = random_spd(6, seed=1)
    solver = MethodSolver("ideal", method={"name": "direct"})
    handle = solver.program(h)
    assert isinstance(handle, Programmed) and handle.programming.programmings == 1
    b = np.random.default_rng(0).standard_normal((6, 3))
    sols = [handle.solve(b[:, c]) for c in range(3)]
    for c, sol in enumerate(sols):
        assert sol.operations.programmings == 0 and sol.operations.inv_settles == 1     # a solve, no write
        assert np.linalg.norm(sol.x - np.linalg.solve(h, b[:, c])) <= 1e-8 * np.linalg.norm(sol.x)
    assert handle.counts.programmings == 1 and handle.counts.inv_settles == 3 and handle.solves == 3
    # the facade is program-then-solve on the held handle: same x, no new programming
    again = solver.solve(h, b[:, 1])
    assert np.array_equal(again.x, sols[1].x) and again.operations.programmings == 0


def test_an_equal_matrix_finds_the_held_handle_and_the_cache_drops_the_least_recent():
    h1, h2 = random_spd(5, seed=2), random_spd(5, seed=3)
    solver = MethodSolver("ideal", method={"name": "direct", "cache_size": 1})
    first = solver.program(h1)
    assert solver.program(h1.copy()) is first                      # equality of H, not identity of the object
    assert solver.program(h2) is not first                         # cache of one: h1's array is dropped
    fresh = solver.program(h1)
    assert fresh is not first and fresh.programming.programmings == 1
    wide = MethodSolver("ideal", method={"name": "direct", "cache_size": 2})
    a = wide.program(h1)
    wide.program(h2)
    assert wide.program(h1) is a and len(wide._impl.cache) == 2


def test_counts_and_programming_time_are_the_handles():
    h = random_spd(8, seed=4)
    b = np.random.default_rng(1).standard_normal((8, 2))
    solver = MethodSolver("rram", method={"name": "hp-inv", "refinement": "richardson", "iterations": 3,
                                          "shift": 0.1})
    handle = solver.program(h)
    assert handle.programming_time_s > 0 and handle.programming.programmings >= 2     # INV + MVM arrays
    assert hardware(handle.counts) == hardware(handle.programming)        # nothing solved yet
    one, two = handle.solve(b), handle.solve(b[:, 0])
    total = handle.programming + one.operations + two.operations
    # the arrays' counts are the programming plus both solves (digital flops of the refinement are the solve's)
    for key in ("programmings", "cells_programmed", "inv_settles", "mvm_reads", "dac_conversions",
                "adc_conversions"):
        assert getattr(handle.counts, key) == getattr(total, key), key
    # the facade's first solve of a fresh H carries the programming, as a training account expects
    facade = MethodSolver("rram", method=solver.method_config).solve(h, b)
    assert hardware(facade.operations) == hardware(handle.programming + one.operations)
    assert np.array_equal(facade.x, one.x)


def test_a_refused_programming_is_remembered_and_not_written_again():
    h = np.diag([1.0, -1.0])            # the loop cannot settle: the controller refuses the array
    solver = MethodSolver("ideal", method={"name": "direct"})
    with pytest.raises(UnstableCircuitError) as first:
        solver.program(h)
    assert first.value.operations.programmings == 1               # the write happened and is billed once
    serial = solver._impl._serial
    with pytest.raises(UnstableCircuitError, match="non-positive real part"):
        solver.solve(h.copy(), np.ones(2))
    assert solver._impl._serial == serial                          # no new array, no new write


def test_a_key_a_method_does_not_have_is_an_unknown_key_naming_the_method():
    with pytest.raises(ConfigError, match=r"unknown key 'method.iterations' for method 'blockamc' \(a key of "
                                          r"method hp-inv, repast\)"):
        MethodConfig.from_spec({"name": "blockamc", "iterations": 3}, "run.yaml")
    with pytest.raises(ConfigError, match=r"unknown key 'method.mvm.adc_bits' for method 'blockamc'"):
        MethodSolver("ideal", method="blockamc", mvm={"adc_bits": 8})
    with pytest.raises(ConfigError, match=r"unknown key 'method.refinement' for method 'direct'"):
        MethodSolver("ideal", method="direct", refinement="pcg")


def test_the_cache_compares_values():
    cache = ProgrammedCache(2)
    h = np.eye(3)
    handle = Programmed(None, h, None, lambda: [], OperationCounts(), 0.0)
    cache.add(h, handle)
    assert cache.find(np.eye(3)) is handle and cache.find(np.eye(3) * 2) is None and cache.find(np.eye(2)) is None
