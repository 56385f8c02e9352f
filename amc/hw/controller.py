"""The controller a chip could have: program, verify through reads, grow a diagonal shift only where a read says so.

Everything here decides from what the periphery measures -- settles of the programmed INV array and MVM reads of
the same cells, each with read noise and converters and each counted -- never from the programmed conductances
themselves (those stay with the simulator, which decides what the hardware does; the controller only sees it).

- ``verify(array)``: Lanczos through the array (``VERIFY_SETTLES`` settles y = INV(v) from a random start). The
  largest Ritz value theta estimates ||A^-1|| (from below), so 1/theta estimates lambda_min of the matrix the array
  holds (from above: the check can pass an array marginally below its margin), and theta is the input scale
  auto-ranging uses from then on (``InvArray.measured_inverse_norm``).
  A loop that diverges rails every output at any input scale: the controller sees a saturated verify settle
  (whether it diverges is the simulator's physics -- ngspice's .op would report the unstable equilibrium).
- ``program_and_verify(array, h, margin)``: the least shift that works. Program H with mu = 0; only where the
  measured check fails (railed outputs, or lambda_min estimate below ``margin`` of the largest target entry)
  re-program with mu grown from the measured shortfall. Every write and read is counted.
- ``compensated_read(array, g)`` (``shift_compensation: mvm``, a control): with a shift mu > 0 applied, one
  refinement step x <- x + INV(g - H x), the residual taken from an MVM read of the same cells ((H + mu diag|H|) x,
  less the known mu diag|H| x). It brings back the unshifted programmed matrix the check refused (README), so the
  `direct` preset keeps the shift as extra damping instead.

The controller's own counts (reads, settles, conversions, flops) are kept apart in ``array.controller_counts`` and
are also part of ``array.counts``, so a hardware account includes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from amc.errors import UnstableCircuitError
from amc.hw import periphery
from amc.hw.mvm import build_mvm_deck
from amc.hw.runner import session

# Lanczos settles per verify: eight cost ~7 settles a training step against ~200 for the solves (README), and put
# the read lambda_min within 16 % of the exact one on the real conv/fc G and conv A factors
# (python -m workflow.controller_control).
VERIFY_SETTLES = 8
MAX_SHIFT_WRITES = 12       # programmings per factor before the controller gives up (as the legacy recipe)
MVM_READ_VOLTAGE = 0.2      # DAC full scale of an MVM read (V), as amc.hw.mvm.AnalogMVM
MVM_TARGET_SWING = 0.1      # TIA output of the worst-case row current, fraction of the swing (AnalogMVM's default)


@dataclass
class Verification:
    """What one verify measured (in the array's own, equilibrated coordinates)."""

    railed: bool                         # the verify settle saturated at every scale: the loop does not settle
    lambda_min_estimate: Optional[float]
    inverse_norm_estimate: Optional[float]
    settles: int = 0

    def to_dict(self) -> dict:
        return dict(railed=self.railed, lambda_min_estimate=self.lambda_min_estimate,
                    inverse_norm_estimate=self.inverse_norm_estimate, settles=self.settles)


def _count(array, **counts) -> None:
    array.counts.add(**counts)
    array.controller_counts.add(**counts)


def _settle(array, v: np.ndarray) -> tuple[np.ndarray, bool]:
    """One settle of A y = v in array coordinates (the periphery's D gains undone around array.read)."""
    d = array.scaling
    before = array.counts.copy()
    sol = array.read(v / d if d is not None else v)
    array.controller_counts += array.counts - before
    y = sol.x / d if d is not None else sol.x
    return y, bool(np.any(sol.saturated))


def verify(array, margin: float, settles: int = VERIFY_SETTLES) -> Verification:
    """Lanczos through the programmed array (each step one settle y = A^-1 v); sets ``array.measured_inverse_norm``.

    After k settles the largest Ritz value theta of the tridiagonal T_k estimates ||A^-1|| = 1/lambda_min from below
    (Kaniel-Paige: Krylov converges far faster than power iteration for clustered small eigenvalues), so 1/theta
    estimates lambda_min from above: an array marginally below its margin can pass.
    """
    n = array.n
    settles = min(settles, n)            # the Krylov space of an n x n array is spent after n settles
    array.response()                     # simulator bookkeeping: the read path's measured response
    # Before the first read: ||A^-1|| <= 1 / margin for an array that passes the check (unit diagonal after
    # equilibration), so the first settle cannot rail an array that would pass; a smaller norm costs one up-ranging
    # settle (counted).
    array.measured_inverse_norm = 1.0 / margin
    v = array.rng.standard_normal(n)
    v /= np.linalg.norm(v)
    _count(array, digital_flops=3 * n)   # norm (2n) and scaling (n)
    alphas, betas = [], []
    v_prev, beta = np.zeros(n), 0.0
    theta = 0.0
    for step in range(settles):
        y, railed = _settle(array, v)
        if railed:
            return Verification(True, None, None, step + 1)
        alpha = float(y @ v)
        w = y - alpha * v - beta * v_prev
        beta_next = float(np.sqrt(w @ w))
        alphas.append(alpha)
        # alpha (2n), w (4n), its norm (2n); the Ritz values of the k x k tridiagonal (~10 k^2 by QR sweeps)
        _count(array, digital_flops=8 * n + 10 * len(alphas) ** 2)
        t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta = max(float(np.linalg.eigvalsh(t)[-1]), 1e-30)
        array.measured_inverse_norm = theta
        if beta_next <= 1e-12 * abs(alpha) or step == settles - 1:
            break
        betas.append(beta_next)
        v_prev, v, beta = v, w / beta_next, beta_next
        _count(array, digital_flops=n)          # w / beta
    return Verification(False, 1.0 / theta, theta, len(alphas))


def verify_flops(n: int, settles: int = VERIFY_SETTLES) -> float:
    """The controller's digital work of one verify (beside the reads' own 2n periphery scaling per settle)."""
    settles = min(settles, n)
    return 3 * n + sum(8 * n + 10 * k * k for k in range(1, settles + 1)) + (settles - 1) * n


def program_and_verify(array, h: np.ndarray, margin: float, settles: int = VERIFY_SETTLES) -> dict:
    """Program H (+ mu diag|H| only where the measured check fails); return what the controller decided."""
    diag = np.abs(np.diag(h))
    mu, history = 0.0, []
    for write in range(1, MAX_SHIFT_WRITES + 1):
        target = h + mu * np.diag(diag) if mu else h
        try:
            array.program(target)
            check = verify(array, margin, settles)
        except UnstableCircuitError:
            # The loop diverges: the one verify settle the controller starts rails every output.
            n = h.shape[0]
            _count(array, inv_settles=1, dac_conversions=n, adc_conversions=n)
            check = Verification(True, None, None, 1)
        # The largest entry of the target in array coordinates: 1 + mu after Jacobi equilibration (|a_ij| <=
        # sqrt(a_ii a_jj) for a positive semi-definite factor); the controller knows what it asked to write.
        scale = (1.0 + mu) if array.config.io.equilibrate else float(np.max(np.abs(target)))
        ok = not check.railed and check.lambda_min_estimate >= margin * scale
        history.append(dict(shift=mu, **check.to_dict(), passed=ok))
        if ok:
            array.shift = mu
            array.shift_diag = mu * diag
            array.verification = check
            return dict(shift=mu, writes=write, history=history)
        if check.railed:
            mu = max(2.0 * mu, 0.05)
        else:   # grow by the measured shortfall (with the margin's own headroom), at least by half
            shortfall = margin * scale - check.lambda_min_estimate
            mu = max(1.5 * mu, mu + 2.0 * shortfall, 0.02)
        _count(array, digital_flops=4)
    raise UnstableCircuitError(f"no diagonal shift up to {mu:.3g} passed the measured check "
                               f"({MAX_SHIFT_WRITES} programmings, each verified by reads)")


def write_until_accepted(write, mu: float, retry: bool, attempts: int = MAX_SHIFT_WRITES):
    """The one program-and-verify loop of the shift recipes judged on what was written (``shift: auto`` of direct,
    HP-INV and RePAST): ``write(mu) -> (result, accepted)`` programs with shift mu and checks the write (every write
    and check counted by the caller's array). Without ``retry`` one write is taken as it is; with it a refused write
    (not accepted, or an unstable/unmappable array) is re-programmed with mu grown (0.05, then x1.5), at most
    ``attempts`` writes; an error at the last write propagates. Returns (result, mu, writes, accepted)."""
    from amc.errors import MappingError
    for attempt in range(1, attempts + 1):
        try:
            result, accepted = write(mu)
        except (UnstableCircuitError, MappingError):
            if not retry or attempt == attempts:
                raise
            result, accepted = None, False
        if accepted or not retry or attempt == attempts:
            return result, mu, attempt, accepted
        mu = max(1.5 * mu, 0.05)
    raise AssertionError("unreachable")


# ---- MVM reads of the INV array's own cells -----------------------------------------------------------------
class CellReader:
    """MVM reads of a programmed INV array's cells (columns driven by DACs, rows sensed by TIAs).

    The TIA gain is ranged once per programming from the worst-case row current (the controller knows the levels it
    wrote); the read's linear response is measured by one quasi-static ngspice batch over unit inputs (per
    programming, simulator bookkeeping), and each read adds its fresh read-noise draw as the extra row currents
    (dG+ - dG-) V, exact for virtual-ground rows without wire resistance. DAC and ADC quantise every read.
    """

    def __init__(self, array):
        self.array = array
        cfg = array.config
        mapped = array.mapped
        self.rf = MVM_TARGET_SWING * periphery.swing_limit(cfg) / max(
            MVM_READ_VOLTAGE * float(np.max(np.abs(mapped.g_diff).sum(axis=1))), 1e-30)
        n = mapped.n
        deck = build_mvm_deck(mapped.g_pos, mapped.g_neg, MVM_READ_VOLTAGE * np.eye(n), self.rf, cfg,
                              header="INV array cells read as an MVM (response batch)")
        ng = session()
        runs0 = ng.runs
        try:
            ng.load(deck)
            raw = ng.run(["time"] + [f"out_{i}" for i in range(n)], command=f"tran 1 {max(n - 1, 1)} 0 1")
        finally:
            ng.clean()
        array.counts.add(ngspice_runs=session().runs - runs0)
        samples = np.arange(n, dtype=float)
        self.response = np.stack([np.interp(samples, raw["time"], raw[f"out_{i}"]) for i in range(n)]) / \
            MVM_READ_VOLTAGE       # volts out per volt in
        # The row calibration of AnalogMVM (gain_calibration): the finite-gain factor a one-time trim measures.
        self.gain_trim = 1.0 + (1.0 + self.rf * mapped.row_total) / cfg.opamp.gain

    def read(self, u: np.ndarray) -> np.ndarray:
        """A u for one column u in array coordinates (A the matrix the cells hold), one MVM read."""
        array, cfg = self.array, self.array.config
        mapped = array.mapped
        n = mapped.n
        umax = float(np.max(np.abs(u)))
        if umax == 0.0:
            return np.zeros(n)
        from amc.hw.converters import quantise_symmetric
        volts = MVM_READ_VOLTAGE * quantise_symmetric(u / umax, cfg.io.dac_bits, 1.0)
        swing = periphery.swing_limit(cfg)
        rf, trim = self.rf, self.gain_trim
        for attempt in range(2):
            # out = -R_f (G V) / trim exactly for virtual-ground rows: the measured response at R_f0 rescaled to R_f
            out = (rf / self.rf) * (self.gain_trim / trim) * (self.response @ volts)
            sigma = cfg.device.read_noise_sigma
            if sigma > 0:
                noisy = mapped.with_read_noise(sigma, array.rng, cfg.device)
                out = out - rf * ((noisy.g_diff - mapped.g_diff) @ volts) / trim
            _count(array, mvm_reads=1, dac_conversions=n, adc_conversions=n)
            peak = float(np.max(np.abs(out)))
            # With a finite ADC an output far below full scale loses codes: re-read once with R_f raised so the
            # largest output sits at io.target_swing of the swing (as AnalogMVM re-ranges).
            if attempt or cfg.io.adc_bits is None or peak == 0.0 or peak >= 0.5 * cfg.io.target_swing * swing:
                break
            rf = rf * cfg.io.target_swing * swing / peak
            trim = 1.0 + (1.0 + rf * mapped.row_total) / cfg.opamp.gain
        reading = periphery.adc(out, cfg) * trim          # the row trim of a one-time calibration
        return -reading / rf / (mapped.g0 * MVM_READ_VOLTAGE) * umax


def compensated_read(array, g: np.ndarray, seconds_since_programming: float = 0.0):
    """x0 = INV(g); x = x0 + INV(g - H x0) with H x0 = D^-1 (A (D^-1 x0)) - mu diag|H| x0 from one MVM read per
    column. Returns (solution, x0): the refined answer and the one-settle answer before it."""
    h_diag_shift = array.shift_diag
    first = array.read(g, seconds_since_programming)
    x0 = first.x
    n = array.n
    columns = x0.reshape(n, -1)
    rhs = g.reshape(n, -1)
    d = array.scaling
    if getattr(array, "_cell_reader", None) is None or array._cell_reader[0] is not array.mapped:
        array._cell_reader = (array.mapped, CellReader(array))
    reader = array._cell_reader[1]
    residual = np.zeros_like(columns)
    for c in range(columns.shape[1]):
        u = columns[:, c] / d if d is not None else columns[:, c]
        au = reader.read(u)
        hx = (au / d if d is not None else au) - h_diag_shift * columns[:, c]
        residual[:, c] = rhs[:, c] - hx
    k = columns.shape[1]
    # per column: D^-1 on the way in and out (2n), mu diag|H| x0 (n), two subtractions (2n), the final add (n)
    _count(array, digital_flops=6 * n * k)
    before = array.counts.copy()
    correction = array.read(residual.reshape(g.shape), seconds_since_programming)
    array.controller_counts += array.counts - before
    first.x = x0 + correction.x
    first.saturated = np.asarray(first.saturated) | np.asarray(correction.saturated)
    first.rescales += correction.rescales
    return first, x0


def compensation_flops(n: int, k: int) -> float:
    return 6 * n * k


def exact_bias_solution(h: np.ndarray, g: np.ndarray, shift_diag: np.ndarray, compensated: bool) -> np.ndarray:
    """Diagnostic (not a controller decision): what the deliberate shift alone does in exact arithmetic."""
    shifted = h + np.diag(shift_diag)
    x = np.linalg.solve(shifted, g)
    if compensated and np.any(shift_diag):
        x = x + np.linalg.solve(shifted, g - h @ x)
    return x


__all__ = ["Verification", "verify", "verify_flops", "program_and_verify", "CellReader", "compensated_read",
           "compensation_flops", "exact_bias_solution", "VERIFY_SETTLES"]
