"""`make sim` main job in its --quick mode: circuit deck, training beside the baselines, figures, summary."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_main_job_quick(tmp_path):
    out = tmp_path / "sim"
    proc = subprocess.run([sys.executable, "-m", "workflow.main_job", "--quick", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("| kfac-exact |", "| kfac-circuit direct (one-step INV) (16 levels) |",
                "| kfac-circuit hp-inv pcg k=2 (8 levels) |",
                "| kfac-circuit hp-inv pcg k=2 (identity control) (8 levels) |", "| sgd-momentum |", "| adam |"):
        assert row in proc.stdout, row
    assert "What the arrays did" in proc.stdout
    assert f"results in {out.resolve()}" in proc.stdout
    deck = (out / "circuit" / "inv_circuit_op.cir").read_text()
    assert ".op" in deck and ".end" in deck
    assert ".include" not in deck and "max|g| = " in deck and "not recorded" not in deck  # kept decks travel
    summary = json.loads((out / "summary.json").read_text())
    # one 8-level INV gives a few bits; 3 PCG iterations with it as preconditioner beat the same 3 without it
    circuit = summary["circuit"]
    assert 1e-3 < circuit["relative_error_op"] < 1.5
    assert circuit["relative_error_hpinv_pcg"] < circuit["relative_error_identity_control"]
    assert circuit["hpinv_operations"]["inv_settles"] == 3 and circuit["control_operations"]["inv_settles"] == 0
    assert len(summary["training"]) == 6
    for label, entry in summary["training"].items():      # the account is in every circuit row
        assert ("hardware" in entry) == label.startswith("kfac-circuit"), label
    for name in ("training_curves", "epochs_to_target"):
        assert (out / "training" / "figures" / f"{name}.png").exists()
        assert (out / "training" / "figures" / f"{name}.svg").exists()
    assert (out / "circuit" / "transient_outputs.png").exists()
    records = [json.loads(l) for l in (out / "training" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    assert all(r["curves"]["test_accuracy"] for r in records)
