"""One entry point for the solution methods: ``direct`` (one INV settle per right-hand side), ``hp-inv`` (iterative
refinement), ``blockamc`` (Schur-complement partitioning) and ``repast`` (inverse computed by INV once per
programming, applied by analog MVM), configured by a typed ``MethodConfig``.

    sol = amc.solve_system(H, g, method="hpinv-pcg", config="rram", iterations=3)
    solver = amc.MethodSolver("rram", method={"preset": "hpinv-pcg", "preconditioner": "identity"})
    sol.x, sol.analog_error, sol.operations, sol.history

``MethodSolver`` satisfies ``amc.protocol.Solver``: ``solve(H, B) -> Solution`` plus the declared properties
``deterministic`` (repeated solves of one H give the same x) and ``linear`` (x is linear in B, up to converter
rounding). Each distinct H gets its own programmed arrays (one physical array set per matrix, least recently used
dropped beyond ``cache_size``), so a K-FAC factor keeps its array between inverse updates.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import numpy as np

from amc.config import CircuitConfig
from amc.errors import ConfigError
from amc.hw.mapping import validate_matrix, validate_rhs
from amc.methods.config import METHOD_NAMES, PRESETS, MethodConfig
from amc.solution import Solution
from amc.solver import circuit_config, numpy_solution
from amc.methods.direct import DirectSolver
from amc.methods.repast import RepastSolver

METHODS = METHOD_NAMES

# Keyword spellings of earlier releases -> MethodConfig keys (documented aliases).
ALIASES = {"slices": "mvm.slices", "bits_per_slice": "mvm.bits_per_slice", "input_slices": "mvm.input_slices",
           "mvm_adc_bits": "mvm.adc_bits", "mvm_dac_bits": "mvm.dac_bits", "mvm_array_size": "mvm.array_size",
           "mvm_response": "mvm.response", "gain_calibration": "mvm.gain_calibration",
           "mvm_target_swing": "mvm.target_swing", "mvm_slices": "mvm.slices", "check_blocks": "check_convergence"}


def method_config(method: Union[str, dict, MethodConfig, None], options: dict, source: str = "method") -> MethodConfig:
    """A MethodConfig from a preset/method name or mapping plus keyword options (aliases accepted)."""
    spec: dict
    if isinstance(method, MethodConfig):
        return method.replace(**{ALIASES.get(k, k): v for k, v in options.items()}) if options else method
    if method is None:
        method = "direct"
    if not isinstance(method, (str, Mapping)):
        raise ConfigError(f"{source}: a method is a preset or method name or a mapping, got "
                          f"{type(method).__name__} {method!r}; presets: {', '.join(PRESETS)}")
    if isinstance(method, str):
        spec = {"preset": method} if method in PRESETS else {"name": method}
        if method not in PRESETS and method not in METHOD_NAMES:
            raise ConfigError(f"{source}: unknown method {method!r}; presets: {', '.join(PRESETS)}; "
                              f"methods: {', '.join(METHOD_NAMES)}")
    else:
        spec = dict(method)
    for key, value in options.items():
        spec[ALIASES.get(key, key)] = value
    return MethodConfig.from_spec(spec, source)


def build_hpinv(circuit: CircuitConfig, method: MethodConfig, mvm_config: Optional[CircuitConfig]):
    from amc.methods.hpinv import HPInvSolver
    m = method.mvm
    return HPInvSolver(circuit, iterations=method.iterations, tol=method.tol, slices=m.slices,
                       bits_per_slice=m.bits_per_slice, input_slices=m.input_slices, mvm_adc_bits=m.adc_bits,
                       mvm_dac_bits=m.dac_bits, mvm_config=mvm_config, gain_calibration=m.gain_calibration,
                       mvm_target_swing=m.target_swing, scale_residual=method.scale_residual,
                       check_convergence=method.check_convergence, divergence_factor=method.divergence_factor,
                       mvm_array_size=m.array_size, refinement=method.refinement, shift=method.shift,
                       shift_margin=method.shift_margin, equilibrate=method.equilibrate, operators=method.operators,
                       mvm_response=m.response, cache_size=method.cache_size, array_size=method.array_size,
                       preconditioner=method.preconditioner)


class MethodSolver:
    """Solver object for any method: ``solve(H, B) -> Solution`` (``.x`` has the shape of B).

    ``MethodSolver(config, method="hpinv-pcg", iterations=3)``, ``MethodSolver("ideal", method="blockamc",
    array_size=32)``. Keys the method does not use are rejected by name.
    """

    def __init__(self, config: Union[CircuitConfig, str, None] = None, method: Any = "direct",
                 backend: str = "circuit", mvm_config: Union[CircuitConfig, str, None] = None, **options):
        if backend not in ("circuit", "numpy"):
            raise ConfigError(f"backend must be 'circuit' or 'numpy', got {backend!r}")
        self.config = circuit_config(config)
        self.method_config = method_config(method, options)
        self.method = self.method_config.name
        self.backend = backend
        mvm = None if mvm_config is None else circuit_config(mvm_config)
        cfg = self.method_config
        if backend == "numpy":
            self._impl = None
        elif cfg.name == "direct":
            self._impl = DirectSolver(self.config, cfg)
        elif cfg.name == "hp-inv":
            self._impl = build_hpinv(self.config, cfg, mvm)
        elif cfg.name == "repast":
            self._impl = RepastSolver(self.config, cfg, mvm)
        else:
            from amc.methods.blockamc import BlockAMCSolver
            m = cfg.mvm
            self._impl = BlockAMCSolver(self.config, array_size=cfg.array_size if cfg.array_size is not None else 32,
                                        mvm_config=mvm, mvm_slices=m.slices, mvm_target_swing=m.target_swing,
                                        gain_calibration=m.gain_calibration, check_blocks=cfg.check_convergence,
                                        operators=cfg.operators, shift=cfg.shift, shift_margin=cfg.shift_margin,
                                        equilibrate=cfg.equilibrate, cache_size=cfg.cache_size)

    @property
    def deterministic(self) -> bool:
        """Repeated solves of one H give the same x (no read noise, no drift)."""
        if self._impl is None:
            return True
        return bool(self._impl.deterministic)

    @property
    def linear(self) -> bool:
        """x is linear in B (up to converter rounding): then a response measured with identity right-hand sides is
        the method itself. Each method says so (False for PCG, a tolerance, noise or drift)."""
        return True if self._impl is None else bool(self._impl.linear)

    def plan(self, n: int, k: int):
        """What programming an n x n system and one solve of k right-hand sides do to the hardware, stated before
        running (amc/methods/plan.py): the count model the cost ledger prices."""
        from amc.methods.plan import plan_of
        if self._impl is None:
            raise ConfigError("backend 'numpy' runs no hardware: it has no plan")
        return plan_of(self._impl, n, k)

    def __repr__(self) -> str:
        return f"MethodSolver({self.method_config!r}, backend={self.backend!r}, circuit {self.config.name!r})"

    def solve(self, h: np.ndarray, g: np.ndarray, seconds_since_programming: float = 0.0,
              transient: bool = False) -> Solution:
        """``seconds_since_programming``: the drift clock (direct and hp-inv); ``transient``: every settle as an
        ngspice .tran with settling time and energy (direct only)."""
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        if transient and self.method != "direct":
            raise ConfigError(f"transient solves are for method direct, not {self.method!r}")
        if seconds_since_programming and self.method not in ("direct", "hp-inv"):
            raise ConfigError(f"seconds_since_programming (the drift clock) is for methods direct and hp-inv, not "
                              f"{self.method!r}")
        if self._impl is None:      # numpy.linalg.solve, labelled as what it is (not as the configured method)
            return numpy_solution(h, g)
        if transient:
            return self._impl.solve(h, g, transient=True)
        if seconds_since_programming:
            return self._impl.solve(h, g, seconds_since_programming)
        return self._impl.solve(h, g)


def solve_system(h: np.ndarray, g: np.ndarray, method: Any = "direct",
                 config: Union[CircuitConfig, str, None] = None, backend: str = "circuit", **options) -> Solution:
    """Solve H x = g with the chosen method (a preset, a method name or a mapping; options as MethodConfig keys)."""
    return MethodSolver(config, method=method, backend=backend, **options).solve(h, g)
