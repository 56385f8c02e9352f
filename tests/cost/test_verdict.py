"""The fair verdict: equal-technology engine by hand, breakdowns that sum, batched GPU, static power, priced = simulated."""
import json
import math
from pathlib import Path

import pytest

from amc.cost import HardwareCostModel
from amc.cost.digital import GpuModel, gpu_kfac
from amc.cost.kfac import CONTROLLER_FLOPS_PER_N3, REFERENCE_LOOP_LAMBDA, controller_flops, inv_leaves, kfac_step_cost
from amc.cost.ledger import opamp_power_w, static_cost, static_power_w
from amc.cost.node import DigitalNode, kfac_engine_cost
from amc.cost.to_target import CnnShape
from amc.cost.workloads import Dataflow, LayerFactors, cnn4, kfac_flops, reference_cnn, resnet18_cifar
from amc.errors import InputError
from amc.cli import main

ROOT = Path(__file__).resolve().parents[2]
RRAM_IC_CONFIG = ROOT / "configs/train/emnist-am64-kfac-rram-ic.yaml"


def test_engine_reproduces_a_hand_count():
    # one layer, A 3 x 3 and G 2 x 2, inverses every 2 steps, FP32 at the 45-nm source node (no scaling), 2 units
    # at 1 GHz. Inverse: (27 + 8) / 2 = 17.5 MACs, 3 (9 + 4) = 39 SRAM words; apply G^-1 dW A^-1: 2 x 3 x (3 + 2)
    # = 30 MACs, 9 + 4 + 4 x 6 = 37 words. Per step: 30 + 17.5 / 2 = 38.75 MACs, 37 + 39 / 2 = 56.5 words.
    node = DigitalNode("fp32", units=2, clock_hz=1e9, node_nm=45.0)
    c = kfac_engine_cost([(3, 2)], 2, node)
    mac = (3.7 + 0.9) * 1e-12
    assert c.breakdown["arithmetic"] == pytest.approx(38.75 * mac)
    assert c.breakdown["register file"] == pytest.approx(38.75 * mac)      # one RF access per MAC, ~1 MAC each
    assert c.breakdown["SRAM"] == pytest.approx(56.5 * 5e-12)
    assert c.energy_j == pytest.approx(sum(c.breakdown.values()), rel=1e-12)
    # time: apply 30 MACs / 2 per ns = 15 ns; the inverse is chain-bound: 2 x 3 columns x 20 cycles = 120 ns, / 2
    assert c.time_s == pytest.approx(15e-9 + 60e-9)
    # the engine does exactly the flops the ledger's K-FAC count says (2 per MAC)
    inverse, step = kfac_flops([LayerFactors("x", 3, 2)])
    assert c.detail["flops_per_step"] == pytest.approx(step + inverse / 2)


def test_engine_on_the_64x64_model_matches_the_issue_figures():
    # 168,366 flops per step; arithmetic alone at 45 nm: 387 nJ FP32 (2.3 pJ/flop), 126 nJ FP16
    dims = [(l.a_dim, l.g_dim) for l in reference_cnn()]
    fp32 = kfac_engine_cost(dims, 10, DigitalNode("fp32", node_nm=45.0))
    assert fp32.detail["flops_per_step"] == pytest.approx(168366)
    assert fp32.breakdown["arithmetic"] == pytest.approx(387e-9, rel=2e-3)
    fp16 = kfac_engine_cost(dims, 10, DigitalNode("fp16", node_nm=45.0))
    assert fp16.breakdown["arithmetic"] == pytest.approx(126e-9, rel=3e-3)
    # scaled to 40 nm: energy x 40/45, area x (40/45)^2
    at40 = kfac_engine_cost(dims, 10, DigitalNode("fp32"))
    assert at40.breakdown["arithmetic"] == pytest.approx(fp32.breakdown["arithmetic"] * 40 / 45)
    assert at40.area_mm2 == pytest.approx(fp32.area_mm2 * (40 / 45) ** 2)
    with pytest.raises(InputError, match="precision"):
        DigitalNode("fp8")


