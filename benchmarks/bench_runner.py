"""Runner benchmark (issue 2): AnalogSolver against the bare PySpice path and `ngspice -b`, n = 16..128.

Prints one Markdown table, every figure measured in this run:
- solve: a new AnalogSolver(rram).solve(H, g) (programming, checks, deck, ngspice .op, read-out);
- bare: PySpice NgSpiceShared.load_circuit(deck) + run() (+ remcirc) of the same deck;
- extra RHS: time per right-hand side in batches of 16 on the programmed array (only the input sources'
  waveforms altered; one quasi-static ngspice transient per batch), against a full solve;
- ngspice -b: the same deck in a standalone ngspice subprocess.
Targets: solve/bare <= 1.2 at n = 64; extra RHS / full solve <= 0.35 at n = 64.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from amc import AnalogSolver
from amc.hw.runner import session


def spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    return a @ a.T / n + np.eye(n)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(sizes=(16, 32, 64, 128)) -> None:
    import argparse
    parser = argparse.ArgumentParser(description="Runner benchmark: AnalogSolver vs bare PySpice vs `ngspice -b`; "
                                                 "prints one Markdown table.")
    parser.add_argument("sizes", nargs="*", type=int, default=list(sizes), help="matrix sizes n (default 16 32 64 128)")
    sizes = tuple(parser.parse_args().sizes)
    ng = session()._ng  # the same PySpice instance, used here without the amc layer
    rows = []
    for n in sizes:
        repeats = 9 if n <= 64 else 3
        rng = np.random.default_rng(n)
        g = rng.standard_normal(n)
        h = spd(n, 0)
        deck = AnalogSolver("rram").solve(h, g).netlist
        def bare():
            ng.load_circuit(deck)
            ng.run()
            ng.destroy()
            ng.remove_circuit()

        def full_solve():
            # A new solver each time: programming, checks, deck, load, .op, read-out -- on the same matrix as the
            # bare path, since ngspice's ordering time depends on the matrix.
            AnalogSolver("rram").solve(h, g)

        bare()
        # Interleaved, so slow drifts of this (virtual) machine's speed hit both paths alike.
        pairs = [(best_of(full_solve, 1), best_of(bare, 1)) for _ in range(repeats)]
        t_solve = float(np.median([p[0] for p in pairs]))
        t_bare = float(np.median([p[1] for p in pairs]))
        k = 16
        many = rng.standard_normal((n, k))
        programmed = AnalogSolver("rram")
        programmed.solve(h, many)  # programs the array and loads its batch deck
        t_extra = best_of(lambda: programmed.solve(h + 0.0, rng.standard_normal((n, k))), max(2, repeats // 2)) / k
        t_one = t_solve
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "deck.cir"
            path.write_text(deck)
            t_batch = best_of(lambda: subprocess.run(["ngspice", "-b", str(path)], capture_output=True, check=True),
                              3 if n <= 64 else 2)
        rows.append((n, t_solve, t_bare, t_solve / t_bare, t_extra, t_extra / t_one, t_batch))
        print(f"n={n}: done", file=sys.stderr)
    print("| n | AnalogSolver solve (ms) | bare PySpice load+run (ms) | ratio (target <= 1.2 at 64) "
          "| extra RHS, batches of 16 (ms) | extra RHS / full solve (target <= 0.35 at 64) | ngspice -b subprocess (ms) |")
    print("|---|---|---|---|---|---|---|")
    for n, s, b, r, e, er, sub in rows:
        print(f"| {n} | {s * 1e3:.1f} | {b * 1e3:.1f} | {r:.2f} | {e * 1e3:.1f} | {er:.2f} | {sub * 1e3:.1f} |")


if __name__ == "__main__":
    main()
