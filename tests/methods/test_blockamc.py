"""BlockAMC: 2x2 block partitioning over small INV arrays with MVM couplings, all through ngspice."""
import time

import numpy as np
import pytest

from amc import BlockAMCConfig, BlockError, MethodSolver, solve_system
from amc.errors import ConfigError


def spd(n: int, seed: int, cond: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q @ np.diag(np.geomspace(1.0, cond, n)) @ q.T


@pytest.mark.slow
def test_blockamc_ideal_128_on_32x32_arrays_matches_numpy():
    h = spd(128, 0)
    g = np.random.default_rng(1).standard_normal(128)
    start = time.perf_counter()
    sol = solve_system(h, g, method="blockamc", config="ideal", array_size=32)
    elapsed = time.perf_counter() - start
    exact = np.linalg.solve(h, g)
    assert np.linalg.norm(sol.x - exact) / np.linalg.norm(exact) <= 1e-8
    assert sol.relative_residual <= 1e-8
    ops = sol.operations
    # 4 leaf INV arrays (A11, S' of A, A'' and S'' of S) + tiled 32x32 coupling arrays; counts are deterministic.
    assert sol.details["leaves"] == 4 and sol.details["depth"] == 2
    assert ops.inv_settles > 0 and ops.mvm_reads > 0 and ops.programmings == 16
    print(f"BlockAMC 128/32 ideal: {elapsed:.1f} s, {ops}")


def test_blockamc_small_arrays_and_multi_rhs_via_solver_object():
    h = spd(24, 2)
    g = np.random.default_rng(3).standard_normal((24, 2))
    solver = MethodSolver("ideal", method="blockamc", array_size=5)   # uneven split: 24 -> 15 + 9 -> ...
    sol = solver.solve(h, g)
    assert sol.x.shape == (24, 2)
    assert np.linalg.norm(sol.x - np.linalg.solve(h, g)) / np.linalg.norm(np.linalg.solve(h, g)) <= 1e-8
    again = solver.solve(h, g)                          # arrays and Schur complements are kept for this H
    assert again.operations.programmings == 0 and again.operations.inv_settles < sol.operations.inv_settles


def test_array_size_below_two_rejected():
    h = spd(8, 4)
    for bad in (1, 0, -3):
        with pytest.raises(ConfigError, match="array_size must be an integer >= 2"):
            solve_system(h, np.ones(8), method="blockamc", config="ideal", array_size=bad)
    with pytest.raises(ConfigError):
        BlockAMCConfig(array_size=1)


def test_singular_schur_complement_names_the_block():
    rng = np.random.default_rng(5)
    a = spd(4, 6, cond=3.0)
    b = rng.standard_normal((4, 4))
    d = b.T @ np.linalg.solve(a, b)                     # S = D - C A^-1 B = 0
    h = np.block([[a, b], [b.T, d]])
    with pytest.raises(BlockError, match=r"block \[4:8, 4:8\] at depth 1 \(Schur complement.*singular") as info:
        solve_system(h, np.ones(8), method="blockamc", config="ideal", array_size=4)
    assert info.value.block == "block [4:8, 4:8] at depth 1"


def test_deeper_singular_block_and_unstable_block_named():
    # A 16x16 system on 4x4 arrays whose leading 4x4 block is singular: named at depth 2.
    h = spd(16, 7)
    h[:4, :4] = np.outer(np.arange(1, 5), np.arange(1, 5))
    with pytest.raises(BlockError, match=r"block \[0:4, 0:4\] at depth 2 is singular"):
        solve_system(h, np.ones(16), method="blockamc", config="ideal", array_size=4)
    # A non-symmetric block with a negative eigenvalue cannot settle on an INV array.
    h = spd(8, 8)
    h[4:, 4:] = -np.eye(4) * 5 + h[4:, 4:]
    with pytest.raises(BlockError, match=r"at depth 1.*unstable"):
        solve_system(h, np.ones(8), method="blockamc", config="ideal", array_size=4)


def _tiles(m: int, p: int, a: int) -> list:
    return [(min(a, m - r), min(a, p - c)) for r in range(0, m, a) for c in range(0, p, a)]


@pytest.mark.slow
def test_blockamc_289_on_64_arrays_extracted_verified_matches_numpy_and_hand_count():
    """The reference model's fc A size on the published 64x64 arrays: ideal cells, measured responses, the
    read-verified controller on every leaf, Jacobi equilibration. Hand count of the partition: 289 -> 192 + 97;
    192 -> 128 + 64; 128 -> 64 + 64; 97 -> 64 + 33: leaves 64, 64, 64, 64, 33 and coupling pairs (B, C) of
    192x97, 128x64, 64x64, 64x33, tiled to 64: 2 x (6 + 2 + 1 + 1) = 20 coupling arrays."""
    from amc.hw.controller import VERIFY_SETTLES
    h = spd(289, 11, cond=50.0)
    g = np.random.default_rng(12).standard_normal((289, 2))
    solver = MethodSolver("ideal", method={"preset": "blockamc", "array_size": 64, "operators": "extracted",
                                           "shift": "verify", "equilibrate": True})
    sol = solver.solve(h, g)
    exact = np.linalg.solve(h, g)
    assert np.linalg.norm(sol.x - exact) / np.linalg.norm(exact) <= 1e-6      # measured 1.5e-8 (A0 = 1e6 class)
    assert sol.details["leaves"] == 5 and sol.details["leaf_shifts"] == [0.0] * 5
    assert sol.bias_error == 0.0 and sol.device_error <= 1e-6
    leaves = [64, 64, 64, 64, 33]
    couplings = [(192, 97), (128, 64), (64, 64), (64, 33)]
    tiles = [t for m, p in couplings for t in _tiles(m, p, 64) + _tiles(p, m, 64)]
    assert len(tiles) == 20
    ops = sol.operations
    assert ops.programmings == 5 + 20
    assert ops.cells_programmed == sum(2 * n * n for n in leaves) + sum(2 * r * c for r, c in tiles)
    assert sol.details["controller_operations"]["inv_settles"] == VERIFY_SETTLES * 5
    plan = solver.plan(289, 2)
    keys = ("programmings", "cells_programmed", "inv_settles", "mvm_reads", "dac_conversions", "adc_conversions",
            "digital_flops")
    total = (plan.programming + plan.solve).to_dict()
    assert {k: ops.to_dict()[k] for k in keys} == {k: total[k] for k in keys}
    again = solver.solve(h, g)                     # the block tree is kept: no programming, the plan's solve
    assert {k: again.operations.to_dict()[k] for k in keys} == {k: plan.solve.to_dict()[k] for k in keys}
    assert np.array_equal(again.x, sol.x)


def test_leaf_shift_split_into_bias_and_device_error():
    """A leading block with a small eigenvalue: the controller shifts that leaf (from its reads); the bias is the
    same partition in exact arithmetic with A + mu diag|A| (computed here by hand), the device error the rest."""
    rng = np.random.default_rng(21)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    a = q @ np.diag([1.0, 0.8, 0.6, 0.004]) @ q.T
    b = 0.05 * rng.standard_normal((4, 4))
    h = np.block([[a, b], [b.T, np.eye(4) + b.T @ np.linalg.solve(a, b)]])
    g = rng.standard_normal(8)
    sol = MethodSolver("ideal", method={"preset": "blockamc", "array_size": 4, "operators": "extracted",
                                        "shift": "verify"}).solve(h, g)
    mu = sol.details["leaf_shifts"][0]
    assert mu > 0 and sol.details["leaf_shifts"][1] == 0.0 and sol.details["controller_writes"] >= 3
    a_shift = a + mu * np.diag(np.abs(np.diag(a)))
    s = h[4:, 4:] - b.T @ np.linalg.solve(a_shift, b)
    y1 = np.linalg.solve(a_shift, g[:4])
    x2 = np.linalg.solve(s, g[4:] - b.T @ y1)
    x1 = np.linalg.solve(a_shift, g[:4] - b @ x2)
    exact = np.linalg.solve(h, g)
    bias = np.linalg.norm(np.concatenate([x1, x2]) - exact) / np.linalg.norm(exact)
    assert sol.bias_error == pytest.approx(bias, rel=1e-9) and sol.bias_error > 0.05
    assert sol.device_error <= 1e-6                # ideal cells: the shift is the whole error


def test_block_trees_kept_least_recently_used():
    h1, h2 = spd(8, 31), spd(8, 32)
    g = np.ones(8)
    for size, rewrites in ((1, 2), (2, 0)):
        solver = MethodSolver("ideal", method={"preset": "blockamc", "array_size": 4, "operators": "extracted",
                                               "cache_size": size})
        solver.solve(h1, g), solver.solve(h2, g)
        writes = solver.solve(h1, g).operations.programmings + solver.solve(h2, g).operations.programmings
        assert writes == rewrites * 4              # 2 leaves + 2 coupling arrays per tree


def test_blockamc_options_refused_by_name():
    with pytest.raises(ConfigError, match="blockamc.*null or 'verify'"):
        MethodSolver("ideal", method={"preset": "blockamc", "shift": "auto"})
    from amc import CircuitConfig
    noisy = CircuitConfig.preset("rram").replace(**{"device.read_noise_sigma": 0.01})
    with pytest.raises(ConfigError, match="extracted.*read noise"):
        MethodSolver(noisy, method={"preset": "blockamc", "operators": "extracted"})
    with pytest.raises(ConfigError, match="cache_size"):
        MethodSolver("ideal", method={"preset": "blockamc", "cache_size": 0})
