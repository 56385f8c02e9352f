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

import time
from collections import OrderedDict
from typing import Any, Optional, Union

import numpy as np

from .config import CircuitConfig
from .errors import ConfigError, InputError, MappingError, UnstableCircuitError
from .hw.counters import OperationCounts
from .hw.inv_array import InvArray
from .hw.keys import matrix_key
from .mapping import validate_matrix, validate_rhs
from .method_config import METHOD_NAMES, PRESETS, MethodConfig
from .solution import Solution, equivalent_bits
from .solver import circuit_config, numpy_solution

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


class _DirectSolver:
    """One INV array per distinct H (one settle per right-hand side)."""

    def __init__(self, circuit: CircuitConfig, method: MethodConfig):
        if method.equilibrate is not None:
            circuit = circuit.replace(**{"io.equilibrate": method.equilibrate})
        self.circuit = circuit
        self.method = method
        self._arrays: "OrderedDict[bytes, InvArray]" = OrderedDict()
        self._refused: "OrderedDict[bytes, Exception]" = OrderedDict()   # programmed, found unusable, kept so
        self._serial = 0

    @property
    def deterministic(self) -> bool:
        d = self.circuit.device
        return not d.is_stochastic_per_read and d.drift_nu == 0

    def array_for(self, h: np.ndarray) -> tuple[InvArray, bool]:
        key = matrix_key(h)
        if key in self._arrays:
            self._arrays.move_to_end(key)
            return self._arrays[key], False
        if key in self._refused:       # the controller already found this programming unusable: no new write
            refused = self._refused[key]
            refused.operations = OperationCounts()
            raise refused
        self._serial += 1
        array = InvArray(self.circuit, rng=np.random.default_rng([self.circuit.device.seed + 1, self._serial]))
        try:
            self._program(array, h)
        except Exception as exc:
            self._refused[key] = exc
            while len(self._refused) > self.method.cache_size:
                self._refused.popitem(last=False)
            exc.operations = array.counts.copy()      # the writes happened: their cost travels with the refusal
            raise
        self._arrays[key] = array
        while len(self._arrays) > self.method.cache_size:
            self._arrays.popitem(last=False)
        return array, True

    def _program(self, array: InvArray, h: np.ndarray) -> None:
        """Program H + mu diag(H) (mu = method.shift). After equilibration the shift is mu I on the unit diagonal,
        which sits on the top conductance level and so survives quantisation; for K-FAC it acts as extra damping
        (the array inverts the shifted matrix). ``shift: auto`` is program-and-verify: the controller knows the
        levels it wrote, and re-programs with mu grown (0.05, then x1.5, at most 12 writes, every one counted) until
        the loop settles and the symmetric part of what the array inverts has lambda_min >= shift_margin (1 + mu);
        it starts from the quantisation error's norm, which the controller computes from the levels it writes."""
        shift, margin = self.method.shift, self.method.shift_margin
        diag = np.diag(np.abs(np.diag(h)))
        if shift == "auto":     # start at ||Q(D H D) - D H D||_2: the controller knows the levels it writes
            from .hpinv import quantisation_shift
            d = 1.0 / np.sqrt(np.abs(np.diag(h)))
            mu = quantisation_shift(h * d[:, None] * d[None, :], self.circuit.device.levels)
        else:
            mu = float(shift or 0.0)
        for attempt in range(1, 13):
            try:
                array.program(h + mu * diag if mu else h)
                if shift != "auto":
                    return
                n = h.shape[0]
                m = array.mapped.effective_conductance(self.circuit.opamp.gain) / array.mapped.g0
                lam = float(np.linalg.eigvalsh((m + m.T) / 2).min())
                array.counts.add(digital_flops=4 * n ** 3)      # the controller's check of what it wrote
                if lam >= margin * (1.0 + mu):
                    return
            except (UnstableCircuitError, MappingError):
                if shift != "auto" or attempt == 12:
                    raise
            mu = max(1.5 * mu, 0.05)
        raise UnstableCircuitError(f"no diagonal shift up to {mu:.3g} made the programmed array settle stably "
                                   f"(12 programmings)")

    def solve(self, h: np.ndarray, g: np.ndarray, seconds_since_programming: float = 0.0) -> Solution:
        start = time.perf_counter()
        n = h.shape[0]
        if self.method.array_size is not None and n > self.method.array_size:
            raise InputError(f"method 'direct' needs one {n}x{n} array but array_size is {self.method.array_size}; "
                             "use method 'blockamc' or 'hpinv-pcg'")
        fresh = matrix_key(h) not in self._arrays
        array, _ = self.array_for(h)
        before = OperationCounts() if fresh else array.counts.copy()
        if self.method.operators == "extracted":
            sol = array.read(g, seconds_since_programming)
        else:
            sol = array.solve(g)
        sol.operations = array.counts - before
        x_star = np.linalg.solve(h, g)
        sol.relative_error, sol.equivalent_bits = equivalent_bits(sol.x, x_star)
        sol.analog_error = sol.relative_error       # one settle: nothing digital refines it
        sol.wall_time_s = time.perf_counter() - start
        return sol


