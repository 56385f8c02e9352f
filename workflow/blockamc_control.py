"""Where the BlockAMC training recipe's error on the 289 factor comes from (issue 19 item 3), on a real factor.

    python -m workflow.blockamc_control [--steps 100] [--draws 3]

Trains exact K-FAC on real EMNIST letters a-m (the reference model: conv 5x5 1->8, max-pool 4, linear; 3,200
training images) for ``--steps`` steps, keeps the last damped fc A factor (289 x 289), and solves it for 13 random
right-hand sides and for the right-hand sides K-FAC itself last solved it with (the gradient's columns), with
BlockAMC on 64x64 arrays as configs/train/emnist-am-kfac-blockamc64.yaml does (rram op-amps,
Jacobi equilibration before partitioning, the read-verified controller on every leaf, measured responses), taking
the cells' imperfections away one at a time: continuous cells without programming error (what the partition and
the op-amps' finite gain leave), 16 levels without error, 16 levels with 3 % programming error (the study's cells,
``--draws`` device draws), and the same with two bit slices per coupling array instead of one. It prints the error
and the cosine of x against the exact solve (diagnostics only) and the shifts the controller applied.

``--identity-control``: instead, trains the reference model to 87 % (8,000/2,000 split, 3 seeds, the study's K-FAC
settings) with exact solves of every factor but fc A, whose inverse is replaced by the identity scaled by the mean
of its diagonal -- the control that shows how much the 289 factor's inverse matters to the result -- beside the same
harness with every factor exact.

Needs the real data (``$AMC_DATA_DIR`` or ``../shared/data/emnist-letters-am``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from typing import Optional

import numpy as np

from workflow.controller_control import _Recorder


class _RhsRecorder(_Recorder):
    """Also keeps the right-hand sides K-FAC last solved each factor size with (the gradient's columns)."""

    def __init__(self):
        super().__init__()
        self.rhs: dict = {}

    def solve(self, h, b):
        self.rhs[h.shape[0]] = np.array(b, dtype=float)
        return super().solve(h, b)


def reference_factors(steps: int) -> tuple[dict, dict]:
    from training.config import config_from_dict
    from training.loop import train
    cfg = config_from_dict({
        "name": "blockamc-control", "data": {"source": "emnist", "path": None, "n_train": 3200, "n_test": 200,
                                             "seed": 0},
        "model": {"channels": 8, "kernel": 5, "pool": 4},
        "optimizer": {"name": "kfac", "lr": 0.03, "damping": 1e-2, "ema": 0.95, "inverse_every": 10},
        "train": {"epochs": max(1, -(-steps * 64 // 3200)), "batch_size": 64, "seed": 0, "evals_per_epoch": 1,
                  "max_steps": steps, "progress": False}})
    recorder = _RhsRecorder()
    with tempfile.TemporaryDirectory() as out:
        train(cfg, solver=recorder, out_dir=out)
    return recorder.factors, recorder.rhs


VARIANTS = {   # label: (device changes, coupling slices)
    "continuous cells, no programming error": ({"device.levels": None, "device.program_sigma": 0.0}, 1),
    "16 levels, no programming error": ({"device.levels": 16, "device.program_sigma": 0.0}, 1),
    "16 levels, 3 % programming error (the study)": ({"device.levels": 16, "device.program_sigma": 0.03}, 1),
    "the same, 2 slices per coupling array": ({"device.levels": 16, "device.program_sigma": 0.03}, 2),
}


def solve(h: np.ndarray, g: np.ndarray, changes: dict, slices: int, draw: int) -> dict:
    from amc import CircuitConfig, MethodSolver
    circuit = CircuitConfig.preset("rram").replace(**changes, **{"device.seed": draw})
    solver = MethodSolver(circuit, method={"preset": "blockamc", "array_size": 64, "operators": "extracted",
                                           "shift": "verify", "equilibrate": True,
                                           "mvm": {"slices": slices, "gain_calibration": True}})
    sol = solver.solve(h, g)
    return dict(error=sol.analog_error, cosine=sol.step_cosine, bias=sol.bias_error, device=sol.device_error,
                shifts=sol.details["leaf_shifts"], programmings=sol.operations.programmings)


class _IdentityFor(_Recorder):
    """Exact solves, except factors of size ``n``: x = B / mean(diag H) (the identity, scaled to the factor)."""

    def __init__(self, n: Optional[int]):
        super().__init__()
        self.n = n

    def solve(self, h, b):
        if h.shape[0] == self.n:
            return np.asarray(b, dtype=float) / float(np.mean(np.diag(h)))
        return np.linalg.solve(h, b)


def identity_control(seeds: list, n: Optional[int]) -> list:
    from training.compare import epochs_to_target
    from training.config import config_from_dict
    from training.loop import train
    out = []
    for seed in seeds:
        cfg = config_from_dict({
            "name": "blockamc-identity-control",
            "data": {"source": "emnist", "path": None, "n_train": 8000, "n_test": 2000, "seed": 0},
            "model": {"channels": 8, "kernel": 5, "pool": 4},
            "optimizer": {"name": "kfac", "lr": 0.03, "damping": 1e-2, "ema": 0.95, "factor_every": 1,
                          "inverse_every": 10, "momentum": 0.0},
            "train": {"epochs": 8, "batch_size": 64, "seed": seed, "evals_per_epoch": 4, "train_eval_size": 2000,
                      "stop_at_accuracy": 0.87, "progress": False, "checkpoint": False}})
        with tempfile.TemporaryDirectory() as tmp:
            result = train(cfg, solver=_IdentityFor(n), out_dir=tmp)
        out.append(epochs_to_target(result.history, 0.87))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--identity-control", action="store_true")
    args = p.parse_args(argv)
    if args.identity_control:
        for label, n in (("every factor exact", None), ("fc A (289) inverse -> identity / mean diag", 289)):
            epochs = identity_control([0, 1, 2], n)
            reached = [e for e in epochs if e is not None]
            summary = (f"{np.mean(reached):.2f} +- {np.std(reached, ddof=1):.2f}" if len(reached) > 1 else "-")
            print(f"{label}: epochs to 87 % per seed {epochs}; {summary} ({len(reached)}/3 reached)", flush=True)
        return 0
    factors, rhs = reference_factors(args.steps)
    h = factors[289]
    print(f"fc A after {args.steps} exact K-FAC steps: condition number {np.linalg.cond(h):.3g}", flush=True)
    rows = []
    for kind, g in (("K-FAC's own right-hand sides", rhs[289]),
                    ("13 random right-hand sides", np.random.default_rng(0).standard_normal((289, 13)))):
        print(kind, flush=True)
        for label, (changes, slices) in VARIANTS.items():
            stochastic = changes["device.program_sigma"] > 0
            for draw in range(args.draws if stochastic else 1):
                r = dict(rhs=kind, variant=label, draw=draw, **solve(h, g, changes, slices, draw))
                rows.append(r)
                print(f"  {label}, draw {draw}: error {r['error']:.3f}, cosine {r['cosine']:.3f} (bias {r['bias']:.3f}, "
                  f"device {r['device']:.3f}; leaf shifts {r['shifts']}; {r['programmings']} programmings)",
                  flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
