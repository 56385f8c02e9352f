"""Seconds per epoch of one-step circuit K-FAC (every solve a settle of the programmed factor array) against exact
K-FAC on the 64x64 reference-model variant (conv 5x5 1->7, max-pool 8: factors 26, 7, 64, 13), measured in one run.

    python benchmarks/bench_kfac_circuit.py [--epochs 1] [--levels 16]

Real EMNIST a-m when ../shared/data/emnist-letters-am (or $AMC_DATA_DIR) is there, else the embedded synthetic
letters at the same size (the label says which). Target: circuit <= 5x exact. Training steps only (no evaluation).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training._blas import limit_blas_threads  # noqa: E402
from training.config import config_from_dict  # noqa: E402
from training.data import load_data  # noqa: E402
from training.loop import train  # noqa: E402


def run(label: str, solver: dict, data, epochs: float, tmp: Path) -> float:
    cfg = config_from_dict({
        "name": label, "model": {"channels": 7, "kernel": 5, "pool": 8},
        "optimizer": {"name": "kfac", "lr": 0.03, "damping": 1e-2, "inverse_every": 10, "solver": solver},
        "train": {"epochs": epochs, "batch_size": 64, "evals_per_epoch": 1, "progress": False, "checkpoint": False,
                  "resume": False, "out_dir": str(tmp / label)}}, source=label)
    result = train(cfg, data=data, out_dir=tmp / label)
    return result.final["train_time_s"] / (result.steps / result.steps_per_epoch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--levels", type=int, default=16)
    args = parser.parse_args()
    limit_blas_threads()
    import tempfile
    from training.config import DataConfig
    try:
        data = load_data(DataConfig(source="emnist", n_train=8000, n_test=2000))
    except Exception:
        data = load_data(DataConfig(source="synthetic-letters", n_classes=13, n_train=8000, n_test=2000))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exact = run("exact", {"backend": "numpy"}, data, args.epochs, tmp)
        circuit = run("circuit", {"backend": "circuit",
                                  "circuit": {"preset": "rram", "device": {"levels": args.levels,
                                                                           "program_sigma": 0.03}},
                                  "method": {"name": "direct", "equilibrate": True, "operators": "extracted"}},
                      data, args.epochs, tmp)
    print(f"data: {data[0].label}; {args.epochs:g} epoch(s); rram {args.levels} levels, 3 % programming error")
    print("| K-FAC | s / epoch |")
    print("|---|---|")
    print(f"| exact (numpy) | {exact:.2f} |")
    print(f"| one-step circuit (direct, settles from the measured response) | {circuit:.2f} |")
    print(f"ratio circuit / exact: {circuit / exact:.2f}x (target <= 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
