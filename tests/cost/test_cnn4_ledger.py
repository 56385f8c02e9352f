"""The larger task priced from its own training run: the ledger prices the 4-layer CNN (model.arch: cnn4) with the
loop lambda_min each factor measured in a study, settles by hand, and refuses a study of another network."""
import json
import math

from pathlib import Path

import pytest

from amc.cli import main
from amc.cost.to_target import LayeredCnnShape

ROOT = Path(__file__).resolve().parents[2]

# cnn4 on EMNIST a-m: factor sizes A 26/801/1025/129, G 32/64/128/13 (tests/training/test_cnn.py counts them)
MEASURED = {26: 0.051, 32: 0.62, 801: 0.0071, 64: 0.44, 1025: 0.0052, 128: 0.21, 129: 0.013, 13: 0.35}


def _cnn4_config(tmp_path):
    """The shipped circuit run of cnn4 (rram-ic, 16 levels, BlockAMC on 128x128 arrays)."""
    return ROOT / "configs/train/emnist-am-cnn4-kfac-circuit.yaml"


def _study(tmp_path, arch="cnn4", sizes=MEASURED):
    lam = {str(n): {"geomean": v, "min": v / 2, "solves": 10} for n, v in sizes.items()}
    records = [
        {"id": "d", "kind": "training", "status": "ok", "params": {},
         "metrics": {"epochs_to_target": 1.5, "steps": 250, "epochs": 2.0, "model_arch": arch}},
        {"id": "a", "kind": "training", "status": "ok", "params": {},
         "metrics": {"epochs_to_target": 1.75, "steps": 250, "epochs": 2.0, "model_arch": arch},
         "hardware": {"inv_settles": 250 * 3000, "programmings": 500, "loop_lambda_min_by_size": lam}},
    ]
    d = tmp_path / f"study-{arch}"
    d.mkdir()
    (d / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return d


def _hand_settle(n, lam):
    """rram-ic: GBW 695.1 MHz, settle band 1e-3, law offset 0.28 (amc/cost/settle.py); 2n amplifiers at 2 x 1.2 V x
    58.3 uA quiescent, x 1.034 for their output currents (amc/cost/ledger.py ENERGY_LAW_FACTOR)."""
    t = (math.log(1e3) + 0.28) / (2 * math.pi * 695.1e6 * lam)
    return t, t * 2 * n * 2 * 1.2 * 58.3e-6 * 1.034


def test_training_ledger_prices_cnn4_with_the_studys_measured_lambda(tmp_path, capsys):
    cfg, study = _cnn4_config(tmp_path), _study(tmp_path)
    assert main(["cost", "training", str(cfg), "--array-size", "128", "--json", "--repeats", "1",
                 "--study", str(study)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "measured" in out["lambda_min"] and "16 levels" in out["circuit"]    # priced = simulated
    assert out["lambda_min_used"] == pytest.approx({"conv1 A": 0.051, "conv1 G": 0.62, "conv2 A": 0.0071,
                                                    "conv2 G": 0.44, "fc1 A": 0.0052, "fc1 G": 0.21, "fc2 A": 0.013,
                                                    "fc2 G": 0.35}, rel=1e-12)
    # fc1 A (1025) runs on BlockAMC leaves of 128 rows: one settle of a 128-row leaf at the measured 0.0052
    t, e = _hand_settle(128, 0.0052)
    f = out["factor_settles"]["fc1 A"]
    assert (f["dim"], f["array"]) == (1025, 128)
    assert f["settle_s"] == pytest.approx(t, rel=1e-3) and f["settle_j"] == pytest.approx(e, rel=1e-3)
    t13, e13 = _hand_settle(13, 0.35)
    assert out["factor_settles"]["fc2 G"]["settle_s"] == pytest.approx(t13, rel=1e-3)
    assert out["factor_settles"]["fc2 G"]["settle_j"] == pytest.approx(e13, rel=1e-3)
    # ... not the assumed 0.0031 of every factor
    assert main(["cost", "training", str(cfg), "--array-size", "128", "--json", "--repeats", "1"]) == 0
    assumed = json.loads(capsys.readouterr().out)
    assert "not measured" in assumed["lambda_min"]
    assert assumed["factor_settles"]["fc1 A"]["settle_s"] == pytest.approx(_hand_settle(128, 0.0031)[0], rel=1e-3)
    assert out["analog"]["time_s"] < assumed["analog"]["time_s"]      # every measured lambda_min is above 0.0031
    # to target: the study's epochs x 125 steps x (K-FAC work + the cnn4 rest of step on the baseline)
    a = out["analog"]
    assert a["epochs_to_target"] == 1.75 and out["cpu"]["epochs_to_target"] == 1.5
    assert a["energy_to_target_j"] == pytest.approx((a["energy_j"] + a["rest_of_step"]["energy_j"]) * 1.75 * 125,
                                                    rel=1e-9)


def test_network_table_uses_the_study_and_says_when_lambda_is_assumed(tmp_path, capsys):
    study = _study(tmp_path)
    assert main(["cost", "network", "cnn4", "--classes", "13", "--skip-cpu", "--repeats", "1", "--json",
                 "--study", str(study)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lambda_min_used"]["conv2 A"] == pytest.approx(0.0071, rel=1e-12) and "measured" in out["lambda_min"]
    assert out["factor_settles"]["conv2 A"]["settle_s"] == pytest.approx(_hand_settle(128, 0.0071)[0], rel=1e-3)
    assert main(["cost", "network", "cnn4", "--skip-cpu", "--repeats", "1", "--json"]) == 0
    assert "ASSUMED" in json.loads(capsys.readouterr().out)["lambda_min"]


def test_a_study_of_another_network_is_refused(tmp_path, capsys):
    ref_study = _study(tmp_path, arch="reference")     # even with cnn4's factor sizes: the records say what trained
    assert main(["cost", "training", str(_cnn4_config(tmp_path)), "--array-size", "128", "--repeats", "1",
                 "--study", str(ref_study)]) == 2
    assert "the study trained model.arch reference, not 'cnn4'" in capsys.readouterr().err
    assert main(["cost", "network", "cnn4", "--classes", "13", "--skip-cpu", "--study", str(ref_study)]) == 2
    assert "not 'cnn4'" in capsys.readouterr().err
    # a cnn4 study with 10 classes measured G 10, not the 13 the priced network has: refused by factor name
    ten = _study(tmp_path, arch="cnn4", sizes={**{k: v for k, v in MEASURED.items() if k != 13}, 10: 0.3})
    assert main(["cost", "network", "cnn4", "--classes", "13", "--skip-cpu", "--study", str(ten)]) == 2
    assert "no loop lambda_min for factor size 13 (fc2 G)" in capsys.readouterr().err
    assert main(["cost", "network", "cnn4", "--study", str(ten), "--lambda-min", "0.01"]) == 2
    assert "--study or --lambda-min" in capsys.readouterr().err


def test_cnn4_step_work_by_hand():
    m = LayeredCnnShape.cnn4(classes=13, batch=64).step_macs()
    # positions: conv1 24^2 = 576, conv2 8^2 = 64; A 26/801/1025/129 (bias included), outputs 32/64/128/13
    fwd = 64 * 576 * 26 * 32 + 64 * 64 * 801 * 64 + 64 * 1025 * 128 + 64 * 129 * 13
    assert m["forward"] == fwd
    # weight gradients (the forward's work again) + input gradients of conv2, fc1, fc2 (bias column excluded)
    assert m["backward"] == fwd + 64 * 64 * 64 * 800 + 64 * 128 * 1024 + 64 * 13 * 128 == m["sampled backward"]
    assert m["factor statistics"] == (64 * 576 * (26 ** 2 + 32 ** 2) + 64 * 64 * (801 ** 2 + 64 ** 2)
                                      + 64 * (1025 ** 2 + 128 ** 2) + 64 * (129 ** 2 + 13 ** 2))


def test_cnn4_shape_is_the_trained_network():
    from training.cnn import LayeredCNN
    from training.kfac_layer import KFACLayer
    trained = [(KFACLayer(l).a_dim, KFACLayer(l).g_dim) for l in LayeredCNN.cnn4(n_classes=13).layers]
    assert [(a, g) for a, g, _ in LayeredCnnShape.cnn4(classes=13).layers()] == trained
