"""BlockAMC: 2x2 block partitioning over small INV arrays with MVM couplings, all through ngspice."""
import time

import numpy as np
import pytest

from amc import BlockAMCConfig, BlockAMCSolver, BlockError, MethodSolver, solve_system
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
