"""HP-INV: low-precision INV (8-level array, A0 = 1e5) + bit-sliced MVM residual, all through ngspice."""
import numpy as np
import pytest

from workflow.matrices import quantisable_spd
from amc import CircuitConfig, ConvergenceError, HPInvConfig, HPInvSolver, MethodSolver, solve_system
from amc.errors import AmcError


RRAM = CircuitConfig.preset("rram")   # 3-bit devices (8 levels), AD823-class op-amps (A0 = 1e5), op-amp inverters


@pytest.mark.slow
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
    assert ops.inv_settles == 10 and ops.mvm_reads == 10 * 8 and ops.programmings == 1 + 8
    assert not sol.saturated_any


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
        HPInvSolver(RRAM, HPInvConfig(iterations=10, check_convergence=False)).solve(h, g)
    assert 1 <= watched.value.iteration <= 10
    assert watched.value.history[-1]["residual"] > watched.value.history[0]["residual"]


def test_finite_mvm_adc_caps_the_precision():
    # The residual is formed after the MVM's ADC, so a 12-bit ADC caps HP-INV far below 20 bits.
    h, g = quantisable_spd(16, 0)
    sol = solve_system(h, g, method="hp-inv", config=RRAM, iterations=8, mvm={"adc_bits": 12})
    assert 5 < sol.history[-1]["bits"] < 16
    assert sol.details["mvm_adc_bits"] == 12


def test_hp_inv_refuses_a_system_larger_than_the_array():
    h, g = quantisable_spd(16, 0)
    with pytest.raises(AmcError, match="blockamc"):
        solve_system(h, g, method="hp-inv", config=RRAM, array_size=8)


# ---- robust refinement for K-FAC factors: diagonal shift + PCG ---------------------------------------------------
from workflow.matrices import kfac_like_factor  # noqa: E402  (one definition, shared with the wire control)


def _q8(h):
    unit = np.abs(h).max() / 7
    return np.round(h / unit) * unit


def _equilibrated(h):
    d = 1 / np.sqrt(np.diag(h))
    return h * d[:, None] * d[None, :]


def test_shifted_inv_is_always_stable_on_kfac_like_factors():
    from amc.errors import UnstableCircuitError, MappingError
    indefinite = 0
    for seed in range(24):
        h = kfac_like_factor(36, seed)
        he = _equilibrated(h)
        indefinite += int(np.linalg.eigvalsh(_q8(he)).min() <= 0)
        solver = HPInvSolver(RRAM, HPInvConfig(refinement="pcg", shift="auto", equilibrate=True))
        system = solver.program(h).state                     # maps, programs and runs the loop stability check
        assert system.mu > 0 and system.lam_min_h0 > 0, seed
        assert np.linalg.eigvals(system.h0_eff).real.min() > 0
        assert np.allclose(np.diag(system.h0_eff), np.diag(system.h0_eff)[0], rtol=1e-4)   # diagonal on the top level
        # without the shift the same array is often unstable (or unmappable)
        if np.linalg.eigvalsh(_q8(he)).min() <= 0:
            with pytest.raises((UnstableCircuitError, MappingError)):
                HPInvSolver(RRAM, HPInvConfig(refinement="pcg", equilibrate=True)).program(h)
    assert indefinite >= 3, "the test factors must include blocks that 8 levels make indefinite"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 11])
def test_pcg_on_the_8_level_circuit_reaches_1e_3(seed):
    h = kfac_like_factor(24, seed)
    assert np.linalg.cond(_equilibrated(h)) > 20
    g = np.random.default_rng(seed).standard_normal((24, 2))
    k = 12
    sol = solve_system(h, g, method="hp-inv", config=RRAM, refinement="pcg", iterations=k, shift="auto",
                       equilibrate=True, mvm={"slices": 6})
    errors = [item["relative_error"] for item in sol.history]
    assert len(errors) == k + 1
    assert min(errors[1:]) <= 1e-3 and sol.relative_error <= 1e-3, errors
    first = next(i for i, e in enumerate(errors) if e <= 1e-3)
    assert first <= 10, errors
    assert sol.history[-1]["residual"] <= 1e-3 and sol.details["shift"] > 0
    assert sol.operations.inv_settles == 2 * k and sol.operations.ngspice_runs > 0
    # Richardson with the same shifted INV is stable but slow: far from 1e-3 after the same number of passes
    slow = solve_system(h, g, method="hp-inv", config=RRAM, refinement="richardson", iterations=k, shift="auto",
                        equilibrate=True, operators="extracted",
                        mvm={"slices": 6, "response": "closed-form"})
    assert slow.details["rho"] < 1 and slow.relative_error > 10 * sol.relative_error


