"""Re-stamped MVM responses (amc/hw/mvm_restamp.py) against ngspice's quasi-static batch, per array size.

For every size n (an n x n MVM array, one slice; ``--preset``, default rram with 16 levels and 3 % programming
error): the first programming of the topology is measured by ngspice's quasi-static batch (column r driven at
t = r: what every programming cost before, timed once per size -- ~2 minutes at 128) and its .op deck's matrix is
exported (timed); the second programming (another H, another device draw) is a re-stamped ``AnalogMVM.response``
(timed end to end: programming, re-stamp, factor, n solves, cheap checks). Printed: both times and their ratio, the
re-stamp's LU + n solves three ways (Schur: dense LU of the crossbar's unknowns, SuperLU, LAPACK's dense LU of
everything), and up to ``--check-max`` the re-stamped response's relative difference from ngspice's batch of the
second programmed deck (above it the spot check of the first programming -- ngspice's exported matrix against its
batch at every column -- is what holds the chain).

    nice -n 5 python benchmarks/bench_mvm_restamp.py 32 64 128 --check-max 64
"""
from __future__ import annotations

import argparse
import sys
import time

from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # this checkout's amc, not an installed one

from amc import CircuitConfig  # noqa: E402
from amc.blas import limit_blas_threads  # noqa: E402
from amc.hw import mvm_restamp, restamp  # noqa: E402
from amc.hw.mvm import AnalogMVM  # noqa: E402


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def programmed(cfg: CircuitConfig, n: int, seed: int) -> tuple[AnalogMVM, np.ndarray]:
    mvm = AnalogMVM(cfg, seed_offset=seed)
    h = np.random.default_rng(seed).standard_normal((n, n))
    mvm.program(h)
    return mvm, h


def measure(cfg: CircuitConfig, n: int, check_max: int, repeats: int) -> dict:
    restamp.reset()
    first, _ = programmed(cfg, n, 1)
    (arr,) = first.programmed_arrays
    t_batch, v_batch = timed(lambda: first.batch_outputs(arr))
    # the first programming as response() runs it, with the batch just measured: export, checks, template
    t_export, (_, restamped) = timed(lambda: mvm_restamp.response(
        cfg, arr.g_pos, arr.g_neg, arr.rf, first.read_voltage, lambda: first.export_deck(arr), lambda: v_batch))
    if restamped or restamp.store().failures:
        raise SystemExit(f"n = {n}: the first programming did not verify ({restamp.store().failures})")
    second, h2 = programmed(cfg, n, 2)
    t_second, r2 = timed(lambda: second.response(h2))
    if second.counts.programmings_restamped != 1 or second.counts.ngspice_runs:
        raise SystemExit(f"n = {n}: the second programming was not re-stamped ({restamp.store().failures})")
    template = restamp.store().lookup(mvm_restamp.topology_key(cfg, n, n))
    (arr2,) = second.programmed_arrays
    g = mvm_restamp.conductances(arr2.g_pos, arr2.g_neg, arr2.rf)
    rhs = template.system.rhs_with(mvm_restamp.sources(n), mvm_restamp.source_values(n, second.read_voltage),
                                   np.full(2 * n, template.sign))
    factor = {}
    for kind in ("schur", "sparse", "dense"):
        try:
            factor[kind] = min(timed(lambda: template.restamp(g, kind).solve(rhs))[0] for _ in range(repeats))
        except Exception as exc:                      # a factorisation that does not apply is reported, not timed
            factor[kind] = f"n/a ({type(exc).__name__})"
    error = None
    if n <= check_max:
        want = arr2.weight * (-second.batch_outputs(arr2) / arr2.rf) / (arr2.g_unit * second.read_voltage)
        error = float(np.max(np.abs(r2 - want)) / np.max(np.abs(want)))
    return dict(n=n, unknowns=template.system.size, batch=t_batch, export=t_export, second=t_second,
                ratio=t_second / t_batch, error=error, **factor)


def fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sizes", nargs="*", type=int, default=[32, 64, 128])
    p.add_argument("--preset", default="rram")
    p.add_argument("--check-max", type=int, default=64, help="hold the re-stamped response to a second ngspice "
                   "batch up to this size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    cfg = CircuitConfig.preset(args.preset)
    if args.preset == "rram":
        cfg = cfg.replace(**{"device.levels": 16, "device.program_sigma": 0.03})
    print(f"# re-stamped MVM response vs ngspice's quasi-static batch; preset {args.preset}, "
          f"{args.threads} BLAS thread(s)")
    print("| n | unknowns | ngspice batch (s) | export + checks (s) | re-stamped response (s) | re-stamped / batch "
          "| LU + n solves: Schur / SuperLU / dense (s) | vs ngspice batch |")
    print("|---|---|---|---|---|---|---|---|")
    limit_blas_threads(args.threads)
    for n in args.sizes:
        r = measure(cfg, n, args.check_max, args.repeats)
        error = "-" if r["error"] is None else f"{r['error']:.2g}"
        print(f"| {n} | {r['unknowns']} | {r['batch']:.3g} | {r['export']:.3g} | {r['second']:.3g} | "
              f"{r['ratio']:.3g} | {fmt(r['schur'])} / {fmt(r['sparse'])} / {fmt(r['dense'])} | {error} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
