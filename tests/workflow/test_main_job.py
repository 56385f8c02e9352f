"""`make sim` main job in its --quick mode: circuit deck, training beside the baselines, figures, summary."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_main_job_quick(tmp_path):
    out = tmp_path / "sim"
    proc = subprocess.run([sys.executable, "-m", "workflow.main_job", "--quick", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("| kfac-exact |", "| kfac-circuit direct (one-step INV) (16 levels) |",
                "| identity control (K-FAC, identity for the inverses = SGD lr 0.03) |", "| sgd-momentum |",
                "| adam |"):
        assert row in proc.stdout, row
    # one line says what the analog array decided, from the numbers of this run
    verdict = proc.stdout.strip().splitlines()[-1]
    assert verdict.startswith("Verdict: ") and "identity control" in verdict
    summary = json.loads((out / "summary.json").read_text())
    a, b = summary["circuit"]["relative_error_hpinv_pcg"], summary["circuit"]["relative_error_identity_control"]
    assert ("decides the solve" in verdict) == (b > 2 * a)
    # board-level power is labelled as such; the on-chip cost is the rram-ic ledger's
    assert "board-level" in proc.stdout and "on chip (rram-ic" in proc.stdout
    chip = summary["circuit"]["on_chip"]
    assert chip["preset"] == "rram-ic" and 0 < chip["settle_energy_j"] < chip["energy_j"] < summary["circuit"]["energy_j"]
    deck_out = subprocess.run(["ngspice", "-b", "inv_circuit_op.cir"], cwd=out / "circuit", capture_output=True,
                              text=True)
    x_printed = [float(v) for v in re.findall(r"^x_\d+ = (\S+)$", deck_out.stdout, re.M)]
    x_op = np.loadtxt(out / "circuit" / "solution.csv", delimiter=",", skiprows=1)[:, 1]
    np.testing.assert_allclose(x_printed, x_op, rtol=1e-6)
    assert "What the arrays did" in proc.stdout
    assert f"results in {out.resolve()}" in proc.stdout
    deck = (out / "circuit" / "inv_circuit_op.cir").read_text()
    assert ".op" in deck and ".end" in deck
    assert ".include" not in deck and "max|g| = " in deck and "not recorded" not in deck  # kept decks travel
    # one 8-level INV gives a few bits; 3 PCG iterations with it as preconditioner beat the same 3 without it
    circuit = summary["circuit"]
    assert 1e-3 < circuit["relative_error_op"] < 1.5
    assert circuit["relative_error_hpinv_pcg"] < circuit["relative_error_identity_control"]
    assert circuit["hpinv_operations"]["inv_settles"] == 3 and circuit["control_operations"]["inv_settles"] == 0
    assert len(summary["training"]) == 5
    for label, entry in summary["training"].items():      # the account is in every circuit row
        assert ("hardware" in entry) == label.startswith("kfac-circuit"), label
    for name in ("training_curves", "epochs_to_target"):
        assert (out / "training" / "figures" / f"{name}.png").exists()
        assert (out / "training" / "figures" / f"{name}.svg").exists()
    assert (out / "circuit" / "transient_outputs.png").exists()
    records = [json.loads(l) for l in (out / "training" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 5 and all(r["status"] == "ok" for r in records)
    assert all(r["curves"]["test_accuracy"] for r in records)
