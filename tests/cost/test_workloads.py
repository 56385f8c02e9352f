"""K-FAC factor sizes from architectures and dataflow operation counts, checked by hand."""
import numpy as np
import pytest

from amc.cost import HardwareCostModel
from amc.cost.digital import GpuModel, gpu_kfac, gpu_solve, measure_cpu_kfac
from amc.cost.kfac import REFERENCE_LOOP_LAMBDA, kfac_step_cost
from amc.cost.workloads import (Dataflow, cnn4, factor_counts, inv_plan, kfac_flops, reference_cnn,
                                resnet18_cifar)
from amc.errors import InputError


def test_reference_variant_factor_sizes():
    layers = reference_cnn(channels=7, pool=8, classes=13)
    assert [(l.a_dim, l.g_dim) for l in layers] == [(26, 7), (64, 13)]
    assert [(l.a_rhs, l.g_rhs) for l in layers] == [(7, 26), (13, 64)]


def test_resnet18_factor_sizes():
    layers = resnet18_cifar()
    assert len(layers) == 21                          # 17 convs, 3 shortcuts, fc
    dims = {l.name: (l.a_dim, l.g_dim) for l in layers}
    assert dims["conv1"] == (27, 64)                   # 3 * 3 * 3, no bias
    assert dims["layer2.0.conv1"] == (576, 128)
    assert dims["layer2.0.shortcut"] == (64, 128)
    assert dims["layer4.1.conv2"] == (4608, 512)
    assert dims["fc"] == (513, 10)
    assert [(l.a_dim, l.g_dim) for l in cnn4()] == [(26, 32), (801, 64), (1025, 128), (129, 10)]


def test_direct_counts_by_hand():
    setup, step = factor_counts(26, 7, 64, Dataflow("direct"))
    assert (setup.programmings, setup.cells_programmed) == (1, 2 * 26 * 26)
    assert (step.inv_settles, step.dac_conversions, step.adc_conversions) == (7, 182, 182)


def test_blockamc_counts_by_hand():
    # d = 12 on arrays of 8: A 8x8, S 4x4, B 8x4, C 4x8 (one tile each)
    setup, solve = inv_plan(12, 8)
    assert setup.programmings == 4
    assert setup.cells_programmed == 2 * 64 + 2 * 16 + 2 * 32 + 2 * 32
    # setup: Y = A^-1 B: 4 settles of A; S = D - C Y: 4 reads of C
    assert (setup.inv_settles, setup.mvm_reads) == (4, 4)
    # solve: A twice, S once, C and B once each
    assert (solve.inv_settles, solve.mvm_reads) == (3, 2)
    assert solve.dac_conversions == 8 + 8 + 4 + 8 + 4   # INV A, A, S; MVM C (8 inputs), B (4 inputs)


def test_hpinv_counts_by_hand():
    _, step = factor_counts(16, 2, 16, Dataflow("hpinv", iterations=3, slices=4))
    assert step.inv_settles == 2 * 3
    assert step.mvm_reads == 2 * 3 * 4
    # the PCG the method runs (amc/methods/hpinv.py), per iteration and column: shift-and-add of 4 slices (4 x 16),
    # residual scaling around the INV (2 x 16), PCG dot products and updates (10 x 16); once: Jacobi scaling (4 x 16)
    assert step.digital_flops == pytest.approx(2 * (3 * (4 * 16 + 2 * 16 + 10 * 16) + 4 * 16))


def test_kfac_flops_by_hand():
    inv, step = kfac_flops(reference_cnn())
    assert inv == 26 ** 3 + 7 ** 3 + 64 ** 3 + 13 ** 3
    assert step == 2 * 7 * 26 * 33 + 2 * 13 * 64 * 77


def test_kfac_step_cost_parallel_layers_and_amortised_programming():
    hw = HardwareCostModel.preset("rram-ic")
    layers = reference_cnn()
    par = kfac_step_cost(layers, hw, Dataflow("direct"), 64, 10, REFERENCE_LOOP_LAMBDA)
    ser = kfac_step_cost(layers, hw, Dataflow("direct"), 64, 10, REFERENCE_LOOP_LAMBDA, layers_parallel=False)
    dynamic = lambda k: k.per_step.energy_j - k.per_step.breakdown["static"]
    assert dynamic(par) == pytest.approx(dynamic(ser))
    assert par.per_step.time_s < ser.per_step.time_s
    # the static draw follows the critical path: the serial step pays more of it
    assert ser.per_step.breakdown["static"] > par.per_step.breakdown["static"]
    wake = hw.static.wake_time_s
    assert par.per_step.time_s == pytest.approx(max(c.time_s for c in par.layers.values()) + wake)
    every = kfac_step_cost(layers, hw, Dataflow("direct"), 64, 1, REFERENCE_LOOP_LAMBDA)
    prog = lambda k: k.per_step.breakdown["programming"]
    assert prog(every) == pytest.approx(10 * prog(par))
    assert par.per_epoch(125).energy_j == pytest.approx(125 * par.per_step.energy_j)
    with pytest.raises(InputError, match="inverse_every"):
        kfac_step_cost(layers, hw, Dataflow("direct"), 64, 0)
    with pytest.raises(InputError, match="unknown dataflow"):
        Dataflow("magic")


