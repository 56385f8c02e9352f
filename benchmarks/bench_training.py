"""Training-speed benchmark: seconds per epoch on EMNIST letters a-m (8,000 training images, batch 64).

    python benchmarks/bench_training.py                  # NumPy SGD-momentum, NumPy exact K-FAC, PyTorch SGD-momentum
    python benchmarks/bench_training.py --circuit        # + K-FAC through the simulated circuit (slow: ngspice)
    python benchmarks/bench_training.py --threads 2      # BLAS / torch threads (default $AMC_BLAS_THREADS or 1)

Rows (one epoch = 125 steps of batch 64; training steps only, no evaluation; the median of --repeats epochs):
- NumPy SGD-momentum (lr 0.03, momentum 0.9) -- ``training.model.ConvNet`` + ``training.optimizers.SGD``.
- NumPy exact K-FAC (lr 0.03, damping 1e-2, EMA 0.95, factors every step, inverses every 10 steps).
- (``--circuit``) K-FAC with the optimiser/solver section of configs/train/emnist-am-kfac-circuit.yaml (amc
  preset rram via ngspice). ``--circuit-per-step`` sets linear_response false so every step's solves go to
  ngspice. ``--circuit-steps N`` times N steps and extrapolates to an epoch (marked in the table).
- PyTorch CPU SGD-momentum epoch of the same model (Conv2d(1, 8, 5) -> ReLU -> MaxPool2d(4) -> Linear(288, 13),
  float32, mean cross-entropy), data pre-loaded as tensors. Skipped with a note when torch is not importable.

NumPy's BLAS and torch get the same thread count (``--threads``); both are printed. The target is NumPy
SGD-momentum <= 3x the PyTorch epoch. The machine is shared: numbers move with the load (printed).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amc.blas import blas_thread_counts, limit_blas_threads  # noqa: E402
from training.config import DataConfig, OptimizerConfig, load_config  # noqa: E402
from training.data import load_data  # noqa: E402
from training.model import ConvNet  # noqa: E402
from training.optimizers import make_optimizer  # noqa: E402

BATCH = 64


def numpy_epoch(model, opt, params, state, x, y, seed, steps=None):
    """One (or ``steps`` steps of an) epoch; returns (seconds, steps run, params, state)."""
    n = len(x)
    spe = math.ceil(n / BATCH)
    steps = spe if steps is None else min(steps, spe)
    perm = np.random.default_rng([seed, 0, 7]).permutation(n)
    t0 = time.perf_counter()
    for k in range(steps):
        idx = perm[k * BATCH:(k + 1) * BATCH]
        _, grads, cache = model.loss_and_grads(params, x[idx], y[idx])
        params, state = opt.step(params, grads, state, model=model, cache=cache)
    return time.perf_counter() - t0, steps, params, state


def bench_numpy(label, opt_cfg, data, repeats, seed=0, steps=None):
    (train, _) = data
    model = ConvNet(n_classes=train.n_classes)
    opt = make_optimizer(opt_cfg, layers=model.layers, seed=seed)
    params = model.init_params(seed)
    state = opt.init(params)
    _, _, params, state = numpy_epoch(model, opt, params, state, train.x, train.y, seed, steps=3)   # warm-up
    times, ran = [], None
    for r in range(repeats):
        dt, ran, params, state = numpy_epoch(model, opt, params, state, train.x, train.y, seed + r + 1, steps=steps)
        times.append(dt)
    spe = math.ceil(len(train) / BATCH)
    per_epoch = statistics.median(times) * spe / ran
    return {"label": label, "sec": per_epoch, "times": times, "extrapolated": ran < spe, "steps": ran,
            "stats": opt.stats(state)}


def bench_torch(data, repeats, threads, seed=0):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train, _ = data
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 6 * 6, train.n_classes))
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(np.ascontiguousarray(train.x[:, None], dtype=np.float32))
    y = torch.from_numpy(train.y)
    n = len(train)
    spe = math.ceil(n / BATCH)

    def epoch(s, steps=None):
        perm = torch.from_numpy(np.random.default_rng([s, 0, 7]).permutation(n))
        t0 = time.perf_counter()
        for k in range(steps or spe):
            idx = perm[k * BATCH:(k + 1) * BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    epoch(seed, steps=3)                      # warm-up
    times = [epoch(seed + r + 1) for r in range(repeats)]
    return {"label": "PyTorch SGD-momentum", "sec": statistics.median(times), "times": times, "extrapolated": False,
            "steps": spe, "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("AMC_BLAS_THREADS", "1")),
                    help="NumPy BLAS threads and torch threads (default $AMC_BLAS_THREADS or 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs per row (median reported)")
    ap.add_argument("--data", default=None, help="EMNIST directory (default: the usual search order)")
    ap.add_argument("--circuit", action="store_true", help="also time K-FAC through the simulated circuit (slow)")
    ap.add_argument("--circuit-config", default=str(ROOT / "configs/train/emnist-am-kfac-circuit.yaml"))
    ap.add_argument("--circuit-per-step", action="store_true",
                    help="linear_response false: every step's solves go to ngspice (default: as in the config)")
    ap.add_argument("--circuit-steps", type=int, default=None,
                    help="time only this many steps of the circuit epoch and extrapolate (default: a full epoch)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch row")
    args = ap.parse_args(argv)

    limit_blas_threads(args.threads)
    data = load_data(DataConfig(source="emnist", path=args.data, n_train=8000, n_test=2000, seed=0))
    train = data[0]
    print(f"# Training speed: {train.label}, {len(train)} training images, batch {BATCH}, "
          f"{math.ceil(len(train) / BATCH)} steps per epoch")
    print()
    print(f"- NumPy {np.__version__}; BLAS threads requested {args.threads}, reported "
          f"{ {Path(k).name: v for k, v in blas_thread_counts().items()} or 'n/a'}")
    print(f"- load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)")

    rows = []
    sgd = OptimizerConfig(name="sgd", lr=0.03, momentum=0.9)
    kfac = OptimizerConfig(name="kfac", lr=0.03, damping=1e-2, ema=0.95, factor_every=1, inverse_every=10,
                           momentum=0.0)
    rows.append(bench_numpy("NumPy SGD-momentum", sgd, data, args.repeats))
    rows.append(bench_numpy("NumPy K-FAC (exact solves)", kfac, data, args.repeats))
    notes = []
    if args.circuit:
        overrides = ["optimizer.linear_response=false"] if args.circuit_per_step else []
        try:
            cfg = load_config(args.circuit_config, overrides)
            mode = ("every step's solves via ngspice" if not cfg.optimizer.linear_response
                    else f"circuit inverse read every {cfg.optimizer.inverse_every} steps, applied every step")
            r = bench_numpy(f"NumPy K-FAC, circuit {cfg.optimizer.solver.circuit} ({mode})", cfg.optimizer, data,
                            1, steps=args.circuit_steps)
            rows.append(r)
        except ImportError as exc:
            notes.append(f"circuit row skipped: {exc} (needs the amc package and ngspice)")
    if args.no_torch:
        notes.append("PyTorch row skipped (--no-torch)")
    else:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            notes.append(f"PyTorch row skipped: torch is not importable ({exc}); install it with "
                         f"`.venv/bin/pip install torch==2.13.0` (CPU wheel)")
        else:
            t = bench_torch(data, args.repeats, args.threads)
            print(f"- PyTorch {t['torch']}; torch threads {t['torch_threads']}")
            rows.append(t)
    print()
    ref = next((r["sec"] for r in rows if r["label"].startswith("PyTorch")), None)
    np_sgd = rows[0]["sec"]
    print("| implementation | s / epoch | epochs timed | x NumPy SGD-m | x PyTorch SGD-m |")
    print("|---|---|---|---|---|")
    for r in rows:
        timed = (f"{r['steps']} steps, extrapolated" if r["extrapolated"] else f"{len(r['times'])} (median)")
        vs_torch = "—" if ref is None else f"{r['sec'] / ref:.2f}"
        print(f"| {r['label']} | {r['sec']:.3f} | {timed} | {r['sec'] / np_sgd:.2f} | {vs_torch} |")
    print()
    if ref is not None:
        ratio = np_sgd / ref
        print(f"NumPy SGD-momentum / PyTorch SGD-momentum = {ratio:.2f}x "
              f"({'meets' if ratio <= 3 else 'MISSES'} the <= 3x target)")
    for r in rows:
        if "solver" in r.get("stats", {}):
            print(f"{r['label']}: solver stats {r['stats']['solver']}; fallbacks {r['stats'].get('fallbacks')}")
    for n in notes:
        print(f"Note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
