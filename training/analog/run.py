"""One analog-training run from a validated ``analog`` section: dispatch on the problem."""
from __future__ import annotations

from typing import Any, Mapping

from amc.config import CircuitConfig


def run(cfg: Mapping[str, Any], circuit: CircuitConfig, seed: int = 0) -> dict:
    if cfg["problem"] == "least-squares":
        from .least_squares import run as run_least_squares
        return run_least_squares(cfg, circuit, seed=seed)
    from .network import run as run_network
    return run_network(cfg, circuit, seed=seed)