class _RepastSolver:
    """RePAST-style: once per programming, the INV (with ``iterations`` refinement passes; 0 = one settle per
    column) computes H^-1 column by column; the inverse is programmed into bit-sliced MVM arrays, and every solve
    is one analog MVM read per array and column."""

    def __init__(self, circuit: CircuitConfig, method: MethodConfig, mvm_config: Optional[CircuitConfig]):
        from .mvm import AnalogMVM
        self.circuit, self.method = circuit, method
        self.mvm_config = (mvm_config or circuit).replace(**{"io.adc_bits": method.mvm.adc_bits,
                                                              "io.dac_bits": method.mvm.dac_bits})
        if method.iterations == 0:     # one settle per column of the identity
            self._inverter = _DirectSolver(circuit, MethodConfig(name="direct", equilibrate=method.equilibrate,
                                                                 operators=method.operators))
        else:
            self._inverter = _hpinv(circuit, _as_hpinv(method), mvm_config)
        self._mvm_cls = AnalogMVM
        self._systems: "OrderedDict[bytes, dict]" = OrderedDict()

    @property
    def deterministic(self) -> bool:
        return all(not c.device.is_stochastic_per_read and c.device.drift_nu == 0
                   for c in (self.circuit, self.mvm_config))

    def _prepare(self, h: np.ndarray) -> tuple[dict, OperationCounts, float]:
        key = matrix_key(h)
        if key in self._systems:
            self._systems.move_to_end(key)
            return self._systems[key], OperationCounts(), 0.0
        n = h.shape[0]
        inverse = self._inverter.solve(h, np.eye(n))       # n settles (+ refinement) on the INV array
        x_inv = np.asarray(inverse.x).reshape(n, n)
        m = self.method.mvm
        mvm = self._mvm_cls(self.mvm_config, slices=m.slices, bits_per_slice=m.bits_per_slice,
                            input_slices=m.input_slices, target_swing=m.target_swing,
                            gain_calibration=m.gain_calibration, array_size=m.array_size)
        runs0 = mvm.counts.ngspice_runs
        if self.method.operators == "extracted":
            if m.response == "circuit":
                matrix = mvm.response(x_inv)
            else:
                from .hpinv import HPInvSolver
                matrix = HPInvSolver(self.circuit, mvm_config=self.mvm_config, slices=m.slices,
                                     gain_calibration=m.gain_calibration).closed_form_mvm(x_inv, mvm)
            programmed = mvm.counts
            mvm.counts = OperationCounts(programmings=programmed.programmings,
                                         cells_programmed=programmed.cells_programmed,
                                         ngspice_runs=programmed.ngspice_runs - runs0)
        else:
            mvm.program(x_inv)
            matrix = None
        system = dict(x_inv=x_inv, mvm=mvm, matrix=matrix, inverse_error=inverse.relative_error)
        self._systems[key] = system
        while len(self._systems) > self.method.cache_size:
            self._systems.popitem(last=False)
        ops = inverse.operations + mvm.counts
        return system, ops, float(inverse.relative_error or 0.0)

    def solve(self, h: np.ndarray, g: np.ndarray, seconds_since_programming: float = 0.0) -> Solution:
        start = time.perf_counter()
        n = h.shape[0]
        system, ops, _ = self._prepare(h)
        mvm = system["mvm"]
        cols = g.reshape(n, -1)
        before = mvm.counts.copy()
        if system["matrix"] is not None:
            arrays = mvm.programmed_arrays
            k = cols.shape[1]
            mvm.counts.add(mvm_reads=len(arrays) * k, dac_conversions=sum(a.g_pos.shape[1] for a in arrays) * k,
                           adc_conversions=sum(a.g_pos.shape[0] for a in arrays) * k,
                           digital_flops=len(arrays) * n * k)
            x = system["matrix"] @ cols
            saturated = np.zeros(k, dtype=bool)
        else:
            res = mvm.multiply(system["x_inv"], cols)
            x = np.asarray(res.y).reshape(n, -1)
            saturated = np.full(cols.shape[1], bool(res.saturated))
        ops = ops + (mvm.counts - before)
        x_star = np.linalg.solve(h, cols)
        err, bits = equivalent_bits(x, x_star)
        from .solution import column_flags, residuals
        total, per_column = residuals(h, x, cols)
        x_out = x[:, 0] if g.ndim == 1 else x
        return Solution(x=x_out, method="repast", backend="circuit", relative_residual=total,
                        relative_residuals=per_column[0] if g.ndim == 1 else per_column,
                        saturated=column_flags(saturated, x_out.shape), operations=ops, analog_error=err,
                        relative_error=err, equivalent_bits=bits, wall_time_s=time.perf_counter() - start,
                        details=dict(inverse_error=system["inverse_error"], mvm_arrays=len(mvm.programmed_arrays)))


