"""Measure batched Cholesky / inverse / solve on a GPU with PyTorch and write the GPU-model JSON amc.cost reads.

    .venv/bin/python benchmarks/bench_gpu_cholesky.py [--out results/cost/gpu_measured.json] [--sizes 8 26 64 128 ...]
    amc cost network resnet18 --gpu-json results/cost/gpu_measured.json

Fits the two assumptions of amc.cost.digital.GpuModel from measurements: launch_overhead_s (median time of the
smallest single-matrix Cholesky, which is latency only) and small_matrix_efficiency (median achieved FP32 FLOP/s of
the batched inverse at the K-FAC sizes, over the peak given by --peak-flops) and dynamic_power_w (board power while
the batched inverses run, minus idle, from NVML where the driver reports it). Without PyTorch or a CUDA device it
prints one line and exits 0, so `make bench` can call it anywhere.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "results/cost/gpu_measured.json"))
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 13, 26, 64, 128, 256, 512])
    p.add_argument("--batch", type=int, default=16, help="matrices per batched call")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--peak-flops", type=float, default=None, help="FP32 peak of this GPU (default: the A100 model's)")
    p.add_argument("--board-power", type=float, default=None, help="board power in W (default: the A100 model's)")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench_gpu_cholesky: skipped (PyTorch is not installed)")
        return 0
    if not torch.cuda.is_available():
        print("bench_gpu_cholesky: skipped (no CUDA GPU visible to PyTorch)")
        return 0
    sys.path.insert(0, str(ROOT))
    from amc.cost.digital import GpuModel

    base = GpuModel()
    peak = args.peak_flops or base.peak_flops
    dev = torch.device("cuda")

    def timed(fn) -> float:
        fn()
        torch.cuda.synchronize()
        samples = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples)

    rows = []
    for n in args.sizes:
        x = torch.randn(args.batch, n, 2 * n, device=dev)
        spd = x @ x.transpose(1, 2) / (2 * n) + 1e-2 * torch.eye(n, device=dev)
        b = torch.randn(args.batch, n, n, device=dev)
        t_chol = timed(lambda: torch.linalg.cholesky(spd))
        chol = torch.linalg.cholesky(spd)
        t_inv = timed(lambda: torch.cholesky_inverse(torch.linalg.cholesky(spd)))
        t_solve = timed(lambda: torch.cholesky_solve(b, chol))
        t_single = timed(lambda: torch.linalg.cholesky(spd[:1]))
        rows.append(dict(n=n, batch=args.batch, cholesky_s=t_chol, inverse_s=t_inv, solve_s=t_solve,
                         single_cholesky_s=t_single, inverse_flops=args.batch * float(n) ** 3))
        print(f"n={n:4d} batch {args.batch}: cholesky {t_chol * 1e6:8.1f} us, inverse {t_inv * 1e6:8.1f} us, "
              f"solve {t_solve * 1e6:8.1f} us, single cholesky {t_single * 1e6:8.1f} us")
    launch = min(r["single_cholesky_s"] for r in rows)
    dynamic_w = _dynamic_power_w(torch, dev, args.sizes, args.batch)
    effs = [r["inverse_flops"] / max(r["inverse_s"] - 2 * launch, 1e-9) / peak for r in rows]
    model = GpuModel(name=torch.cuda.get_device_name(0), peak_flops=peak,
                     bandwidth_bytes_per_s=base.bandwidth_bytes_per_s,
                     board_power_w=args.board_power or base.board_power_w,
                     small_matrix_efficiency=float(dict(zip(args.sizes, effs)).get(base.reference_size,
                                                                                    statistics.median(effs))), launch_overhead_s=launch,
                     power_fraction=base.power_fraction, dynamic_power_w=dynamic_w, bytes_per_word=4,
                     source=f"measured by benchmarks/bench_gpu_cholesky.py (torch {torch.__version__})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**asdict(model), "measurements": rows}, indent=1))
    print(f"launch overhead {launch * 1e6:.2f} us, small-matrix efficiency {model.small_matrix_efficiency:.3g}; "
          f"wrote {out}")
    return 0


def _dynamic_power_w(torch, dev, sizes, batch, seconds: float = 2.0):
    """Board power while batched K-FAC-size inverses run back to back, minus the idle power before them (W), read
    through NVML (torch.cuda.power_draw, mW); None when the driver does not report power."""
    try:
        idle = torch.cuda.power_draw(dev) / 1e3
        n = sorted(sizes)[len(sizes) // 2]
        x = torch.randn(batch, n, 2 * n, device=dev)
        spd = x @ x.transpose(1, 2) / (2 * n) + 1e-2 * torch.eye(n, device=dev)
        samples, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.cholesky_inverse(torch.linalg.cholesky(spd))
            torch.cuda.synchronize()
            samples.append(torch.cuda.power_draw(dev) / 1e3)
        busy = statistics.median(samples)
        return max(busy - idle, 1e-3)
    except Exception as exc:            # no NVML, or a driver without power readings: the model keeps its fraction
        print(f"bench_gpu_cholesky: no power reading ({type(exc).__name__}); the model's power_fraction stays")
        return None


if __name__ == "__main__":
    sys.exit(main())
