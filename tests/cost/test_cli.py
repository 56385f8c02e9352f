"""`amc cost` and the cost object of `amc solve --json`; the GPU benchmark skips cleanly without a GPU."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amc.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_cost_circuit_closed_form_json(capsys):
    assert main(["cost", "circuit", "--n", "16", "--lambda-min", "0.05", "--k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    cost = out["cost"]
    assert sum(cost["breakdown"].values()) == pytest.approx(cost["energy_j"], rel=1e-12)
    assert cost["breakdown"]["programming"] > 0


def test_cost_bad_input_is_one_line(capsys):
    assert main(["cost", "circuit", "--n", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--lambda-min" in err
    assert main(["cost", "nonsense"]) == 2
    assert "unknown cost command" in capsys.readouterr().err


def test_cost_training_figure(tmp_path, capsys):
    fig = tmp_path / "step.png"
    assert main(["cost", "training", str(ROOT / "configs/train/emnist-am-kfac-circuit.yaml"), "--channels", "7",
                 "--pool", "8", "--repeats", "1", "--figure", str(fig)]) == 0
    out = capsys.readouterr().out
    assert "conv A 26, G 7; fc A 64, G 13" in out and "CPU measured" in out
    assert fig.stat().st_size > 10_000


def test_solve_json_has_cost(tmp_path, capsys):
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    np.save(tmp_path / "h.npy", (q * np.linspace(0.5, 2, 5)) @ q.T)
    np.save(tmp_path / "g.npy", rng.standard_normal(5))
    assert main(["solve", "--matrix", str(tmp_path / "h.npy"), "--rhs", str(tmp_path / "g.npy"), "--preset",
                 "rram-ic", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cost = record["cost"]
    assert set(cost) == {"hardware_model", "time_s", "energy_j", "breakdown"}
    assert cost["hardware_model"].startswith("rram-ic: op-amp cmos-ic")
    assert sum(cost["breakdown"].values()) == pytest.approx(cost["energy_j"], rel=1e-12)
    # one programming of the 2 x 5 x 5 differential array dominates a single settle
    assert cost["breakdown"]["programming"] > cost["breakdown"]["opamps"]


@pytest.mark.slow
def test_gpu_benchmark_skips_cleanly_without_gpu():
    try:
        import torch  # noqa: F401
        if torch.cuda.is_available():
            pytest.skip("a GPU is present: the benchmark would run")
    except ImportError:
        pass
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_gpu_cholesky.py")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert r.stdout.strip().count("\n") == 0 and "skipped" in r.stdout


def test_cost_study_prices_records(tmp_path, capsys):
    """A record written with the shared schema (amc.record_schema) is priced exactly as the ledger prices its counts;
    engine-written sweeps and training studies: tests/test_user_inputs.py."""
    from amc.cost import HardwareCostModel, cost_of
    from amc.cost.ledger import settle_of_size
    from amc.hw.counters import OperationCounts
    from amc.record_schema import operation_metrics
    counts = OperationCounts(programmings=9, cells_programmed=9 * 2 * 16 * 16, inv_settles=3, mvm_reads=24,
                             dac_conversions=27 * 16, adc_conversions=27 * 16, digital_flops=1e4)
    records = [{"id": "p0", "status": "ok", "params": {}, "metrics": {**operation_metrics(counts, 16),
                                                                        "lambda_min": 0.05}},
               {"id": "p1", "status": "error", "params": {}, "metrics": {}}]
    (tmp_path / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert main(["cost", "study", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in out["records"]] == ["p0"] and out["skipped"]["not ok"] == 1
    hw = HardwareCostModel.for_circuit("rram-ic")
    expected = cost_of(counts, hw, n=16, settle=settle_of_size(16, 0.05, hw))
    assert out["records"][0]["cost"]["energy_j"] == pytest.approx(expected.energy_j, rel=1e-12)
    assert out["records"][0]["cost"]["time_s"] == pytest.approx(expected.time_s, rel=1e-12)
    assert main(["cost", "study", str(tmp_path / "missing")]) == 2
    assert "no records.jsonl" in capsys.readouterr().err


def test_cost_training_prices_the_method_the_run_simulated(capsys):
    """BlockAMC with shift: verify on 64-arrays is priced as such; HP-INV with its 60 iterations; a differing flag
    is priced and said to be NOT the simulated method."""
    blockamc = str(ROOT / "configs/train/emnist-am-kfac-blockamc64.yaml")
    assert main(["cost", "training", blockamc, "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "priced as simulated"
    assert "read-verified controller, arrays 64x64" in out["conditions"]
    assert main(["cost", "training", blockamc, "--repeats", "1", "--array-size", "128", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "NOT the simulated method: --array-size 128 (the run simulated 64)"
    slices2 = str(ROOT / "configs/train/emnist-am-kfac-blockamc64-slices2.yaml")
    assert main(["cost", "training", slices2, "--repeats", "1", "--json"]) == 0
    assert "with 2-slice couplings), read-verified" in json.loads(capsys.readouterr().out)["conditions"]
    hpinv = str(ROOT / "configs/train/emnist-am-kfac-circuit.yaml")
    assert main(["cost", "training", hpinv, "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["conditions"].startswith("HP-INV, 60 iterations") and out["method"] == "priced as simulated"


def test_cost_solve_and_breakeven_print_their_json(capsys):
    """Each --json prints one object whose ratios are its own entries' ratios (a NameError once broke both)."""
    assert main(["cost", "solve", "--n", "16", "--lambda-min", "0.05", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["throughput_ratio"] == pytest.approx(out["gpu"]["time_s"] / out["analog"]["time_s"])
    assert main(["cost", "breakeven", "--sizes", "16", "--lambdas", "0.1", "--levels", "16", "--repeats", "1",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["size"], r["lambda_min"], r["levels"]) for r in rows] == [(16, 0.1, 16)]
