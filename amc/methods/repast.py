"""``repast`` (RePAST-style, seed paper): once per programming the INV (plus ``iterations`` refinement passes)
computes H^-1 column by column; the inverse is programmed into bit-sliced MVM arrays and every solve is one analog
MVM read per array and column. Measuring the MVM's response is simulation bookkeeping (ngspice runs only).
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from amc.config import CircuitConfig
from amc.errors import ConfigError
from amc.hw.counters import OperationCounts
from amc.hw.mapping import validate_matrix
from amc.methods.config import DirectConfig, RepastConfig
from amc.methods.programmed import Programmed, ProgrammedCache
from amc.methods.shared import closed_form_mvm
from amc.solution import Solution, column_flags, equivalent_bits, residuals


class RepastSolver:
    """RePAST-style: once per programming, the INV (with ``iterations`` refinement passes; 0 = one settle per
    column) computes H^-1 column by column; the inverse is programmed into bit-sliced MVM arrays, and every solve
    is one analog MVM read per array and column."""

    def __init__(self, circuit: CircuitConfig, method: RepastConfig, mvm_config: Optional[CircuitConfig] = None):
        from amc.hw.mvm import AnalogMVM
        self.circuit, self.method = circuit, method
        self.mvm_config = (mvm_config or circuit).replace(**{"io.adc_bits": method.mvm.adc_bits,
                                                              "io.dac_bits": method.mvm.dac_bits})
        if circuit.device.drift_nu > 0 or (mvm_config or circuit).device.drift_nu > 0:
            raise ConfigError("RePAST-style solves do not model conductance drift (the inverse is held in MVM "
                              "arrays); use method direct or hp-inv with operators 'extracted'")
        inverter = method.inverter()       # direct (iterations 0: one settle per column) or HP-INV
        self._inverter = inverter.build(circuit) if isinstance(inverter, DirectConfig) else \
            inverter.build(circuit, mvm_config)
        self._mvm_cls = AnalogMVM
        self.cache = ProgrammedCache(method.cache_size)

    @property
    def deterministic(self) -> bool:
        return all(not c.device.is_stochastic_per_read and c.device.drift_nu == 0
                   for c in (self.circuit, self.mvm_config))

    @property
    def linear(self) -> bool:          # one MVM read per column of the programmed inverse
        return self.deterministic

    def program(self, h: np.ndarray) -> Programmed:
        """H^-1 computed on the INV and programmed into MVM arrays (the held handle when H is programmed already);
        the handle's programming counts the inverse's computation too."""
        return self._program(validate_matrix(h))[0]

    def _program(self, h: np.ndarray) -> tuple[Programmed, bool]:
        found = self.cache.find(h)
        if found is not None:
            return found, False
        start = time.perf_counter()
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
                matrix = closed_form_mvm(mvm, x_inv, self.mvm_config.opamp.gain)
            programmed = mvm.counts
            mvm.counts = OperationCounts(programmings=programmed.programmings,
                                         cells_programmed=programmed.cells_programmed,
                                         ngspice_runs=programmed.ngspice_runs - runs0,
                                         programmings_verified=programmed.programmings_verified,
                                         programmings_restamped=programmed.programmings_restamped)
        else:
            mvm.program(x_inv)
            matrix = None
        system = dict(x_inv=x_inv, mvm=mvm, matrix=matrix, inverse_error=inverse.relative_error,
                      analog_error=inverse.analog_error, lambda_min=inverse.lambda_min,
                      inverter=self._inverter.program(h))      # the INV arrays that computed it (held, no write)
        handle = Programmed(self, h, system, lambda: system["inverter"].hardware + [system["mvm"]],
                            inverse.operations + mvm.counts, time.perf_counter() - start)
        self.cache.add(h, handle)
        return handle, True

    def solve(self, h: np.ndarray, g: np.ndarray, seconds_since_programming: float = 0.0) -> Solution:
        """Program H (unless held) and solve; the first solve after programming carries the programming's counts."""
        handle, fresh = self._program(validate_matrix(h))
        return self.solve_programmed(handle, g, seconds_since_programming, first=fresh)

    def solve_programmed(self, handle: Programmed, g: np.ndarray, seconds_since_programming: float = 0.0,
                         first: bool = False) -> Solution:
        if seconds_since_programming:
            raise ConfigError("RePAST-style solves do not model conductance drift: no seconds_since_programming")
        start = time.perf_counter()
        h, system = handle.h, handle.state
        n = h.shape[0]
        ops = handle.programming.copy() if first else OperationCounts()
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
            mvm.counts.add(digital_flops=res.operations * n)      # shift-and-add of the partials, as extracted
            x = np.asarray(res.y).reshape(n, -1)
            saturated = np.full(cols.shape[1], bool(res.saturated))
        ops = ops + (mvm.counts - before)
        x_star = np.linalg.solve(h, cols)
        err, bits = equivalent_bits(x, x_star)
        total, per_column = residuals(h, x, cols)
        x_out = x[:, 0] if g.ndim == 1 else x
        return Solution(x=x_out, method="repast", backend="circuit", relative_residual=total,
                        relative_residuals=per_column[0] if g.ndim == 1 else per_column,
                        saturated=column_flags(saturated, x_out.shape), operations=ops,
                        analog_error=system["analog_error"], lambda_min=system["lambda_min"],
                        relative_error=err, equivalent_bits=bits, wall_time_s=time.perf_counter() - start,
                        details=dict(inverse_error=system["inverse_error"], mvm_arrays=len(mvm.programmed_arrays),
                                     analog_error_is="the INV's one-shot inverse before the refinement passes"))
