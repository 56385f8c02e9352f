"""Mapping of a real matrix H onto a differential pair of RRAM arrays, G+ - G- = G0 * H.

Conventions (DESIGN.md section 1): a positive entry programs G+ above G_min and leaves G- at G_min; a negative
entry does the reverse; a zero entry puts G_min on both sides. The scale is G0 = (G_max - G_min) / max|H|, so
the largest entry uses the whole window (G_max / max|H| would ask for G_min + G_max > G_max on that cell).
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from amc.config import DeviceConfig
from amc.errors import AccuracyWarning, InputError, MappingError, SingularMatrixError, UnstableCircuitError
from amc.units import si

# Condition numbers beyond this cannot be inverted meaningfully by any analog circuit (or by float64 math).
MAX_CONDITION = 1e12


def _refuse_complex(value, name: str) -> None:
    # NumPy's float64 cast drops an imaginary part with only a ComplexWarning: the circuit would solve another system.
    try:
        kind = np.asarray(value).dtype.kind
    except (TypeError, ValueError):
        return
    if kind == "c":
        raise InputError(f"{name} is complex ({np.asarray(value).dtype}); the circuit solves real systems only "
                         "(split a complex system into its real 2n x 2n form)")
    if kind == "O" and any(isinstance(v, complex) for v in np.asarray(value, dtype=object).ravel()):
        raise InputError(f"{name} contains complex numbers; the circuit solves real systems only")


def validate_matrix(h: np.ndarray) -> np.ndarray:
    """Return H as a float64 square matrix, or raise InputError naming what is wrong."""
    _refuse_complex(h, "H")
    try:
        h = np.asarray(h, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"H is not a numeric matrix: {exc}") from None
    if h.ndim != 2:
        raise InputError(f"H must be a 2-D matrix, got an array of shape {h.shape}")
    if h.size == 0:
        raise InputError(f"H is empty (shape {h.shape})")
    if h.shape[0] != h.shape[1]:
        raise InputError(f"H must be square, got shape {h.shape}")
    bad = ~np.isfinite(h)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"H contains {int(bad.sum())} non-finite value(s) (NaN/Inf), first at H[{i},{j}] = {h[i, j]}")
    return h


def validate_rhs(g: np.ndarray, n: int) -> np.ndarray:
    """Return g as float64 of shape (n,) or (n, k), or raise InputError."""
    _refuse_complex(g, "g")
    try:
        g = np.asarray(g, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"g is not numeric: {exc}") from None
    if g.ndim not in (1, 2) or g.shape[0] != n or g.size == 0:
        raise InputError(f"g must have shape ({n},) or ({n}, k) to match H ({n}x{n}), got {g.shape}")
    if not np.isfinite(g).all():
        raise InputError(f"g contains {int((~np.isfinite(g)).sum())} non-finite value(s) (NaN/Inf)")
    return g


def check_invertible(h: np.ndarray) -> float:
    """Raise SingularMatrixError when H is singular to working precision; return its 2-norm condition number."""
    singular_values = np.linalg.svd(h, compute_uv=False)
    if singular_values[-1] <= 0 or singular_values[0] / singular_values[-1] > MAX_CONDITION:
        cond = np.inf if singular_values[-1] <= 0 else singular_values[0] / singular_values[-1]
        raise SingularMatrixError(
            f"H is singular or too ill-conditioned to invert (condition number {cond:.3g} > {MAX_CONDITION:.0e})")
    return float(singular_values[0] / singular_values[-1])


@dataclass
class MappedArray:
    """The programmed differential array and its scale."""

    h: np.ndarray          # the requested matrix
    g_pos: np.ndarray      # conductances of the G+ array (S)
    g_neg: np.ndarray      # conductances of the G- array (S)
    g0: float              # siemens per unit of H
    condition: float       # condition number of H
    device: Optional[DeviceConfig] = None     # what it was programmed with (for messages)
    inverse_error: Optional[float] = field(default=None, repr=False)
    clipping: dict = field(default_factory=dict, repr=False)     # what the window's clip took (programming error)
    warned: bool = field(default=False, repr=False)

    @property
    def n(self) -> int:
        return self.h.shape[0]

    def __repr__(self) -> str:
        return (f"MappedArray({self.n}x{self.n} differential, G0 {si(self.g0, 'S')} per unit of H, "
                f"cond {self.condition:.3g}, G {si(float(min(self.g_pos.min(), self.g_neg.min())), 'S')}–"
                f"{si(float(max(self.g_pos.max(), self.g_neg.max())), 'S')})")

    @property
    def g_diff(self) -> np.ndarray:
        return self.g_pos - self.g_neg

    @property
    def h_mapped(self) -> np.ndarray:
        """The matrix the array actually holds, in units of H."""
        return self.g_diff / self.g0

    @property
    def row_total(self) -> np.ndarray:
        """S_i: all conductance hanging on row line i (both arrays)."""
        return (self.g_pos + self.g_neg).sum(axis=1)

    def effective_conductance(self, gain: float) -> np.ndarray:
        """Closed form with finite open-loop gain A0: G + diag(S)/A0 (row node sits at -V_i/A0)."""
        return self.g_diff + np.diag(self.row_total / gain)

    def loop_matrix(self, gain: float) -> np.ndarray:
        """Matrix of the linearised loop dynamics in units of the op-amp's angular GBW: dV/dt = -w_t M V + ...

        With single-pole op-amps, the row node is v_i = (I_i + (G V)_i)/S_i and tau dV_i/dt = -V_i - A0 v_i, so
        M = diag(S)^-1 (G + diag(S)/A0). Its eigenvalues set stability (all real parts > 0) and settling time.
        """
        return self.effective_conductance(gain) / self.row_total[:, None]

    def with_read_noise(self, sigma: float, rng: np.random.Generator, device: DeviceConfig) -> "MappedArray":
        """A copy whose conductances carry one draw of relative read noise (one read of the array)."""
        if sigma <= 0:
            return self
        from amc.hw.periphery import read_noise
        noisy_pos, noisy_neg = read_noise(self.g_pos, self.g_neg, sigma, rng, device)
        return MappedArray(self.h, noisy_pos, noisy_neg, self.g0, self.condition, self.device)


def quantise_conductance(g: np.ndarray, device: DeviceConfig) -> np.ndarray:
    if device.levels is None:
        return g
    step = (device.g_max - device.g_min) / (device.levels - 1)
    return device.g_min + np.round((g - device.g_min) / step) * step


def apply_programming_variation(g_pos: np.ndarray, g_neg: np.ndarray, device: DeviceConfig,
                                rng: np.random.Generator, clipping: Optional[dict] = None) -> tuple[np.ndarray, np.ndarray]:
    """Programming error (relative Gaussian, clipped to the window) and stuck cells (half at each end).

    ``clipping`` (a dict), when given, receives what the window's clip took away: cells clipped at g_max and at
    g_min, and the mean relative error of the cells programmed at the top level (where the clip makes the error
    one-sided: the diagonal of an equilibrated factor)."""
    if device.program_sigma > 0:
        raw_pos = g_pos * (1 + device.program_sigma * rng.standard_normal(g_pos.shape))
        raw_neg = g_neg * (1 + device.program_sigma * rng.standard_normal(g_neg.shape))
        if clipping is not None:
            top = np.concatenate([(g_pos >= device.g_max).ravel(), (g_neg >= device.g_max).ravel()])
            raw = np.concatenate([raw_pos.ravel(), raw_neg.ravel()])
            clipped = np.clip(raw, device.g_min, device.g_max)
            clipping.update(at_g_max=int(np.sum(raw > device.g_max)), at_g_min=int(np.sum(raw < device.g_min)),
                            top_level_cells=int(top.sum()),
                            top_level_mean_error=float(np.mean(clipped[top] / device.g_max - 1)) if top.any() else 0.0)
        g_pos = np.clip(raw_pos, device.g_min, device.g_max)
        g_neg = np.clip(raw_neg, device.g_min, device.g_max)
    if device.stuck_rate > 0:
        g_pos, g_neg = g_pos.copy(), g_neg.copy()
        for array in (g_pos, g_neg):
            stuck = rng.random(array.shape) < device.stuck_rate
            array[stuck] = np.where(rng.random(int(stuck.sum())) < 0.5, device.g_min, device.g_max)
    return g_pos, g_neg


def map_matrix(h: np.ndarray, device: DeviceConfig, rng: Optional[np.random.Generator] = None) -> MappedArray:
    """Program H into G+/G-: scale, quantise to the device levels, then add programming error and stuck cells."""
    h = validate_matrix(h)
    condition = check_invertible(h)
    scale = float(np.max(np.abs(h)))
    if scale == 0.0:
        raise MappingError("H is all zeros: nothing to map into the conductance window")
    rng = rng if rng is not None else np.random.default_rng(device.seed)
    window = device.g_max - device.g_min
    g0 = window / scale
    target = h * g0
    g_pos = quantise_conductance(device.g_min + np.maximum(target, 0.0), device)
    g_neg = quantise_conductance(device.g_min + np.maximum(-target, 0.0), device)
    clipping: dict = {}
    g_pos, g_neg = apply_programming_variation(g_pos, g_neg, device, rng, clipping)
    mapped = MappedArray(h, g_pos, g_neg, g0, condition, device)
    mapped.clipping = clipping
    diff = mapped.g_diff
    if not np.any(diff):
        raise MappingError("every entry of H rounds to zero on the device levels: H cannot be mapped")
    if np.linalg.matrix_rank(diff) < h.shape[0]:
        levels = "continuous" if device.levels is None else f"{device.levels} levels"
        raise MappingError(
            f"H loses rank when mapped into the conductance window ({levels}, "
            f"{device.g_min:g}-{device.g_max:g} S): its small entries round away; use more levels or HP-INV")
    return mapped


def check_stability(mapped: MappedArray, gain: float) -> float:
    """Raise UnstableCircuitError unless every loop eigenvalue has a positive real part; return lambda_min.

    A DC operating point exists for an unstable loop too, but the hardware never reaches it, so the check
    must come before any .op analysis.
    """
    eigenvalues = np.linalg.eigvals(mapped.loop_matrix(gain))
    worst = eigenvalues[np.argmin(eigenvalues.real)]
    if worst.real <= 0:
        mapped_eigs = np.linalg.eigvals(mapped.h_mapped)
        min_mapped = float(mapped_eigs.real.min())
        h = mapped.h
        h_spd = bool(np.allclose(h, h.T, rtol=0, atol=1e-12 * np.max(np.abs(h)))
                     and np.linalg.eigvalsh((h + h.T) / 2).min() > 0)
        if h_spd:
            raise UnstableCircuitError(
                f"the inversion loop is unstable although H is symmetric positive-definite (min eig(H) = "
                f"{np.linalg.eigvalsh((h + h.T) / 2).min():.4g}): the mapped (quantised) matrix lost positive "
                f"definiteness (min Re(eig(H_mapped)) = {min_mapped:.4g}, {_mapping_conditions(mapped)}). "
                "Remedies: more conductance levels (device.levels), Jacobi equilibration (io.equilibrate: true), "
                "a diagonal shift of H, or a method that refines a low-precision array (--method hpinv-pcg, "
                "or blockamc for smaller arrays)")
        raise UnstableCircuitError(
            "the inversion loop is unstable: the mapped matrix has an eigenvalue with non-positive real part "
            f"(min Re(eig(H_mapped)) = {min_mapped:.4g}, loop eigenvalue {worst:.4g}); "
            "the circuit would diverge or saturate instead of settling at H^-1 g. "
            "Damp H (add a multiple of the identity) or solve a symmetric positive-definite system")
    return float(np.min(eigenvalues.real))


# Beyond this relative error of the programmed inverse a solve still "passes" but its answer is poor: say so,
# naming the cause.
ACCURACY_WARNING_THRESHOLD = 0.1


def _mapping_conditions(mapped: MappedArray) -> str:
    device = mapped.device
    if device is None:
        return f"n = {mapped.n}"
    levels = "continuous conductances" if device.levels is None else f"{device.levels} conductance levels"
    extra = []
    if device.program_sigma:
        extra.append(f"programming error {device.program_sigma:g}")
    if device.stuck_rate:
        extra.append(f"stuck rate {device.stuck_rate:g}")
    return f"n = {mapped.n}, {levels}" + "".join(f", {e}" for e in extra)


def mapping_error(mapped: MappedArray) -> float:
    """Worst-case relative error of x that the programmed matrix alone causes: ||H_mapped^-1 H - I||_2.

    Cached on the array (one programming, one value); quantisation, programming error and stuck cells all count.
    """
    if mapped.inverse_error is None:
        try:
            e = np.linalg.solve(mapped.h_mapped, mapped.h) - np.eye(mapped.n)
            mapped.inverse_error = float(np.linalg.norm(e, 2))
        except np.linalg.LinAlgError:
            mapped.inverse_error = float("inf")
    return mapped.inverse_error


# (n, device conditions) already warned about in this process: a training run re-programs its factor arrays at
# every inverse update and would otherwise repeat the same warning hundreds of times.
_ACCURACY_WARNED: set = set()


def warn_if_inaccurate(mapped: MappedArray, threshold: float = ACCURACY_WARNING_THRESHOLD) -> float:
    """Emit an AccuracyWarning when the programmed array alone makes x wrong by more than ``threshold``; return
    that worst-case error (NaN when not checked).

    Once per matrix size and device setting in a process. Silent when the solve is one step of an amc method
    (HP-INV, BlockAMC): those refine or combine the inner arrays and answer for the final accuracy themselves.
    """
    caller = sys._getframe(2).f_globals.get("__name__", "")
    if caller.startswith("amc.") and not (caller == "amc.cli" or caller.startswith("amc.cli.")):
        return float("nan")  # not computed: an O(n^3) check the composite method does not need
    error = mapping_error(mapped)
    if error <= threshold or mapped.warned:
        return error
    key = (mapped.n, _mapping_conditions(mapped))
    if key in _ACCURACY_WARNED:
        return error
    _ACCURACY_WARNED.add(key)
    mapped.warned = True
    warnings.warn(AccuracyWarning(
        f"the programmed array differs from H enough to change x by up to {error:.0%} "
        f"({_mapping_conditions(mapped)}, condition number {mapped.condition:.3g}); "
        "for a more accurate answer use more levels (device.levels), io.equilibrate: true, or --method hpinv-pcg "
        "(not repeated for this size and device setting)"), stacklevel=3)
    return error