def test_gpu_model_by_hand(tmp_path):
    gpu = GpuModel()
    s = gpu_solve(128, gpu)
    flops = 2 / 3 * 128 ** 3 + 2 * 128 ** 2
    # smooth efficiency curve e(n) = 0.7 n^2 / (n^2 + h^2) with e(64) = 0.03: h^2 = 64^2 (0.7 / 0.03 - 1)
    eff = 0.7 * 128 ** 2 / (128 ** 2 + 64 ** 2 * (0.7 / 0.03 - 1))
    assert gpu.efficiency(64) == pytest.approx(0.03)
    assert s.time_s == pytest.approx(flops / (19.5e12 * eff) + 2 * 5e-6)
    assert s.energy_j == pytest.approx(400 * 0.25 * s.time_s)    # dynamic power: 25 % of TDP
    path = tmp_path / "gpu.json"
    path.write_text(GpuModel(small_matrix_efficiency=0.1, source="test").to_json())
    assert GpuModel.from_json(path).small_matrix_efficiency == 0.1
    g = gpu_kfac(reference_cnn(), 10, gpu)
    assert g.time_s > 2 * 5e-6    # at least the two batched per-step product launches


def test_cpu_measurement_is_positive_and_consistent():
    c = measure_cpu_kfac(reference_cnn(), 10, repeats=2)
    assert c.time_s > 0 and c.energy_j > 0
    assert c.time_s == pytest.approx(c.detail["apply_s"] + c.detail["inverse_update_s"] / 10)


def test_the_read_verified_controller_is_priced_by_its_reads_not_by_the_oracle_analysis():
    """shift: verify accepts a write after min(8, n) counted Lanczos settles (amc/hw/controller.py) and no digital
    analysis of the written matrix; shift: auto pays CONTROLLER_FLOPS_PER_N3 n^3 instead."""
    from amc.cost.kfac import CONTROLLER_FLOPS_PER_N3, factor_cost
    from amc.hw.controller import verify_flops
    oracle, verify = Dataflow("direct"), Dataflow("direct", controller="verify")
    for n in (5, 26):
        (p_oracle, _), (p_verify, _) = factor_counts(n, 1, 64, oracle), factor_counts(n, 1, 64, verify)
        assert p_verify.inv_settles - p_oracle.inv_settles == min(8, n)
        # the controller's own work plus the equilibrated array's 2 n scaling flops per settle (plan.inv_settles)
        assert p_verify.digital_flops - p_oracle.digital_flops == pytest.approx(verify_flops(n) + 2 * n * min(8, n))
    hw = HardwareCostModel.preset("rram-ic")
    setup_oracle = factor_cost(26, 1, hw, oracle, 64, 0.05)[0]
    setup_verify = factor_cost(26, 1, hw, verify, 64, 0.05)[0]
    # the oracle pays its analysis in digital work; the verify controller pays settles instead
    assert setup_oracle.breakdown["digital remainder"] > 10 * setup_verify.breakdown["digital remainder"]
    assert setup_oracle.breakdown["ADC"] == 0 < setup_verify.breakdown["ADC"]
    assert CONTROLLER_FLOPS_PER_N3 * 26 ** 3 > verify_flops(26)
    with pytest.raises(InputError, match="controller 'verify'"):
        Dataflow("hpinv", controller="verify")
    with pytest.raises(InputError, match="unknown controller"):
        Dataflow("direct", controller="magic")


def test_blockamc_coupling_slices_are_priced_as_the_run_holds_them():
    """289 on 64-arrays: 5 INV leaves + 20 coupling tiles with one slice, + 20 more with two (hand count)."""
    one = factor_counts(289, 0, 64, Dataflow("direct"))[0]
    two = factor_counts(289, 0, 64, Dataflow("direct", coupling_slices=2))[0]
    assert (one.programmings, two.programmings) == (25, 45)
    assert factor_counts(26, 0, 64, Dataflow("direct", coupling_slices=2))[0] == factor_counts(26, 0, 64, Dataflow())[0]
