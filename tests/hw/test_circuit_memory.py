"""2,000 consecutive solves at n = 32 in one process must not grow resident memory by 50 MB."""
import subprocess
import sys
from pathlib import Path

import pytest

RSS = r"""
import numpy as np
from amc import AnalogSolver
from amc.hw.runner import session
def rss_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS'):
                return int(line.split()[1]) / 1024
"""


def measure(body: str) -> list[str]:
    """Run ``body`` (with ``rss_mb()``, numpy, AnalogSolver and session at hand) in a fresh process; its output."""
    return subprocess.run([sys.executable, "-c", RSS + body], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2]).stdout.split()


SCRIPT = r"""
rng = np.random.default_rng(0)
a = rng.standard_normal((32, 32)); h = a @ a.T / 32 + np.eye(32)
solver = AnalogSolver('ideal')
for _ in range(50):
    solver.solve(h + 1e-3 * rng.random() * np.eye(32), rng.standard_normal(32))
start = rss_mb()
for i in range(2000):
    # a new matrix every 10 solves: decks are reloaded, and the same array serves the others
    hh = h + (i // 10) * 1e-4 * np.eye(32)
    solver.solve(hh, rng.standard_normal(32))
print(rss_mb() - start, session().runs)
"""


@pytest.mark.slow
def test_two_thousand_solves_do_not_leak():
    out = measure(SCRIPT)
    growth, runs = float(out[0]), int(out[1])
    assert runs >= 2050
    assert growth < 50, f"resident memory grew by {growth:.1f} MB over 2,000 solves"
