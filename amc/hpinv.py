"""HP-INV (Zuo et al., Nature Electronics 2025): iterative refinement with a low-precision INV and a sliced MVM.

    x_0 = 0,  r_k = g - H x_k  (high-precision bit-sliced analog MVM, subtraction after the ADC),
    x_{k+1} = x_k + s_k * INV(r_k / s_k),  s_k = max|r_k|  (residual scaling: every pass uses the full input range)

The INV array (``AnalogSolver``) holds H as its 8-level array holds it: H0 = ``mapped.h_mapped`` (the top slice of
the bit-sliced H), and with finite op-amp gain it inverts ``H0_eff = (G + diag(S)/A0)/G0``. The error obeys
r_{k+1} = (I - H H0_eff^-1) r_k, so the refinement converges iff rho(I - H H0_eff^-1) < 1 and gains about
-log2(rho) bits per iteration. That is checked before any simulation (``ConvergenceError`` at iteration 0) and
the residual is watched while iterating (``ConvergenceError`` naming the iteration where it grew).

Precision floor: the refinement converges to the solution of the system the MVM computes, H_mvm x = g, so the
final error is about cond(H) * ||H_mvm - H|| / ||H|| plus the MVM readout error relative to ||g|| (the residual is
formed after the ADC). With 8 levels (3 bits a slice) ``slices = 8`` holds H to ~2^-25 of max|H|; ideal converters
(``mvm_adc_bits = mvm_dac_bits = None``, the default) and the TIA gain calibration (default on) are needed for
>= 20 bits: a b-bit ADC caps the residual, and so the answer, near b bits (minus the unused part of the ADC range),
and an uncalibrated A0 = 1e5 TIA caps it near 13-15 bits.
"""
from __future__ import annotations

import time
from typing import Optional, Union

import numpy as np

from .config import DEFAULT_PRESET, CircuitConfig
from .errors import ConfigError
from .mapping import check_invertible, validate_matrix, validate_rhs
from .method_errors import ConvergenceError
from .method_result import MethodSolution, equivalent_bits, new_operations
from .mvm import AnalogMVM
from .solver import AnalogSolver

_UNSET = object()


def refinement_radius(h: np.ndarray, h0_effective: np.ndarray) -> float:
    """rho(I - H H0^-1): the factor by which each refinement pass shrinks the residual (asymptotically)."""
    n = h.shape[0]
    try:
        m = np.eye(n) - h @ np.linalg.inv(h0_effective)
    except np.linalg.LinAlgError:
        return float("inf")
    return float(np.max(np.abs(np.linalg.eigvals(m))))


