"""Seconds per epoch of one-step circuit K-FAC (every solve a settle of the programmed factor array) against exact
K-FAC, measured in one run: on the 64x64 reference-model variant (conv 5x5 1->7, max-pool 8: factors 26, 7, 64,
13; target <= 5x), or on the reference model with its full 289x289 fc A factor on ONE array (``--model reference``,
target <= 10x; a few steps are enough: ``--max-steps 30``).

    python benchmarks/bench_kfac_circuit.py [--epochs 1] [--levels 16] [--model am64|reference] [--max-steps N]
                                            [--warm]

Re-stamped programmings (simulation.verify_every, default 25): ngspice's .op runs once per array topology and later
programmings re-stamp its matrix. ``--warm`` first runs one step (which programs every factor's topology once, the
289 array's .op included) and reports that one-time cost apart; the ratio is then the steady state of a run, and the
ratio with the one-time cost spread over the timed steps is printed beside it.

Real EMNIST a-m when ../shared/data/emnist-letters-am (or $AMC_DATA_DIR) is there, else the embedded synthetic
letters at the same size (the label says which). Target: circuit <= 5x exact. Training steps only (no evaluation).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amc.blas import limit_blas_threads  # noqa: E402
from training.config import config_from_dict  # noqa: E402
from training.data import load_data  # noqa: E402
from training.loop import train  # noqa: E402


MODELS = {"am64": {"channels": 7, "kernel": 5, "pool": 8}, "reference": {"channels": 8, "kernel": 5, "pool": 4}}


def run(label: str, solver: dict, data, epochs: float, tmp: Path, model: str = "am64",
        max_steps=None, account: dict = None) -> float:
    cfg = config_from_dict({
        "name": label, "model": MODELS[model],
        "optimizer": {"name": "kfac", "lr": 0.03, "damping": 1e-2, "inverse_every": 10, "solver": solver},
        "train": {"epochs": epochs, "batch_size": 64, "evals_per_epoch": 1, "progress": False, "checkpoint": False,
                  "resume": False, "out_dir": str(tmp / label), "max_steps": max_steps}}, source=label)
    result = train(cfg, data=data, out_dir=tmp / label)
    if account is not None:
        account.update(result.final.get("hardware") or {}, steps=result.steps, time_s=result.final["train_time_s"])
    return result.final["train_time_s"] / (result.steps / result.steps_per_epoch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--levels", type=int, default=16)
    parser.add_argument("--model", choices=sorted(MODELS), default="am64")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (s/epoch is scaled)")
    parser.add_argument("--warm", action="store_true", help="program every topology once before the timed run")
    args = parser.parse_args()
    limit_blas_threads()
    import tempfile
    from training.config import DataConfig
    try:
        data = load_data(DataConfig(source="emnist", n_train=8000, n_test=2000))
    except Exception:
        data = load_data(DataConfig(source="synthetic-letters", n_classes=13, n_train=8000, n_test=2000))
    circuit_solver = {"backend": "circuit",
                      "circuit": {"preset": "rram", "device": {"levels": args.levels, "program_sigma": 0.03}},
                      "method": {"name": "direct", "equilibrate": True, "operators": "extracted", "shift": "auto"}}
    warm, account = None, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exact = run("exact", {"backend": "numpy"}, data, args.epochs, tmp, args.model, args.max_steps)
        if args.warm:
            warm_account = {}
            run("warm-up", circuit_solver, data, args.epochs, tmp, args.model, 1, warm_account)
            warm = warm_account["time_s"]
        circuit = run("circuit", circuit_solver, data, args.epochs, tmp, args.model, args.max_steps, account)
    steps = f"first {args.max_steps} steps" if args.max_steps else f"{args.epochs:g} epoch(s)"
    print(f"data: {data[0].label}; model {args.model} {MODELS[args.model]}; {steps}; rram {args.levels} levels, "
          f"3 % programming error, shift auto")
    print("| K-FAC | s / epoch |")
    print("|---|---|")
    print(f"| exact (numpy) | {exact:.2f} |")
    print(f"| one-step circuit (direct, settles from the measured response) | {circuit:.2f} |")
    target = 5 if args.model == "am64" else 10
    print(f"programmings {account.get('programmings', 0)}: {account.get('programmings_verified', 0)} verified by "
          f"ngspice's .op, {account.get('programmings_restamped', 0)} re-stamped; {account.get('ngspice_runs', 0)} "
          "ngspice runs")
    if warm is not None:
        spread = (account["time_s"] + warm) / account["time_s"] * circuit
        print(f"one-time cost of the topologies (warm-up step: every factor's first programming through ngspice's "
              f".op): {warm:.1f} s; circuit s / epoch with it spread over the timed steps: {spread:.2f} "
              f"({spread / exact:.2f}x exact)")
    print(f"ratio circuit / exact: {circuit / exact:.2f}x (target <= {target}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
