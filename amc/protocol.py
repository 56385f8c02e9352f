"""What a consumer of solves (K-FAC) may rely on, and the one place that builds a circuit solver from a spec.

``Solver``: ``solve(H, B)`` returns a ``Solution`` (or, for the digital reference, an ndarray) with x of B's
shape; ``deterministic`` says repeated solves of one H give the same x; ``linear`` says x is linear in B (up to
converter rounding), so a response measured with identity right-hand sides is the method itself.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from amc.config import CircuitConfig
from amc.errors import ConfigError


@runtime_checkable
class Solver(Protocol):
    @property
    def deterministic(self) -> bool: ...

    @property
    def linear(self) -> bool: ...

    def solve(self, H: np.ndarray, B: np.ndarray) -> Any: ...


def circuit_from_spec(spec: Any, source: str = "circuit") -> CircuitConfig:
    """A preset name, a circuit YAML path, a CircuitConfig, or a mapping ``{preset: rram, device: {...}}``."""
    if spec is None:
        return CircuitConfig.preset("rram")
    if isinstance(spec, CircuitConfig):
        return spec
    if isinstance(spec, str):
        if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
            return CircuitConfig.from_yaml(spec)
        return CircuitConfig.preset(spec)
    if isinstance(spec, Mapping):
        if "method" in spec:
            raise ConfigError(f"{source}.circuit.method: a solve method is not part of the circuit; write it as "
                              f"{source}.method (e.g. method: {{preset: hpinv-pcg, iterations: 3}})")
        return CircuitConfig.from_dict(dict(spec), source=f"{source}.circuit")
    raise ConfigError(f"{source}.circuit must be a preset name, a YAML path or a mapping, got {type(spec).__name__}")


def build_solver(circuit: Any = None, method: Any = None, source: str = "solver"):
    """The circuit solver a spec names: ``amc.MethodSolver`` over the circuit, for the method (default direct)."""
    from amc.methods import MethodSolver, method_config
    config = circuit_from_spec(circuit, source)
    return MethodSolver(config, method=method_config(method, source=f"{source}.method"))
