"""HP-INV: low-precision INV (8-level array, A0 = 1e5) + bit-sliced MVM residual, all through ngspice."""
import numpy as np
import pytest

from amc import CircuitConfig, ConvergenceError, HPInvSolver, MethodSolver, solve_system
from amc.errors import AmcError


def quantisable_spd(n: int, seed: int, cond_max: float = 10.0, rho: float = 0.12, levels: int = 8):
    """SPD test system: an SPD matrix on the device levels (cond <= cond_max) plus a full-precision perturbation.

    The perturbation is scaled so that rho(I - H Hq^-1) = ``rho`` (about 3 bits an iteration). Generic random SPD
    matrices with condition number 10 are NOT in this class: rounded to 8 levels at n = 16 their rho is 1-20
    (see test_generic_cond10_matrix_diverges_and_is_detected).
    """
    rng = np.random.default_rng(seed)
    while True:
        w = rng.standard_normal((n, n))
        m = w @ w.T / n
        ev = np.linalg.eigvalsh(m)
        c = rng.uniform(4.0, cond_max)
        m = m + (ev.max() - c * ev.min()) / (c - 1) * np.eye(n)
        m /= np.abs(m).max()
        hq = np.round(m * (levels - 1)) / (levels - 1)
        if np.linalg.eigvalsh(hq).min() <= 0 or np.linalg.cond(hq) > cond_max:
            continue
        p = rng.uniform(-1, 1, (n, n))
        p = (p + p.T) / 2
        np.fill_diagonal(p, 0.0)
        p *= rho / np.max(np.abs(np.linalg.eigvals(p @ np.linalg.inv(hq))))
        h = hq + p
        if np.linalg.cond(h) <= cond_max and np.linalg.eigvalsh(h).min() > 0:
            return h, rng.standard_normal(n)


RRAM = CircuitConfig.preset("rram")   # 3-bit devices (8 levels), AD823-class op-amps (A0 = 1e5), op-amp inverters


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hp_inv_reaches_20_bits_in_10_iterations(seed):
    h, g = quantisable_spd(16, seed)
    assert np.linalg.cond(h) <= 10
    # MVM: same devices and op-amps, 8 slices of 3 bits, ideal converters, TIA gain calibration (the defaults).
    sol = solve_system(h, g, method="hp-inv", config=RRAM, iterations=10)
    bits = [item["bits"] for item in sol.history]
    assert sol.history[0]["iteration"] == 0 and len(sol.history) == 11
    assert max(bits) >= 20.0, bits
    assert bits[5] / 5 >= 2.0, bits                       # >= 2 bits per iteration over the first 5
    assert sol.relative_error < 2 ** -20
    assert sol.details["rho"] < 0.2
    assert np.allclose(sol.x, np.linalg.solve(h, g), rtol=0, atol=1e-5 * np.abs(np.linalg.solve(h, g)).max())
    ops = sol.operations
    assert ops["inv_solves"] == 10 and ops["mvm_operations"] == 10 * 8 and ops["programmings"] == 1 + 8
    assert not sol.saturated


def test_tolerance_stops_early_and_multi_rhs():
    h, g = quantisable_spd(16, 3)
    g2 = np.stack([g, np.roll(g, 3)], axis=1)
    sol = MethodSolver(RRAM, method="hp-inv", iterations=10, tol=1e-4).solve(h, g2)
    assert sol.x.shape == (16, 2)
    assert sol.history[-1]["residual"] <= 1e-4 and len(sol.history) < 11
    assert sol.history[-1]["bits"] > 10


def test_generic_cond10_matrix_diverges_and_is_detected():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    h = q @ np.diag(np.geomspace(1, 10, 16)) @ q.T      # SPD, cond 10, but the 8-level H0 is too far from H
    g = rng.standard_normal(16)
    solver = HPInvSolver(RRAM)
    assert solver.radius(h) >= 1.0
    with pytest.raises(ConvergenceError, match="iteration 0") as upfront:
        solver.solve(h, g)
    assert upfront.value.rho >= 1.0 and isinstance(upfront.value, AmcError)
    # Without the upfront check, the residual watch stops it and names the iteration.
    with pytest.raises(ConvergenceError, match=r"diverged at iteration \d+") as watched:
        HPInvSolver(RRAM, iterations=10, check_convergence=False).solve(h, g)
    assert 1 <= watched.value.iteration <= 10
    assert watched.value.history[-1]["residual"] > watched.value.history[0]["residual"]


def test_finite_mvm_adc_caps_the_precision():
    # The residual is formed after the MVM's ADC, so a 12-bit ADC caps HP-INV far below 20 bits.
    h, g = quantisable_spd(16, 0)
    sol = solve_system(h, g, method="hp-inv", config=RRAM, iterations=8, mvm_adc_bits=12)
    assert 5 < sol.history[-1]["bits"] < 16
    assert sol.details["mvm_adc_bits"] == 12


def test_hp_inv_refuses_a_system_larger_than_the_array():
    h, g = quantisable_spd(16, 0)
    with pytest.raises(AmcError, match="blockamc"):
        solve_system(h, g, method="hp-inv", config=RRAM, array_size=8)