def test_gpu_batched_step_is_not_slower_than_its_parts_and_efficiency_is_smooth():
    gpu = GpuModel()
    for layers in (reference_cnn(), cnn4(), resnet18_cifar()):
        batched, parts = gpu_kfac(layers, 10, gpu), gpu_kfac(layers, 10, gpu, batched=False)
        assert batched.time_s <= parts.time_s
        assert batched.energy_j <= parts.energy_j
    # the 64x64 model's step: 2 launches for the products + 2 per inverse update amortised over 10 steps
    b = gpu_kfac(reference_cnn(), 10, gpu)
    assert b.time_s >= 2 * 5e-6 + 2 * 5e-6 / 10
    effs = [gpu.efficiency(n) for n in range(8, 5000)]
    assert all(e2 > e1 for e1, e2 in zip(effs, effs[1:]))
    assert gpu.efficiency(513) / gpu.efficiency(512) < 1.01          # no cliff
    assert gpu.efficiency(100000) == pytest.approx(0.7, rel=1e-3)


def test_static_power_grows_linearly_with_step_time():
    hw = HardwareCostModel.preset("rram-ic")
    arrays = [(64, 2e-6, 1e-6), (13, 0.5e-6, 0.2e-6)]
    always = hw.replace(static=hw.static.__class__(policy="always-on"))
    for model in (hw, always):
        e = [static_cost(arrays, t, model)[0] for t in (10e-6, 20e-6, 40e-6)]
        slope = (e[1] - e[0]) / 10e-6
        assert (e[2] - e[1]) / 20e-6 == pytest.approx(slope)            # linear in step time
        leak = sum(static_power_w(n, model) for n, _, _ in arrays)
        amps = sum(opamp_power_w(n, model) for n, _, _ in arrays)
        # gated: only references and leakage scale with the step; always-on: the op-amps too
        assert slope == pytest.approx(leak + (amps if model is always else 0.0))
    # gated pays one wake-up (its time and the amplifiers' quiescent power meanwhile) per array per step
    e_gated, wake = static_cost(arrays, 10e-6, hw)
    assert wake == pytest.approx(hw.static.wake_time_s)
    amps_on = sum(opamp_power_w(n, hw) * (busy + hw.static.wake_time_s - settle) for n, busy, settle in arrays)
    leak_on = sum(static_power_w(n, hw) for n, _, _ in arrays) * (10e-6 + wake)
    assert e_gated == pytest.approx(amps_on + leak_on)


def test_controller_work_double_buffering_and_area():
    assert CONTROLLER_FLOPS_PER_N3 == pytest.approx(14.0)
    assert controller_flops(64, 64) == pytest.approx(14.0 * 64 ** 3)
    assert sum(inv_leaves(289, 128)) == 289 and max(inv_leaves(289, 128)) <= 128
    hw = HardwareCostModel.preset("rram-ic")
    layers = reference_cnn()
    single = kfac_step_cost(layers, hw, Dataflow("direct"), 64, 10, REFERENCE_LOOP_LAMBDA)
    double = kfac_step_cost(layers, hw.replace(double_buffered=True), Dataflow("direct"), 64, 10,
                            REFERENCE_LOOP_LAMBDA)
    assert double.per_step.time_s < single.per_step.time_s
    assert double.area["cells"] == pytest.approx(2 * single.area["cells"])
    # cells: 2 (26^2 + 7^2 + 64^2 + 13^2) differential cells of 60 F^2 at 40 nm
    assert single.area["cells"] == pytest.approx(2 * (26 ** 2 + 7 ** 2 + 64 ** 2 + 13 ** 2) * 0.096e-6)
    shared = kfac_step_cost(layers, hw.replace(outputs_per_adc=4), Dataflow("direct"), 64, 10, REFERENCE_LOOP_LAMBDA)
    assert shared.area["converters"] < single.area["converters"]
    assert shared.per_step.time_breakdown["conversions"] > single.per_step.time_breakdown["conversions"]
    copies = kfac_step_cost(layers, hw, Dataflow("direct"), 64, 10, REFERENCE_LOOP_LAMBDA, parallel_arrays=2)
    assert copies.area_mm2 == pytest.approx(2 * single.area_mm2)      # every copy has its cells and periphery
    # endurance: one cycle per write pulse (10 per cell per programming)
    cells = 2 * (26 ** 2 + 7 ** 2 + 64 ** 2 + 13 ** 2)
    assert single.per_step.cell_cycles == pytest.approx(cells * 10 / 10)


