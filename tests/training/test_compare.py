import json

import pytest

from training.compare import epochs_to_target
from workflow.compare_study import run_compare
from training.config import compare_config_from_dict


def test_epochs_to_target_interpolates():
    h = [(0, 0.1), (0.25, 0.5), (0.5, 0.8), (0.75, 0.9)]
    assert epochs_to_target(h, 0.65) == pytest.approx(0.375)
    assert epochs_to_target(h, 0.8) == pytest.approx(0.5)
    assert epochs_to_target(h, 0.95) is None
    assert epochs_to_target([{"epoch": 0, "test_acc": 0.99}], 0.9) == 0.0


@pytest.mark.slow
def test_compare_end_to_end_tiny(tmp_path, monkeypatch):
    cfg = compare_config_from_dict({
        "name": "tiny", "target_accuracy": 0.3, "seeds": [0, 1],
        "data": {"source": "synthetic-letters", "n_classes": 3, "n_train": 150, "n_test": 60},
        "train": {"epochs": 1, "batch_size": 32, "train_eval_size": 60, "progress": False},
        "tune": {"n_val": 30},
        "optimizers": [{"label": "sgd-momentum", "optimizer": {"name": "sgd", "momentum": 0.9},
                        "lr_grid": [0.03, 0.1]},
                       {"label": "kfac", "optimizer": {"name": "kfac", "lr": 0.03}}]})
    lines = []
    s = run_compare(cfg, out_dir=tmp_path, log=lines.append)
    for f in ("summary.json", "results.md", "compare.png", "tune/records.jsonl", "final/records.jsonl"):
        assert (tmp_path / f).stat().st_size > 0
    assert set(s["optimizers"]) == {"sgd-momentum", "kfac"}
    assert len(s["optimizers"]["sgd-momentum"]["tuning"]) == 2
    md = (tmp_path / "results.md").read_text()
    assert "SYNTHETIC" in md and "| kfac |" in md
    def count():
        return sum(len((tmp_path / p / "records.jsonl").read_text().splitlines()) for p in ("tune", "final"))
    n_runs = count()
    assert n_runs == 2 + 2 * 2
    # rerun resumes from the sweep engine's records: nothing is trained again
    lines.clear()
    again = run_compare(cfg, out_dir=tmp_path, log=lines.append)
    assert count() == n_runs and again["optimizers"]["kfac"]["epochs_to_target"] == \
        s["optimizers"]["kfac"]["epochs_to_target"]
    assert sum("0 point(s) run" in ln and "already done" in ln for ln in lines) == 2, lines
