"""The read-verified controller (amc/hw/controller.py): hand counts of its reads and flops, the least shift that
works, estimates from reads against the exact (diagnostic) values, and MVM reads of the INV cells against ngspice."""
from __future__ import annotations

import numpy as np
import pytest

from amc.config import CircuitConfig
from amc.hw.controller import CellReader, program_and_verify, verify
from amc.hw.inv_array import InvArray
from amc.hw.runner import session
from amc.methods import MethodSolver
from amc.methods.config import MethodConfig
from workflow.matrices import kfac_like_factor

# 16 levels, no programming error or noise, ideal converters: a read has no random part, so counts are exact.
QUIET = CircuitConfig.preset("rram").replace(**{"device.levels": 16, "io.equilibrate": True})


def _well_conditioned(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4 * n))
    return x @ x.T / (4 * n) + 0.5 * np.eye(n)


def test_controller_reads_and_flops_equal_a_hand_count():
    """n = 12, 8 Lanczos settles, one write, no shift: every read and flop counted by hand."""
    n = 12
    h = _well_conditioned(n, 3)
    array = InvArray(QUIET, rng=np.random.default_rng(5))
    decision = program_and_verify(array, h, margin=0.02)
    assert decision["shift"] == 0.0 and decision["writes"] == 1
    c = array.controller_counts
    # 8 settles: no re-ranging (ideal converters, no offset; the first settle aims below the swing)
    assert c.inv_settles == 8 and c.dac_conversions == 8 * n and c.adc_conversions == 8 * n
    assert c.mvm_reads == 0 and c.programmings == 0
    # start vector: norm 2n + scale n = 36; Lanczos step k: alpha 2n + w 4n + ||w|| 2n = 8n = 96, Ritz values
    # 10 k^2, w/beta n = 12 on the first 7 steps; the reads' periphery scaling D on input and output: 2n = 24 each
    hand = 36 + sum(96 + 10 * k * k for k in range(1, 9)) + 7 * 12 + 8 * 24
    assert hand == 3120 and c.digital_flops == hand
    # the write itself is the array's, not the controller's: counted once in array.counts
    assert array.counts.programmings == 1 and array.counts.cells_programmed == 2 * n * n
    assert array.counts.inv_settles == c.inv_settles


def test_a_solve_with_a_compensated_shift_counts_its_mvm_reads_and_flops():
    """8 levels leave a K-FAC-like factor below the margin: the controller grows a shift, and each right-hand side
    pays one MVM read of the same cells, one extra settle and 6n flops of glue."""
    n, k = 36, 3
    h = kfac_like_factor(n, 0)
    g = np.random.default_rng(1).standard_normal((n, k))
    solver = MethodSolver(QUIET.replace(**{"device.levels": 8}), method={"preset": "direct", "operators": "extracted",
                                                                    "shift_compensation": "mvm"})
    sol = solver.solve(h, g)
    assert sol.details["shift"] > 0 and sol.details["shift_compensated"]
    assert sol.details["controller_history"][0]["shift"] == 0.0          # grown from 0 ...
    assert not sol.details["controller_history"][0]["passed"]            # ... because the measured check failed
    again = solver.solve(h, g)                                          # the programmed array, solved again
    ops, ctrl = again.operations, again.details["controller_operations"]
    assert ops.programmings == 0 and ctrl["mvm_reads"] == k and ops.mvm_reads == k
    assert ctrl["inv_settles"] == k and ops.inv_settles == 2 * k        # the solve's settle + the correction's
    # glue 6nk + the correction settle's D scaling 2nk
    assert ctrl["digital_flops"] == 6 * n * k + 2 * n * k
    # the deliberate bias is reported apart from the device error
    assert 0 < again.bias_error < 0.5 and again.device_error > 0 and -1 <= again.step_cosine <= 1


def test_the_shift_is_zero_where_the_measured_check_passes():
    n = 16
    for seed in range(3):
        h = _well_conditioned(n, seed)
        g = np.random.default_rng(seed).standard_normal(n)
        sol = MethodSolver(QUIET, method={"preset": "direct", "operators": "extracted"}).solve(h, g)
        assert sol.details["shift"] == 0.0 and sol.details["controller_writes"] == 1
        assert sol.details["controller_history"][0]["passed"]
        assert sol.operations.mvm_reads == 0 and sol.bias_error == 0.0     # nothing deliberate to compensate
        assert sol.relative_error == pytest.approx(sol.device_error)