def _study(tmp_path, reached=True):
    lam = {"7": {"geomean": 0.8, "min": 0.7, "solves": 10}, "13": {"geomean": 0.13, "min": 0.1, "solves": 10},
           "26": {"geomean": 0.047, "min": 0.04, "solves": 10}, "64": {"geomean": 0.0043, "min": 0.0026,
                                                                        "solves": 10}}
    records = [
        {"id": "d", "kind": "training", "status": "ok", "params": {},
         "metrics": {"epochs_to_target": 1.5, "steps": 250, "epochs": 2.0}},
        {"id": "a", "kind": "training", "status": "ok", "params": {},
         "metrics": {"epochs_to_target": 2.5 if reached else math.nan, "steps": 250, "epochs": 2.0},
         "hardware": {"inv_settles": 250 * 110, "programmings": 100, "loop_lambda_min_by_size": lam}},
    ]
    (tmp_path / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return tmp_path


def test_training_json_has_four_entries_whose_breakdowns_sum(tmp_path, capsys):
    study = _study(tmp_path)
    assert main(["cost", "training", str(RRAM_IC_CONFIG), "--json", "--repeats", "1", "--study", str(study)]) == 0
    out = json.loads(capsys.readouterr().out)
    for name in ("analog", "digital_same_node", "cpu", "gpu"):
        e = out[name]
        assert {"time_s", "energy_j", "area_mm2", "breakdown"} <= set(e)
        assert sum(e["breakdown"].values()) == pytest.approx(e["energy_j"], rel=1e-9)
        assert e["energy_to_target_j"] == pytest.approx(
            (e["energy_j"] + e["rest_of_step"]["energy_j"]) * e["epochs_to_target"] * 125, rel=1e-9)
        assert e["time_to_target_s"] > 0
    assert "static" in out["analog"]["breakdown"] and out["analog"]["breakdown"]["static"] > 0
    assert out["analog"]["epochs_to_target"] == 2.5 and out["cpu"]["epochs_to_target"] == 1.5
    assert out["analog"]["area_mm2"] > 0 and out["digital_same_node"]["area_mm2"] > 0
    # priced = simulated: the run's 16-level rram-ic circuit and the study's measured lambda_min
    assert "16 levels" in out["circuit"] and "measured" in out["lambda_min"]
    assert out["lambda_min_used"]["fc A"] == pytest.approx(0.0043)
    assert out["measured_over_planned"]["settle_scale"] == pytest.approx(1.0)
    assert out["measured_over_planned"]["programming_scale"] == pytest.approx(100 / 250 / 0.4)
    assert out["reached"] is None


def test_training_says_when_the_priced_config_missed_the_target(tmp_path, capsys):
    study = _study(tmp_path, reached=False)
    assert main(["cost", "training", str(RRAM_IC_CONFIG), "--repeats", "1", "--study", str(study)]) == 0
    assert "did not reach the target (0/1 runs)" in capsys.readouterr().out
    assert main(["cost", "training", str(RRAM_IC_CONFIG), "--json", "--repeats", "1", "--preset", "rram-ic",
                 "--study", str(study)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["analog"]["energy_to_target_j"] is None and "NOT the simulated" in out["circuit"]
    assert main(["cost", "training", str(RRAM_IC_CONFIG), "--study", str(tmp_path / "missing")]) == 2
    assert "no records.jsonl" in capsys.readouterr().err
    assert main(["cost", "training", str(RRAM_IC_CONFIG), "--engine-units", "0"]) == 2
    assert "--engine-units" in capsys.readouterr().err
    # a study of another model measured other factor sizes: refused by name, not priced with the wrong lambda_min
    assert main(["cost", "training", str(ROOT / "configs/train/emnist-am-kfac-circuit.yaml"), "--study",
                 str(study)]) == 2
    assert "no loop lambda_min for factor size" in capsys.readouterr().err


def test_cnn_step_work_by_hand():
    s = CnnShape(channels=7, pool=8, kernel=5, classes=13, batch=64)
    m = s.step_macs()
    # conv: 64 x 576 positions x 7 x 26; fc: 64 x 64 x 13
    assert m["forward"] == 64 * 576 * 7 * 26 + 64 * 64 * 13
    assert m["backward"] == 64 * 576 * 7 * 26 + 2 * 64 * 64 * 13 == m["sampled backward"]
    assert m["factor statistics"] == 64 * 576 * (26 ** 2 + 7 ** 2) + 64 * (64 ** 2 + 13 ** 2)
