"""Settle time and energy of REAL damped K-FAC factors of the 64x64 reference variant on the rram-ic circuit.

Trains the reference variant (conv 5x5 1->7, max-pool 8, linear 64->13; K-FAC lr 0.03, damping 1e-2, EMA 0.95)
for a few steps on EMNIST a-m (or synthetic letters when EMNIST is absent), then for every inverse update maps each
damped, Jacobi-equilibrated factor (io.equilibrate, as the circuit K-FAC configs do) with continuous conductances
(8-level mapping of these factors is unstable for some blocks, DESIGN.md sec. 3; the settle time is set by the
loop matrix, which quantisation perturbs little when stable) and computes the exact settle of one right-hand side.
Writes results/cost/kfac_factor_settles.json; the cost CLI's default lambda_min for K-FAC factors comes from it.

    .venv/bin/python benchmarks/cost_kfac_factors.py [--steps 30]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amc.cost import HardwareCostModel, settle_of_matrix  # noqa: E402
from training.data import find_emnist_dir, load_emnist_dir, synthetic_letters  # noqa: E402
from training.model import ConvNet  # noqa: E402
from training.optimizers import KFAC  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", default=str(ROOT / "results/cost/kfac_factor_settles.json"))
    args = p.parse_args(argv)
    directory = find_emnist_dir(None)
    if directory is not None:
        data = load_emnist_dir(directory, n_classes=13)
        source = "emnist a-m"
    else:
        data = synthetic_letters(2000, n_classes=13, seed=0)
        source = "synthetic letters"
    model = ConvNet(n_classes=13, channels=7, pool=8)
    params = model.init_params(0)
    opt = KFAC(model.layers, lr=0.03, damping=1e-2, ema=0.95, inverse_every=10)
    state = opt.init(params)
    hw = HardwareCostModel.preset("rram-ic")
    hw = hw.replace(circuit=hw.circuit.replace(**{"device.levels": None, "io.equilibrate": True}))
    rng = np.random.default_rng(0)
    records = []
    for step in range(args.steps):
        idx = rng.choice(len(data.y), 64, replace=False)
        x, y = data.x[idx], data.y[idx]
        _, grads, cache = model.loss_and_grads(params, x, y)
        params, state = opt.step(params, grads, state, model=model, cache=cache)
        if step % 10 == 0:
            for layer in model.layers:
                for kind in ("Ad", "Gd"):
                    h = state["layers"][layer.name][kind]
                    s = settle_of_matrix(h, hw, np.ones(h.shape[0]))
                    records.append(dict(step=step, layer=layer.name, factor=kind[0], n=h.shape[0],
                                        condition=float(np.linalg.cond(h)), lambda_min=s.lambda_min,
                                        time_s=s.time_s, energy_j=s.energy_j))
                    print(f"step {step:3d} {layer.name:4s} {kind[0]} n={h.shape[0]:3d} cond {records[-1]['condition']:8.3g} "
                          f"loop lambda_min {s.lambda_min:.4g}  settle {s.time_s * 1e9:.4g} ns  {s.energy_j * 1e12:.4g} pJ")
    lams = np.array([r["lambda_min"] for r in records])
    summary = dict(source=source, steps=args.steps, circuit="rram-ic, continuous levels, equilibrated",
                   geometric_mean_lambda_min=float(math.exp(np.mean(np.log(lams)))), min_lambda_min=float(lams.min()),
                   records=records)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    print(f"loop lambda_min: geometric mean {summary['geometric_mean_lambda_min']:.4g}, min {lams.min():.4g} "
          f"({source}); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