def test_verify_estimates_lambda_min_and_input_scale_from_reads():
    """Lanczos through 8 settles lands within 10 % of the exact values (diagnostics, not used by the controller)."""
    n = 24
    h = _well_conditioned(n, 7)
    array = InvArray(QUIET.replace(**{"device.levels": None}), rng=np.random.default_rng(2)).program(h)
    check = verify(array, margin=0.02)
    m = array.mapped.effective_conductance(QUIET.opamp.gain) / array.mapped.g0
    exact_lam = float(np.linalg.eigvalsh((m + m.T) / 2).min())
    assert not check.railed
    assert exact_lam <= check.lambda_min_estimate * (1 + 1e-9) < 1.1 * exact_lam
    assert array.measured_inverse_norm == pytest.approx(1 / check.lambda_min_estimate)


def test_a_diverging_loop_is_seen_as_railed_outputs_and_shifted():
    """An indefinite mapped factor: the first write's verify settle rails; the controller shifts until it passes."""
    h = kfac_like_factor(36, 0)
    array = InvArray(QUIET.replace(**{"device.levels": 8, "device.program_sigma": 0.03}),
                     rng=np.random.default_rng(0))
    decision = program_and_verify(array, h, margin=0.02)
    first = decision["history"][0]
    assert first["shift"] == 0.0 and first["railed"] and first["settles"] == 1
    assert decision["shift"] > 0 and decision["history"][-1]["passed"]
    assert array.counts.programmings == decision["writes"]


def test_mvm_read_of_the_inv_cells_equals_ngspice():
    """One MVM read of the programmed cells (measured response) against ngspice's .op of the same MVM deck."""
    from amc.hw.mvm import build_mvm_deck
    config = QUIET.replace(**{"device.levels": 8})
    h = _well_conditioned(6, 4)
    array = InvArray(config).program(h)
    reader = CellReader(array)
    u = np.random.default_rng(3).standard_normal(6)
    read = reader.read(u)
    volts = 0.2 * u / np.abs(u).max()
    ng = session()
    try:
        ng.load(build_mvm_deck(array.mapped.g_pos, array.mapped.g_neg, volts, reader.rf, config))
        raw = ng.run([f"out_{i}" for i in range(6)])
    finally:
        ng.clean()
    out = np.array([raw[f"out_{i}"][-1] for i in range(6)])
    spice = -out * reader.gain_trim / reader.rf / (array.mapped.g0 * 0.2) * np.abs(u).max()
    np.testing.assert_allclose(read, spice, rtol=1e-6, atol=1e-9 * np.abs(spice).max())
    assert np.linalg.norm(read - array.mapped.h_mapped @ u) < 1e-3 * np.linalg.norm(read)   # A u of the cells


def test_direct_presets_name_their_recipe():
    assert MethodConfig.preset("direct").shift == "verify"
    assert MethodConfig.preset("direct-legacy-shift").shift == "auto"
    with pytest.raises(Exception, match="verify"):
        MethodConfig.from_spec({"preset": "hpinv-pcg", "shift": "verify"})


def test_the_clip_of_the_programming_error_is_reported():
    """Cells at the top level (an equilibrated factor's diagonal) lose the upper half of their error to the clip."""
    from amc.hw.mapping import map_matrix
    device = QUIET.device.__class__(levels=16, program_sigma=0.03)
    mapped = map_matrix(np.eye(40) + 0.1, device, rng=np.random.default_rng(0))
    c = mapped.clipping
    assert c["top_level_cells"] == 40 and 10 < c["at_g_max"] <= 40
    # E[min(e, 0)] for e ~ N(0, 0.03): -0.03 / sqrt(2 pi) = -0.012; 40 cells: within 3 standard errors
    assert abs(c["top_level_mean_error"] + 0.03 / np.sqrt(2 * np.pi)) < 3 * 0.03 * 0.6 / np.sqrt(40)
