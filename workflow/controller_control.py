"""Control runs for the read-verified controller on real K-FAC factors of the 64x64 model.

    python -m workflow.controller_control [--steps 100] [--draws 4]

Trains exact K-FAC on real EMNIST letters a-m (the 64x64 model of configs/sweeps/kfac64_dataflows.yaml, 3,200
training images) for ``--steps`` steps, keeps the last damped factor of each size (conv G 7, fc G 13, conv A 26,
fc A 64), and programs each into ``--draws`` device draws of the rram-realistic array (16 levels, 3 % programming
error, 0.5 % read noise, 8-bit converters, 0.5 mV offset; wires off) through the controller (``shift: verify``).
For 8 right-hand sides per draw it prints, against the exact solve (diagnostics only):

- the shift the controller settled on, its writes, and its read-based lambda_min estimate beside the exact one;
- the error and the cosine to x* of the one-settle answer (what the `direct` preset returns);
- the same with the shift compensated by one step whose residual is an MVM read of the same cells
  (``shift_compensation: mvm``), and with the residual computed digitally from the exact factor (2 n^2 flops per
  column: a reference, not a recipe);
- the deliberate bias alone: the shifted factor solved exactly.

Needs the real data (``$AMC_DATA_DIR`` or ``../shared/data/emnist-letters-am``).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


class _Recorder:
    """Exact solves that keep the last factor of each size K-FAC asked to invert."""

    deterministic = True
    linear = True
    name = "numpy"

    def __init__(self):
        self.factors: dict = {}

    def solve(self, h, b):
        self.factors[h.shape[0]] = np.array(h, dtype=float)
        return np.linalg.solve(h, b)

    def tick(self, step):
        pass

    def hardware(self):
        return None

    def stats(self):
        return {"backend": "numpy"}


def real_factors(steps: int) -> dict:
    from training.config import config_from_dict
    from training.loop import train
    import tempfile
    cfg = config_from_dict({
        "name": "controller-control", "data": {"source": "emnist", "path": None, "n_train": 3200, "n_test": 200,
                                               "seed": 0},
        "model": {"channels": 7, "kernel": 5, "pool": 8},
        "optimizer": {"name": "kfac", "lr": 0.03, "damping": 1e-2, "ema": 0.95, "inverse_every": 10},
        "train": {"epochs": max(1, -(-steps * 64 // 3200)), "batch_size": 64, "seed": 0, "evals_per_epoch": 1}})
    recorder = _Recorder()
    with tempfile.TemporaryDirectory() as out:
        train(cfg, solver=recorder, out_dir=out)
    return recorder.factors


def compare(h: np.ndarray, draw: int) -> dict:
    from amc.config import CircuitConfig
    from amc.hw.controller import compensated_read, program_and_verify
    from amc.hw.inv_array import InvArray
    n = h.shape[0]
    cfg = CircuitConfig.preset("rram-realistic").replace(**{"wires.row_ohm": 0.0, "wires.col_ohm": 0.0,
                                                            "io.equilibrate": True})
    g = np.random.default_rng(draw).standard_normal((n, 8))
    array = InvArray(cfg, rng=np.random.default_rng([draw, 3]))
    decision = program_and_verify(array, h, 0.02)
    exact = np.linalg.solve(h, g)

    def err(x):
        return float(np.linalg.norm(x - exact) / np.linalg.norm(exact))

    def cos(x):
        return float(np.vdot(x, exact) / (np.linalg.norm(x) * np.linalg.norm(exact)))
    one = array.read(g).x
    mvm = compensated_read(array, g)[0].x if array.shift > 0 else one
    digital = one + array.read(g - h @ one).x
    bias = np.linalg.solve(h + np.diag(array.shift_diag), g)
    m = array.mapped.effective_conductance(cfg.opamp.gain) / array.mapped.g0
    return dict(n=n, draw=draw, shift=array.shift, writes=decision["writes"],
                lambda_estimate=array.verification.lambda_min_estimate,
                lambda_exact=float(np.linalg.eigvalsh((m + m.T) / 2).min()),
                one_settle=(err(one), cos(one)), mvm_compensated=(err(mvm), cos(mvm)),
                digital_residual=(err(digital), cos(digital)), bias_only=(err(bias), cos(bias)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--draws", type=int, default=4)
    args = p.parse_args(argv)
    factors = real_factors(args.steps)
    rows = []
    for n, h in sorted(factors.items()):
        for draw in range(args.draws):
            r = compare(h, draw)
            rows.append(r)
            print(f"n={n:2d} draw {draw}: shift {r['shift']:.3f} ({r['writes']} writes), lambda_min read "
                  f"{r['lambda_estimate']:.4f} exact {r['lambda_exact']:.4f} | error, cos: one settle "
                  f"{r['one_settle'][0]:.3f} {r['one_settle'][1]:.3f}; mvm-compensated {r['mvm_compensated'][0]:.3f} "
                  f"{r['mvm_compensated'][1]:.3f}; digital residual {r['digital_residual'][0]:.3f} "
                  f"{r['digital_residual'][1]:.3f}; shift alone {r['bias_only'][0]:.3f} {r['bias_only'][1]:.3f}",
                  flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
