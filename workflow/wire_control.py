"""Control run: what 1 ohm wire segments add to one programmed 64x64 factor array, beside the device error.

    python -m workflow.wire_control [--n 64] [--seeds 2] [--levels 16] [--real] [--shift 0.1]

The training study leaves the wires out (measuring a wired 64x64 array's response in ngspice costs ~100 s of CPU
per programming, and a run programs ~150 arrays). This measures their share on K-FAC-like factors
(``workflow.matrices.kfac_like_factor``) with the rram-realistic array and the same device draw with and without
the wire grid (read noise off, so that only the wires differ; each factor carries a 0.1 diag(H) shift so that every
draw settles without the controller's help; --real takes the real factor of that size after 100 exact K-FAC
steps, as workflow.controller_control does): the relative change of x the wires cause against
the relative error of x from everything else. Prints one line per seed and a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def measure(n: int, seed: int, levels: int, h=None, shift: float = 0.1) -> dict:
    from amc.config import CircuitConfig
    from amc.hw.inv_array import InvArray
    from workflow.matrices import kfac_like_factor
    h = kfac_like_factor(n, seed) if h is None else h
    n = h.shape[0]
    g = np.random.default_rng(seed).standard_normal((n, 8))
    base = CircuitConfig.preset("rram-realistic").replace(**{"device.levels": levels, "device.read_noise_sigma": 0.0,
                                                             "io.equilibrate": True})
    exact = np.linalg.solve(h, g)
    out = {}
    for name, cfg in (("no_wires", base.replace(**{"wires.row_ohm": 0.0, "wires.col_ohm": 0.0})), ("wires_1ohm", base)):
        start = time.perf_counter()
        array = InvArray(cfg, rng=np.random.default_rng([seed, 11])).program(h + shift * np.diag(np.diag(h)))
        x = array.read(g).x
        out[name] = dict(x=x, seconds=time.perf_counter() - start)
    x0, xw = out["no_wires"]["x"], out["wires_1ohm"]["x"]
    shifted_exact = np.linalg.solve(h + shift * np.diag(np.diag(h)), g)
    return dict(seed=seed, n=n, levels=levels, shift=shift,
                wire_change=float(np.linalg.norm(xw - x0) / np.linalg.norm(x0)),
                device_error=float(np.linalg.norm(x0 - shifted_exact) / np.linalg.norm(shifted_exact)),
                error_vs_unshifted=float(np.linalg.norm(x0 - exact) / np.linalg.norm(exact)),
                seconds_wired=out["wires_1ohm"]["seconds"], seconds_unwired=out["no_wires"]["seconds"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--levels", type=int, default=16)
    p.add_argument("--real", action="store_true", help="the real factors of workflow.controller_control (needs the "
                   "EMNIST data) instead of synthetic ones, each with the shift the controller chose for it")
    p.add_argument("--shift", type=float, default=0.1, help="diagonal shift of every programmed factor (mu diag H)")
    args = p.parse_args(argv)
    rows = []
    factors = {}
    if args.real:
        from workflow.controller_control import real_factors
        factors = real_factors(100)
    for seed in range(args.seeds):
        r = measure(args.n, seed, args.levels, factors.get(args.n), args.shift)
        rows.append(r)
        print(f"seed {seed}: wires change x by {r['wire_change']:.2e}; device error {r['device_error']:.3f} "
              f"(wired response {r['seconds_wired']:.0f} s, unwired {r['seconds_unwired']:.1f} s)", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