class HPInvSolver:
    """HP-INV on one INV array (n x n) and a bit-sliced MVM; arrays stay programmed across solves of one H.

    Options: ``iterations`` (max passes), ``tol`` (stop when the measured relative residual ||g - H_mvm x||/||g||
    is below it), ``slices``/``bits_per_slice`` (MVM bit slicing of H), ``input_slices`` (DAC bit slicing of x_k,
    used when the MVM DAC has finite bits), ``mvm_adc_bits``/``mvm_dac_bits`` (None = ideal readout; the default),
    ``mvm_config`` (a different circuit for the MVM arrays; default: the INV's), ``gain_calibration`` (MVM TIA
    finite-gain trim), ``scale_residual``, ``check_convergence`` (upfront rho check), ``divergence_factor``,
    ``mvm_array_size`` (tile the MVM arrays to this size; the INV is always one n x n array).
    """

    def __init__(self, config: Union[CircuitConfig, str, None] = None, *, iterations: int = 10,
                 tol: Optional[float] = None, slices: int = 8, bits_per_slice: Optional[int] = None,
                 input_slices: int = 1, mvm_adc_bits: Optional[int] = None, mvm_dac_bits: Optional[int] = None,
                 mvm_config: Union[CircuitConfig, str, None] = None, gain_calibration: bool = True,
                 mvm_target_swing: float = 0.1, scale_residual: bool = True, check_convergence: bool = True,
                 divergence_factor: float = 2.0, mvm_array_size: Optional[int] = None):
        if config is None:
            config = CircuitConfig.preset(DEFAULT_PRESET)
        elif isinstance(config, str):
            config = CircuitConfig.preset(config)
        if not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(f"iterations must be an integer >= 1, got {iterations!r}")
        if tol is not None and not (isinstance(tol, (int, float)) and tol > 0):
            raise ConfigError(f"tol must be a positive number or None, got {tol!r}")
        if not divergence_factor > 1:
            raise ConfigError(f"divergence_factor must exceed 1, got {divergence_factor!r}")
        self.config = config
        if mvm_config is None:
            mvm_config = config
        elif isinstance(mvm_config, str):
            mvm_config = CircuitConfig.preset(mvm_config)
        mvm_config = mvm_config.replace(**{"io.adc_bits": mvm_adc_bits, "io.dac_bits": mvm_dac_bits})
        self.mvm_config = mvm_config
        self.iterations = iterations
        self.tol = tol
        self.scale_residual = scale_residual
        self.check_convergence = check_convergence
        self.divergence_factor = float(divergence_factor)
        self.inv = AnalogSolver(config)
        self.mvm = AnalogMVM(mvm_config, slices=slices, bits_per_slice=bits_per_slice, input_slices=input_slices,
                             target_swing=mvm_target_swing, gain_calibration=gain_calibration,
                             array_size=mvm_array_size)

    @property
    def per_solve_noise(self) -> bool:
        return self.config.device.is_stochastic_per_read or self.mvm_config.device.is_stochastic_per_read

    def __repr__(self) -> str:
        return (f"HPInvSolver(iterations={self.iterations}, tol={self.tol}, slices={self.mvm.slices}, "
                f"INV: {self.config.describe()}; MVM ADC/DAC bits {self.mvm_config.io.adc_bits}/"
                f"{self.mvm_config.io.dac_bits}, gain calibration {self.mvm.gain_calibration})")

    def radius(self, h: np.ndarray) -> float:
        """rho(I - H H0_eff^-1) of the INV array as programmed for H (programs it if needed)."""
        mapped = self.inv.program(h)
        h0 = mapped.effective_conductance(self.config.opamp.gain) / mapped.g0
        return refinement_radius(h, h0)

    def solve(self, h: np.ndarray, g: np.ndarray) -> MethodSolution:
        start = time.perf_counter()
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        n = h.shape[0]
        check_invertible(h)
        cols = g.reshape(n, -1)
        x_star = np.linalg.solve(h, cols)            # diagnostics only: never used by the iteration
        ops = new_operations()
        inv_key0, inv_solves0 = self.inv._programmed_key, self.inv.solves
        mvm_prog0, mvm_reads0, mvm_ops0 = self.mvm.programmings, self.mvm.reads, self.mvm.operations
        rho = self.radius(h)
        inv_programmed = int(self.inv._programmed_key != inv_key0)
        if self.check_convergence and not rho < 1.0:
            raise ConvergenceError(
                f"HP-INV cannot converge (iteration 0, before refinement): rho(I - H H0^-1) = {rho:.3g} >= 1 for the "
                f"matrix the INV array holds ({self.config.device.levels} levels, A0 {self.config.opamp.gain:.3g}); "
                "the low-precision inverse is too far from H. Use more device levels, damp H, or BlockAMC with "
                "smaller blocks", iteration=0, rho=rho)
        self.mvm.program(h)
        gnorm = max(float(np.linalg.norm(cols)), 1e-300)
        x = np.zeros_like(cols)
        r = cols.copy()
        history = [dict(iteration=0, residual=1.0 if gnorm > 1e-300 else 0.0, true_residual=1.0, relative_error=1.0,
                        bits=0.0, bits_gained=0.0)]
        saturated = False
        inv_power, mvm_power = 0.0, 0.0
        best = 1.0
        for it in range(1, self.iterations + 1):
            scale = np.max(np.abs(r), axis=0) if self.scale_residual else np.ones(r.shape[1])
            scale = np.where(scale > 0, scale, 1.0)
            sol = self.inv.solve(h, r / scale)
            saturated = saturated or sol.saturated_any
            if sol.static_power_w is not None:
                inv_power = max(inv_power, float(np.max(sol.static_power_w)))
            x = x + sol.x.reshape(n, -1) * scale
            mvm = self.mvm.multiply(h, x)
            saturated = saturated or mvm.saturated
            mvm_power = max(mvm_power, mvm.static_power_w)
            r = cols - mvm.y.reshape(n, -1)
            measured = float(np.linalg.norm(r)) / gnorm
            true_residual = float(np.linalg.norm(cols - h @ x)) / gnorm
            err, bits = equivalent_bits(x, x_star)
            record = dict(iteration=it, residual=measured, true_residual=true_residual, relative_error=err,
                          bits=bits, bits_gained=bits - history[-1]["bits"])
            history.append(record)
            if not np.isfinite(measured):
                raise ConvergenceError(f"HP-INV diverged at iteration {it}: the residual is not finite",
                                       iteration=it, history=history, rho=rho)
            if measured > self.divergence_factor * max(history[0]["residual"], 1e-300) or self._growing(history):
                raise ConvergenceError(
                    f"HP-INV diverged at iteration {it}: the measured residual grew to {measured:.3g} "
                    f"(from {best:.3g} at best; rho(I - H H0^-1) = {rho:.3g})", iteration=it, history=history, rho=rho)
            best = min(best, measured)
            if self.tol is not None and measured <= self.tol:
                break
            if measured == 0.0:
                break
        ops["inv_solves"] = self.inv.solves - inv_solves0
        ops["programmings"] = inv_programmed + (self.mvm.programmings - mvm_prog0)
        ops["mvm_operations"] = self.mvm.operations - mvm_ops0
        ops["ngspice_runs"] = ops["inv_solves"] + (self.mvm.reads - mvm_reads0)
        err, bits = equivalent_bits(x, x_star)
        x_out = x[:, 0] if g.ndim == 1 else x
        return MethodSolution(
            x=x_out, method="hp-inv", relative_residual=float(np.linalg.norm(cols - h @ x)) / gnorm,
            saturated=saturated, static_power_w=inv_power + mvm_power, operations=ops, history=history,
            relative_error=err, equivalent_bits=bits, wall_time_s=time.perf_counter() - start,
            details=dict(rho=rho, slices=self.mvm.slices, mvm_adc_bits=self.mvm_config.io.adc_bits,
                         mvm_dac_bits=self.mvm_config.io.dac_bits, gain_calibration=self.mvm.gain_calibration,
                         inv_static_power_w=inv_power, mvm_static_power_w=mvm_power,
                         mvm_arrays=len(self.mvm._arrays)))

    # ---- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def _growing(history: list, run: int = 3, factor: float = 8.0) -> bool:
        """True when the residual grew in each of the last ``run`` iterations by ``factor`` in total."""
        if len(history) < run + 1:
            return False
        tail = [h["residual"] for h in history[-(run + 1):]]
        return all(b > a for a, b in zip(tail, tail[1:])) and tail[-1] > factor * tail[0]