def _as_hpinv(method: MethodConfig) -> MethodConfig:
    return MethodConfig.from_spec({"name": "hp-inv", "refinement": method.refinement, "iterations": method.iterations,
                                   "shift": method.shift, "shift_margin": method.shift_margin,
                                   "equilibrate": method.equilibrate, "operators": method.operators,
                                   "check_convergence": method.check_convergence, "cache_size": method.cache_size,
                                   "mvm": method.to_dict()["mvm"]}, "repast inverse")


def _hpinv(circuit: CircuitConfig, method: MethodConfig, mvm_config: Optional[CircuitConfig]):
    from .hpinv import HPInvSolver
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
            self._impl = _DirectSolver(self.config, cfg)
        elif cfg.name == "hp-inv":
            self._impl = _hpinv(self.config, cfg, mvm)
        elif cfg.name == "repast":
            self._impl = _RepastSolver(self.config, cfg, mvm)
        else:
            from .blockamc import BlockAMCSolver
            m = cfg.mvm
            self._impl = BlockAMCSolver(self.config, array_size=cfg.array_size if cfg.array_size is not None else 32,
                                        mvm_config=mvm, mvm_slices=m.slices, mvm_target_swing=m.target_swing,
                                        gain_calibration=m.gain_calibration, check_blocks=cfg.check_convergence)

    @property
    def deterministic(self) -> bool:
        """Repeated solves of one H give the same x (no read noise, no drift)."""
        if self._impl is None:
            return True
        d = getattr(self._impl, "deterministic", None)
        if d is not None:
            return bool(d)
        return not bool(self._impl.per_solve_noise)

    @property
    def per_solve_noise(self) -> bool:
        return not self.deterministic

    @property
    def linear(self) -> bool:
        """x is linear in B (up to converter rounding): then a response measured with identity right-hand sides is
        the method itself. False for PCG (step lengths depend on B), a tolerance, or noise."""
        if self._impl is None:
            return True
        if not self.deterministic:
            return False
        cfg = self.method_config
        if cfg.name == "hp-inv":
            return cfg.refinement == "richardson" and cfg.tol is None
        return True

    def __repr__(self) -> str:
        return f"MethodSolver({self.method_config!r}, backend={self.backend!r}, circuit {self.config.name!r})"

    def solve(self, h: np.ndarray, g: np.ndarray, seconds_since_programming: float = 0.0) -> Solution:
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        if self._impl is None:
            return numpy_solution(h, g, method=self.method)
        if seconds_since_programming and self.method in ("direct", "hp-inv", "repast"):
            return self._impl.solve(h, g, seconds_since_programming)
        return self._impl.solve(h, g)


def solve_system(h: np.ndarray, g: np.ndarray, method: Any = "direct",
                 config: Union[CircuitConfig, str, None] = None, backend: str = "circuit", **options) -> Solution:
    """Solve H x = g with the chosen method (a preset, a method name or a mapping; options as MethodConfig keys)."""
    return MethodSolver(config, method=method, backend=backend, **options).solve(h, g)