@pytest.mark.slow
def test_extracted_operator_pcg_equals_per_solve_pcg():
    h = kfac_like_factor(16, 5)
    g = np.random.default_rng(0).standard_normal((16, 2))
    opts = dict(method="hp-inv", refinement="pcg", iterations=10, shift="auto", equilibrate=True, mvm={"slices": 6})
    per_solve = MethodSolver(RRAM, operators="per-solve", **opts).solve(h, g)
    extracted = MethodSolver(RRAM, operators="extracted", **{**opts, "mvm": {"slices": 6, "response": "circuit"}})
    first = extracted.solve(h, g)
    closed = MethodSolver(RRAM, operators="extracted", **{**opts, "mvm": {"slices": 6, "response": "closed-form"}}).solve(h, g)
    scale = np.linalg.norm(per_solve.x)
    assert np.linalg.norm(first.x - per_solve.x) / scale < 1e-8
    assert np.linalg.norm(closed.x - per_solve.x) / scale < 1e-8
    for a, b in zip(first.history, per_solve.history):
        assert abs(a["residual"] - b["residual"]) <= 1e-5 * b["residual"] + 1e-12
    assert first.operations.inv_settles == per_solve.operations.inv_settles
    assert first.operations.mvm_reads == per_solve.operations.mvm_reads
    assert first.details["extracted_now"] and first.operations.ngspice_runs > 0
    # a settle from the measured response is what ngspice computes on the same programmed array
    array = extracted.program(h).state.arrays[0]            # the held handle: no new write
    column = array.solve(np.eye(16)[:, 3]).x
    assert np.allclose(array.read(np.eye(16)[:, 3]).x, column, rtol=0, atol=1e-9 * np.abs(column).max())
    again = extracted.solve(h, g[:, ::-1])          # cached: no new ngspice runs, same answer per column
    assert again.operations.ngspice_runs == 0 and not again.details["extracted_now"]
    assert np.allclose(again.x, first.x[:, ::-1], rtol=0, atol=1e-12 * scale)


def test_block_jacobi_pcg_solves_the_full_system_on_small_arrays():
    """A 40 x 40 factor on arrays of at most 16: the preconditioner is 3 diagonal blocks (14, 13, 13), each on its
    own shifted 8-level INV array; the MVM holds the full H in 16 x 16 tiles. PCG converges to the FULL system's
    solution, far below the error of the block-diagonal approximation (what K-FAC's max_block split computes)."""
    n = 40
    h = kfac_like_factor(n, 7)
    g = np.random.default_rng(7).standard_normal((n, 3))
    x_star = np.linalg.solve(h, g)
    solver = MethodSolver(RRAM, method="hp-inv", refinement="pcg", iterations=40, shift="auto", equilibrate=True,
                          operators="extracted", mvm={"slices": 6, "response": "closed-form"}, array_size=16)
    sol = solver.solve(h, g)
    assert sol.details["inv_blocks"] == 3 and max(sol.details["block_sizes"]) <= 16
    assert sol.details["mvm_arrays"] > 6                    # tiled: no MVM array larger than 16 x 16
    assert all(mu > 0 for mu in sol.details["block_shifts"])
    assert sol.relative_error <= 1e-3, [item["relative_error"] for item in sol.history]
    block_diag = np.zeros_like(h)
    for s in solver._impl.block_slices(n):
        block_diag[s, s] = h[s, s]
    bd_err = np.linalg.norm(np.linalg.solve(block_diag, g) - x_star) / np.linalg.norm(x_star)
    assert bd_err > 10 * sol.relative_error, (bd_err, sol.relative_error)
    assert sol.operations.programmings == 3 + sol.details["mvm_arrays"]
    # Richardson does not take the block-Jacobi route
    with pytest.raises(AmcError, match="pcg"):
        solve_system(h, g, method="hp-inv", config=RRAM, array_size=16)


def test_pcg_options_are_checked_and_linearity_reported():
    assert MethodSolver(RRAM, method="hp-inv", refinement="pcg").linear is False
    assert MethodSolver(RRAM, method="hp-inv", iterations=5).linear is True
    assert MethodSolver(RRAM, method="hp-inv", tol=1e-6).linear is False
    with pytest.raises(AmcError, match="refinement"):
        MethodSolver(RRAM, method="hp-inv", refinement="gmres")
    with pytest.raises(AmcError, match="shift"):
        MethodSolver(RRAM, method="hp-inv", shift=-1.0)
    noisy = RRAM.replace(**{"device.read_noise_sigma": 0.01})
    with pytest.raises(AmcError, match="read"):
        MethodSolver(noisy, method="hp-inv", operators="extracted")
    h = kfac_like_factor(8, 0)
    h[0, 1] += 0.1
    with pytest.raises(AmcError, match="symmetric"):
        solve_system(h, np.ones(8), method="hp-inv", config=RRAM, refinement="pcg", shift="auto")
