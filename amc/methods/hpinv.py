"""HP-INV (Zuo et al., Nature Electronics 2025): iterative refinement with a low-precision INV and a sliced MVM.

Two refinements share the same analog blocks (``refinement``):

``richardson`` (the paper's HP-INV, the default)::

    x_0 = 0,  r_k = g - H x_k  (high-precision bit-sliced analog MVM, subtraction after the ADC),
    x_{k+1} = x_k + s_k * INV(r_k / s_k),  s_k = max|r_k|  (residual scaling: every pass uses the full input range)

``pcg`` (preconditioned conjugate gradient; H must be symmetric positive definite)::

    r_0 = g, z_0 = INV(r_0), p_0 = z_0;   q_k = MVM(p_k), a_k = r_k.z_k / p_k.q_k,
    x_{k+1} = x_k + a_k p_k, r_{k+1} = r_k - a_k q_k, z_{k+1} = INV(r_{k+1}),
    b_k = r_{k+1}.(z_{k+1} - z_k) / r_k.z_k  (Polak-Ribiere: "flexible" PCG, tolerant of the slightly
    non-symmetric, not exactly linear inverse a circuit computes), p_{k+1} = z_{k+1} + b_k p_k.

The INV array (``AnalogSolver``) holds H as its 8-level array holds it: H0 = ``mapped.h_mapped`` (the top slice of
the bit-sliced H), and with finite op-amp gain it inverts ``H0_eff = (G + diag(S)/A0)/G0``. Richardson's error obeys
r_{k+1} = (I - H H0_eff^-1) r_k, so it converges iff rho(I - H H0_eff^-1) < 1 and gains about -log2(rho) bits per
iteration. That is checked before any simulation (``ConvergenceError`` at iteration 0) and the residual is watched
while iterating (``ConvergenceError`` naming the iteration where it grew). PCG only needs H0_eff positive definite;
it gains roughly log2((sqrt(k)+1)/(sqrt(k)-1)) bits an iteration, k = cond(H0_eff^-1 H) (reported as ``kappa``).

Equilibration (``equilibrate``, default: the INV config's ``io.equilibrate``): the method works on
D H D y = D g, x = D y with D = diag(H)^-1/2 (a digital gain per DAC/ADC channel); both the INV and the MVM hold
the equilibrated matrix (unit diagonal). The INV's own ``io.equilibrate`` is then switched off (nothing left to do).

Diagonal shift (``shift``): quantised to 8 levels, a K-FAC factor block loses positive definiteness (~20% of
blocks: the loop is unstable) or lands 50-180% away from H. The INV is therefore programmed with
Hs = D H D + mu I instead of D H D. After equilibration the diagonal of Hs (1 + mu) is the largest entry of the
matrix (|h_ij| <= 1 for an SPD matrix with unit diagonal), so the mapping puts every diagonal cell exactly on the
top conductance level G_max: the shift survives quantisation exactly and needs no extra hardware; the price is a
coarser step (1 + mu)/7 for the off-diagonal entries. H0 = Q(Hs) is then positive definite once mu exceeds the
quantisation error. (The alternative, Q(H) + mu I with a precise peripheral feedback conductance mu G0 per row in
parallel with the diagonal cell, keeps the finer step; emulated on real K-FAC factors it saves 1-2 PCG iterations
but needs a resistor per row and a change to the netlist, so it is not modelled here.) ``shift``: None/0 (off),
a number mu (in units of the largest |entry| of the matrix the INV would hold unshifted, i.e. of the unit diagonal
after equilibration), or ``"auto"``: mu = ||Q(D H D) - D H D||_2 (known digitally: the controller knows the levels
it programs), grown by 1.5x until the programmed H0_eff (programming error included) has
lambda_min(sym H0_eff) >= ``shift_margin`` * (1 + mu) and the loop passes the stability check (for Richardson also
until rho(I - H H0_eff^-1) <= 1 - ``shift_margin``). The shift makes
H0 >= H roughly, so Richardson converges slowly (rate 1 - lambda_min(H0^-1 H)); with PCG it converges fast:
on 418 real K-FAC factor blocks (EMNIST a-m, sizes 8-37, cond <= 186 after equilibration) "auto" reached a
relative error of 1e-3 in <= 10 PCG iterations (median 7), emulated with exact arithmetic.

Operators (``operators``): ``per-solve`` sends every INV and MVM application to ngspice. ``extracted`` measures
each linear circuit once per programmed H -- the INV's response to identity right-hand sides (n INV settles in
ngspice) and the MVM's response (``mvm.response``: ``circuit`` = every slice array's unit-input response from
ngspice -- its quasi-static batch at the first and every simulation.verify_every-th programming of an array
topology, ngspice's own matrix of that topology re-stamped in between (amc/hw/mvm_restamp.py) --
``closed-form`` = the MVM's analytic response, a comparison only, exact for ideal converters and no wires, which
ngspice matches to ~1e-9) -- and then applies them by matmul. Both circuits are linear (the op-amps sit in
feedback, so their output limiter is divided by the loop gain; auto-ranging I0 and ideal converters are scale-free), so this is the same
computation as per-solve, at a fraction of the ngspice runs; a test holds the two to each other. Devices with read
noise (a different answer every read) are refused in ``extracted`` mode. Extracted operators are cached per H
(``cache_size`` systems, least recently used dropped): one physical array set per K-FAC block. Operation counts
(``inv_solves``, ``mvm_operations``) always count the analog operations the hardware would perform;
``ngspice_runs`` counts the simulations actually run (extraction included).

Block-Jacobi preconditioner (``array_size``): a system larger than one INV array (n > ``array_size``) is split
into contiguous diagonal blocks of at most ``array_size`` (equal chunks, as K-FAC's ``max_block`` splits a factor
without channel structure), each programmed into its own INV array (after the global Jacobi equilibration; shift
and ``shift: auto`` per block, exactly as for a single array). The preconditioner is the block-diagonal of the
block inverses; the MVM holds the FULL H, tiled into arrays of at most ``array_size`` (``mvm_array_size``, default
``array_size``). PCG (``refinement: pcg``) on the full system then converges to the full system's solution, not to
the block-diagonal approximation; it needs more iterations than one array would (the preconditioner ignores the
off-diagonal blocks; even exact block-Jacobi leaves cond ~400 on these factors): on 289 x 289 K-FAC A factors
(EMNIST a-m, 5 blocks of <= 58, preconditioned cond 440-1070 with the shifted 8-level arrays) 37-47 iterations reach
1e-3 and 60 reach ~1e-4 (6 slices; the MVM floor is ~5e-5), against ~25% for the block-diagonal solve alone.
Only ``refinement: pcg`` takes this route (Richardson with a block-diagonal INV is refused: use PCG or BlockAMC).

Precision floor: the refinement converges to the solution of the system the MVM computes, H_mvm x = g, so the
final error is about cond(H) * ||H_mvm - H|| / ||H|| plus the MVM readout error relative to ||g|| (the residual is
formed after the ADC). With 8 levels (3 bits a slice) ``slices = 8`` holds H to ~2^-25 of max|H| (``slices = 6``,
~2^-19, is enough for a relative error of 1e-4 on the K-FAC factors above); ideal converters
(``mvm_adc_bits = mvm_dac_bits = None``, the default) and the TIA gain calibration (default on) are needed for
>= 20 bits: a b-bit ADC caps the residual, and so the answer, near b bits (minus the unused part of the ADC range),
and an uncalibrated A0 = 1e5 TIA caps it near 13-15 bits.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from amc.config import CircuitConfig
from amc.errors import AmcError, ConfigError, InputError, MappingError, UnstableCircuitError
from amc.hw.mapping import check_invertible, validate_matrix, validate_rhs
from amc.methods.errors import ConvergenceError
from amc.hw.controller import write_until_accepted
from amc.hw.counters import OperationCounts
from amc.hw.inv_array import InvArray, jacobi_scaling
from amc.methods.config import HPInvConfig
from amc.methods.programmed import Programmed, ProgrammedCache, Refused, timed_programming
from amc.methods.shared import (circuit_config, closed_form_mvm, preconditioned_condition, quantisation_shift,
                                refinement_radius)
from amc.hw.mvm import AnalogMVM
from amc.solution import Solution, column_flags, equivalent_bits, residuals

@dataclass
class _System:
    """What one H becomes on the hardware: equilibration, shift, its own INV arrays (one per block-Jacobi block)
    and its own MVM arrays; measured operators where the method uses them."""

    h_mvm: np.ndarray                  # what the MVM holds (D H D, or H)
    d: Optional[np.ndarray]            # Jacobi scaling (None: off)
    mu: float                          # diagonal shift of the INV matrix (units of H_mvm)
    h_inv: np.ndarray                  # what the INV is asked to hold: H_mvm + mu I
    h0_eff: np.ndarray                 # what it inverts: (G + diag(S)/A0)/G0 (quantised, programming error)
    lam_min_h0: float                  # lambda_min of the symmetric part of h0_eff
    arrays: list                       # the INV arrays (InvArray), one per diagonal block
    blocks: list                       # the diagonal blocks (slices) the arrays hold
    mvm: Optional[AnalogMVM] = None    # this system's MVM arrays
    shift_attempts: int = 1
    block_mu: Optional[list] = None    # each block's shift (units of H_mvm)
    mvm_matrix: Optional[np.ndarray] = None    # extracted MVM response (H_mvm as the sliced arrays compute it)
    extraction: dict = field(default_factory=dict)
    kappa: Optional[float] = None              # cond(H0_eff^-1 H_mvm), computed once
    rho: Optional[float] = None                # rho(I - H_mvm H0_eff^-1), computed once

    def hardware(self) -> list:
        return self.arrays + ([self.mvm] if self.mvm is not None else [])

    def counts(self) -> OperationCounts:
        total = OperationCounts()
        for hw in self.hardware():
            total = total + hw.counts
        return total


class HPInvSolver:
    """HP-INV on one INV array (n x n) and a bit-sliced MVM; arrays stay programmed across solves of one H.

    ``HPInvSolver(circuit, HPInvConfig(refinement="pcg", shift="auto"), mvm_config=None)``: every option is a field
    of ``HPInvConfig`` (amc/methods/config.py), MVM options under its ``mvm`` section; ``mvm_config`` is a different
    circuit for the MVM arrays (default: the INV's). See the module docstring.
    """

    def __init__(self, config: Union[CircuitConfig, str, None] = None, method: Optional[HPInvConfig] = None,
                 mvm_config: Union[CircuitConfig, str, None] = None):
        config = circuit_config(config)
        method = HPInvConfig() if method is None else method
        if not isinstance(method, HPInvConfig):
            raise ConfigError(f"HPInvSolver takes an HPInvConfig, got {type(method).__name__}")
        self.method = method                 # validated when it was made (amc/methods/config.py)
        self.array_size = method.array_size
        self.equilibrate = bool(config.io.equilibrate if method.equilibrate is None else method.equilibrate)
        # The method equilibrates (or deliberately does not); the INV must not rescale the shifted matrix again.
        if config.io.equilibrate:
            config = config.replace(**{"io.equilibrate": False})
        self.config = config
        mvm_config = config if mvm_config is None else circuit_config(mvm_config)
        mvm_config = mvm_config.replace(**{"io.adc_bits": method.mvm.adc_bits, "io.dac_bits": method.mvm.dac_bits})
        self.mvm_config = mvm_config
        # the circuit decides what the method can model (not re-validation of the method: it needs the circuit)
        if config.device.drift_nu > 0 and method.operators != "extracted":
            raise ConfigError("conductance drift (device.drift_nu) is modelled on the measured-response path: use "
                              "operators 'extracted'")
        if mvm_config.device.drift_nu > 0:
            raise ConfigError("the MVM arrays do not model conductance drift; set device.drift_nu on the INV only "
                              "(mvm_config without drift)")
        if method.operators == "extracted" and mvm_config.device.is_stochastic_per_read:
            raise ConfigError("operators 'extracted' measures the MVM once, but the MVM device has read noise (a "
                              "different answer every read); use operators 'per-solve'")
        if method.operators == "extracted" and method.mvm.response == "closed-form":
            w, io = mvm_config.wires, mvm_config.io
            if w.enabled or io.adc_bits is not None or io.dac_bits is not None:
                raise ConfigError("mvm.response 'closed-form' holds only for ideal MVM converters and no wire "
                                  "resistance; use mvm.response 'circuit'")
        self._mvm_options = dict(method.mvm.options(), array_size=method.mvm.array_size or self.array_size)
        self.mvm = self._new_mvm()          # checks the MVM options against the circuit; each system gets its own
        self.cache = ProgrammedCache(method.cache_size)   # handles (and refused programmings) by H
        self._building: list = []
        self._serial = 0
        self.extractions = 0

    def _new_mvm(self) -> AnalogMVM:
        return AnalogMVM(self.mvm_config, **self._mvm_options)

    def _new_array(self, name: str) -> InvArray:
        """One physical INV array with its own device draws (its own random stream)."""
        self._serial += 1
        rng = np.random.default_rng([self.config.device.seed + 1, self._serial])
        return InvArray(self.config, rng=rng, name=name)

    @property
    def per_solve_noise(self) -> bool:
        return self.config.device.is_stochastic_per_read or self.mvm_config.device.is_stochastic_per_read

    @property
    def deterministic(self) -> bool:
        """Repeated solves of one H give the same x: no read noise and no drift on any array."""
        return not self.per_solve_noise and self.config.device.drift_nu == 0 and self.mvm_config.device.drift_nu == 0

    @property
    def linear(self) -> bool:
        """True when x depends linearly on g (then K-FAC may extract the response with identity right-hand sides).

        Richardson with a fixed number of passes is linear in g; PCG is not (its step lengths depend on g), and
        neither is any method that stops at a tolerance.
        """
        return self.method.refinement == "richardson" and self.method.tol is None and self.deterministic

    def __repr__(self) -> str:
        return (f"HPInvSolver(refinement={self.method.refinement}, iterations={self.method.iterations}, tol={self.method.tol}, "
                f"shift={self.method.shift}, equilibrate={self.equilibrate}, operators={self.method.operators}, "
                f"slices={self.mvm.slices}, INV: {self.config.describe()}; MVM ADC/DAC bits "
                f"{self.mvm_config.io.adc_bits}/{self.mvm_config.io.dac_bits}, gain calibration "
                f"{self.mvm.gain_calibration})")

    # ---- the system on the hardware ---------------------------------------------------------------------------
    def _effective(self, array: InvArray) -> np.ndarray:
        return array.mapped.effective_conductance(self.config.opamp.gain) / array.mapped.g0

    def program(self, h: np.ndarray) -> Programmed:
        """H on its own INV and MVM arrays (the cached handle when this H is programmed already); a programming the
        controller refused is remembered, so the same H is not written again until it changes. A failure carries
        what the arrays did until then (``exc.operations``)."""
        return self._program(validate_matrix(h))[0]

    def _program(self, h: np.ndarray) -> tuple[Programmed, bool]:
        found = self.cache.find(h)
        if isinstance(found, Refused):
            raise found.error()
        if found is not None:
            return found, False
        self._building = []
        try:
            self._check_system(h)
            handle = timed_programming(self, h, lambda: (lambda system: (system, system.hardware))(
                self._ready(self._new_system(h))))
        except AmcError as exc:
            exc.operations = sum((a.counts for a in self._building), OperationCounts())
            if isinstance(exc, (UnstableCircuitError, MappingError, ConvergenceError)):
                self.cache.add(h, Refused(exc))
            raise
        self.cache.add(h, handle)
        return handle, True

    def _ready(self, system: _System) -> _System:
        """Make a programmed system ready to solve, in the order a controller would: measure the MVM (extracted
        operators), check the INV's convergence (ConvergenceError at iteration 0: the programming is refused), then
        write the MVM arrays (per-solve operators)."""
        if self.method.operators == "extracted" and system.mvm_matrix is None:
            self._extract(system)
        if self.method.refinement == "richardson" and system.rho is None:
            system.rho = refinement_radius(system.h_mvm, system.h0_eff)
        if self.method.refinement == "pcg" and system.kappa is None:
            system.kappa = preconditioned_condition(system.h_mvm, system.h0_eff)
        rho = system.rho
        if self.method.check_convergence and self.method.refinement == "richardson" and not rho < 1.0:
            raise ConvergenceError(
                f"HP-INV cannot converge (iteration 0, before refinement): rho(I - H H0^-1) = {rho:.3g} >= 1 for the "
                f"matrix the INV array holds ({self.config.device.levels} levels, A0 {self.config.opamp.gain:.3g}, "
                f"shift {system.mu:.3g}); the low-precision inverse is too far from H. Use more device levels, damp H, "
                "refinement 'pcg' with shift 'auto', or BlockAMC with smaller blocks", iteration=0, rho=rho)
        if self.method.check_convergence and self.method.refinement == "pcg" and not system.lam_min_h0 > 0:
            raise ConvergenceError(
                f"PCG cannot run (iteration 0): the INV holds an indefinite matrix (lambda_min of its symmetric part "
                f"{system.lam_min_h0:.3g}, shift {system.mu:.3g}); use shift 'auto'", iteration=0)
        if self.method.operators == "per-solve":
            system.mvm.program(system.h_mvm)
        return system

    def _check_system(self, h: np.ndarray) -> None:
        n = h.shape[0]
        check_invertible(h)
        if self.array_size is not None and n > self.array_size and self.method.refinement != "pcg":
            raise InputError(f"HP-INV with refinement {self.method.refinement!r} runs on one {n}x{n} INV array but "
                             f"array_size is {self.array_size}; use refinement 'pcg' (block-Jacobi preconditioner, "
                             "SPD H) or method 'blockamc' for systems larger than one array")
        if self.method.refinement == "pcg" and not np.allclose(h, h.T, rtol=0, atol=1e-10 * np.abs(h).max()):
            raise InputError("refinement 'pcg' needs a symmetric (positive-definite) H; use refinement 'richardson'")

    def _new_system(self, h: np.ndarray) -> _System:
        """Equilibrate, choose the shift, program this system's own INV and MVM arrays."""
        n = h.shape[0]
        d = jacobi_scaling(h) if self.equilibrate else None
        h_mvm = h * d[:, None] * d[None, :] if d is not None else h
        blocks = self.block_slices(n) or [slice(0, n)]
        h_inv, h0 = np.zeros((n, n)), np.zeros((n, n))
        arrays, mus, lams, attempts = [], [], [], 1
        if self.method.preconditioner == "identity":       # the control: no analog INV at all
            h_inv, h0 = h_mvm.copy(), np.eye(n)
            lams, mus = [1.0], [0.0]
        else:
            for index, s in enumerate(blocks):
                array = self._new_array(f"inv block {index}" if len(blocks) > 1 else "inv")
                self._building.append(array)
                mu_b, h_inv_b, h0_b, lam_b, att_b = self._program_block(array, h_mvm[s, s])
                h_inv[s, s], h0[s, s] = h_inv_b, h0_b
                arrays.append(array)
                mus.append(mu_b)
                lams.append(lam_b)
                attempts = max(attempts, att_b)
        mvm = self._new_mvm()
        self._building.append(mvm)
        return _System(h_mvm, d, float(max(mus)), h_inv, h0, float(min(lams)), arrays, blocks,
                       mvm=mvm, shift_attempts=attempts, block_mu=mus)

    def block_slices(self, n: int) -> Optional[list]:
        """The block-Jacobi diagonal blocks for an n x n system (None: it fits one INV array)."""
        if self.array_size is None or n <= self.array_size:
            return None
        k = -(-n // self.array_size)
        base, extra = divmod(n, k)
        edges = np.concatenate([[0], np.cumsum([base + (1 if i < extra else 0) for i in range(k)])]).astype(int)
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    def _program_block(self, array: InvArray, h_blk: np.ndarray):
        """Choose the shift and program one INV array with h_blk (+ mu I); every attempt is a real programming
        (program-and-verify). Returns (mu in units of h_blk, the matrix asked for, H0_eff, lambda_min of its
        symmetric part, attempts)."""
        n = h_blk.shape[0]
        scale = float(np.max(np.abs(h_blk)))
        auto = self.method.shift == "auto"
        if auto:
            mu = quantisation_shift(h_blk, self.config.device.levels) / scale
        else:
            mu = float(self.method.shift or 0.0)

        def write(mu: float):
            h_inv = h_blk + mu * scale * np.eye(n) if mu > 0 else h_blk
            array.program(h_inv)
            h0 = self._effective(array)
            lam = float(np.linalg.eigvalsh((h0 + h0.T) / 2).min())
            array.counts.add(digital_flops=4 * n ** 3)     # the controller's check of what it programmed
            ok = lam >= self.method.shift_margin * (1.0 + mu) * scale
            if self.method.refinement == "richardson":   # Richardson also needs rho(I - H H0^-1) < 1
                ok = ok and refinement_radius(h_blk, h0) <= 1.0 - self.method.shift_margin
            return (h_inv, h0, lam), ok
        (h_inv, h0, lam), mu, attempts, _ = write_until_accepted(write, mu, retry=auto)
        return mu * scale, h_inv, h0, lam, attempts

    def _extract(self, system: _System) -> None:
        """Measure this system's MVM response (ngspice, re-stamped or batch per array, or the closed form) once.

        Measuring is simulation bookkeeping, not hardware work: only its ngspice runs are counted."""
        before = system.mvm.counts.copy()
        if self.method.mvm.response == "circuit":
            system.mvm_matrix = system.mvm.response(system.h_mvm)
            mvm_sat, mvm_power = False, 0.0
        else:
            system.mvm_matrix = self.closed_form_mvm(system.h_mvm, system.mvm)
            mvm_sat, mvm_power = False, 0.0
        programmed = system.mvm.counts - before
        runs = programmed.ngspice_runs
        system.mvm.counts = before + OperationCounts(programmings=programmed.programmings,
                                                     cells_programmed=programmed.cells_programmed, ngspice_runs=runs,
                                                     programmings_verified=programmed.programmings_verified,
                                                     programmings_restamped=programmed.programmings_restamped)
        system.extraction = dict(mvm_runs=runs, saturated=bool(mvm_sat), mvm_power=mvm_power)
        self.extractions += 1

    def closed_form_mvm(self, h: np.ndarray, mvm: Optional[AnalogMVM] = None) -> np.ndarray:
        """The sliced MVM's analytic response for H (amc/methods/shared.py)."""
        return closed_form_mvm(mvm if mvm is not None else self._new_mvm(), h, self.mvm_config.opamp.gain)

    def radius(self, h: np.ndarray) -> float:
        """rho(I - H H0_eff^-1) of the INV array as programmed for H (programs it if needed), in the method's
        coordinates (equilibrated, shifted)."""
        h = validate_matrix(h)
        found = self.cache.find(h)
        # a system the convergence check refuses is still programmed to be measured here (a diagnostic, not held)
        system = found.state if isinstance(found, Programmed) else self._new_system(h)
        return refinement_radius(system.h_mvm, system.h0_eff)

    # ---- solve -------------------------------------------------------------------------------------------------
    def solve(self, h: np.ndarray, g: np.ndarray, seconds_since_programming: float = 0.0) -> Solution:
        """Program H (unless held) and refine; the first solve after programming carries the programming's counts."""
        handle, fresh = self._program(validate_matrix(h))
        return self.solve_programmed(handle, g, seconds_since_programming, first=fresh)

    def solve_programmed(self, handle: Programmed, g: np.ndarray, seconds_since_programming: float = 0.0,
                         first: bool = False) -> Solution:
        """Refine on a programmed system; a failure carries what its arrays did in this solve (``exc.operations``)."""
        system = handle.state
        existing = OperationCounts() if first else system.counts()
        try:
            return self._solve(handle.h, system, g, seconds_since_programming, existing, first)
        except AmcError as exc:
            exc.operations = system.counts() - existing
            raise

    def _solve(self, h: np.ndarray, system: _System, g: np.ndarray, seconds_since_programming: float,
               before: OperationCounts, first: bool) -> Solution:
        start = time.perf_counter()
        g = validate_rhs(g, h.shape[0])
        n = h.shape[0]
        cols = g.reshape(n, -1)
        k = cols.shape[1]
        x_star = np.linalg.solve(h, cols)            # diagnostics only: never used by the iteration
        extracted_now = first and self.method.operators == "extracted"
        rho, kappa = system.rho, system.kappa
        mvm_arrays = len(system.mvm.programmed_arrays) if system.mvm_matrix is not None or \
            self.method.operators == "per-solve" else 0

        d = system.d
        b = cols * d[:, None] if d is not None else cols.copy()
        gnorm = max(float(np.linalg.norm(cols)), 1e-300)
        stats = dict(saturated=np.zeros(k, dtype=bool), inv_power=0.0,
                     mvm_power=system.extraction.get("mvm_power", 0.0), first_inv=None, flops=0.0)
        if extracted_now and system.extraction.get("saturated"):
            stats["saturated"][:] = True

        def inv(r: np.ndarray) -> np.ndarray:
            if self.method.preconditioner == "identity":
                out = r.copy()
            else:
                out = np.zeros_like(r)
                power = 0.0
                for s, array in zip(system.blocks, system.arrays):
                    rb = r[s]
                    scale = np.max(np.abs(rb), axis=0) if self.method.scale_residual else np.ones(r.shape[1])
                    scale = np.where(scale > 0, scale, 1.0)
                    if self.method.operators == "extracted":
                        sol = array.read(rb / scale, seconds_since_programming)
                    else:
                        sol = array.solve(rb / scale)
                    stats["saturated"] |= np.asarray(sol.saturated).reshape(s.stop - s.start, -1).any(axis=0)
                    if sol.static_power_w is not None:
                        power += float(np.max(sol.static_power_w))
                    out[s] = np.asarray(sol.x).reshape(s.stop - s.start, -1) * scale
                    stats["flops"] += 2 * rb.size       # residual scaling in and out
                stats["inv_power"] = max(stats["inv_power"], power)
            if stats["first_inv"] is None:
                stats["first_inv"] = out.copy()
            return out

        def mvm(v: np.ndarray) -> np.ndarray:
            if self.method.operators == "extracted":
                reads = mvm_arrays * v.shape[1]
                rows = sum(a.g_pos.shape[0] for a in system.mvm.programmed_arrays) * v.shape[1]
                inputs = sum(a.g_pos.shape[1] for a in system.mvm.programmed_arrays) * v.shape[1]
                system.mvm.counts.add(mvm_reads=reads, dac_conversions=inputs, adc_conversions=rows)
                stats["flops"] += len(system.mvm.programmed_arrays) * n * v.shape[1]   # shift-and-add of partials
                return system.mvm_matrix @ v
            res = system.mvm.multiply(system.h_mvm, v)
            if res.saturated:
                stats["saturated"][:] = True
            stats["mvm_power"] = max(stats["mvm_power"], res.static_power_w)
            stats["flops"] += res.operations * n
            return np.asarray(res.y).reshape(n, -1)

        def unscale(y: np.ndarray) -> np.ndarray:      # equilibrated solution -> x
            return y * d[:, None] if d is not None else y

        def residual_norm(r: np.ndarray) -> float:      # equilibrated residual -> ||g - H x|| / ||g||
            return float(np.linalg.norm(r / d[:, None] if d is not None else r)) / gnorm

        history = [dict(iteration=0, residual=1.0 if gnorm > 1e-300 else 0.0, true_residual=1.0, relative_error=1.0,
                        bits=0.0, bits_gained=0.0)]
        iterate = self._pcg if self.method.refinement == "pcg" else self._richardson
        y = iterate(b, inv, mvm, unscale, residual_norm, cols, h, x_star, history, rho)
        x = unscale(y)
        iterations = history[-1]["iteration"]
        per_iteration = (10 if self.method.refinement == "pcg" else 4) * n * k   # dot products, axpys, norms
        ops = system.counts() - before
        ops.add(digital_flops=stats["flops"] + per_iteration * iterations + (4 * n * k if d is not None else 0))
        err, bits = equivalent_bits(x, x_star)
        first_err = equivalent_bits(unscale(stats["first_inv"]), x_star)[0] if stats["first_inv"] is not None \
            else None
        analog_err = first_err if self.method.preconditioner == "analog" else None   # the control has no analog INV
        x_out = x[:, 0] if g.ndim == 1 else x
        total, per_column = residuals(h, x, cols)
        return Solution(
            x=x_out, method="hp-inv", backend="circuit", relative_residual=total,
            relative_residuals=per_column[0] if g.ndim == 1 else per_column,
            saturated=column_flags(stats["saturated"], x_out.shape),
            static_power_w=stats["inv_power"] + stats["mvm_power"], operations=ops, analog_error=analog_err,
            lambda_min=min((a.lambda_min for a in system.arrays), default=None),
            history=history, relative_error=err, equivalent_bits=bits, wall_time_s=time.perf_counter() - start,
            details=dict(refinement=self.method.refinement, preconditioner=self.method.preconditioner, rho=rho, kappa=kappa,
                         first_application_error=first_err,
                         shift=system.mu, shift_attempts=system.shift_attempts, lambda_min_h0=system.lam_min_h0,
                         equilibrated=d is not None, operators=self.method.operators,
                         extracted_now=extracted_now, slices=system.mvm.slices,
                         mvm_adc_bits=self.mvm_config.io.adc_bits, mvm_dac_bits=self.mvm_config.io.dac_bits,
                         gain_calibration=system.mvm.gain_calibration, inv_static_power_w=stats["inv_power"],
                         mvm_static_power_w=stats["mvm_power"], mvm_arrays=len(system.mvm.programmed_arrays),
                         columns=k, inv_blocks=len(system.arrays),
                         block_sizes=[s.stop - s.start for s in system.blocks],
                         block_shifts=system.block_mu))

    def _record(self, history, it, measured, y, unscale, cols, h, x_star):
        gnorm = max(float(np.linalg.norm(cols)), 1e-300)
        x = unscale(y)
        true_residual = float(np.linalg.norm(cols - h @ x)) / gnorm
        err, bits = equivalent_bits(x, x_star)
        history.append(dict(iteration=it, residual=measured, true_residual=true_residual, relative_error=err,
                            bits=bits, bits_gained=bits - history[-1]["bits"]))

    def _richardson(self, b, inv, mvm, unscale, residual_norm, cols, h, x_star, history, rho):
        y = np.zeros_like(b)
        r = b.copy()
        best = 1.0
        for it in range(1, self.method.iterations + 1):
            y = y + inv(r)
            r = b - mvm(y)
            measured = residual_norm(r)
            self._record(history, it, measured, y, unscale, cols, h, x_star)
            if not np.isfinite(measured):
                raise ConvergenceError(f"HP-INV diverged at iteration {it}: the residual is not finite",
                                       iteration=it, history=history, rho=rho)
            if measured > self.method.divergence_factor * max(history[0]["residual"], 1e-300) or self._growing(history):
                raise ConvergenceError(
                    f"HP-INV diverged at iteration {it}: the measured residual grew to {measured:.3g} "
                    f"(from {best:.3g} at best; rho(I - H H0^-1) = {rho:.3g})", iteration=it, history=history, rho=rho)
            best = min(best, measured)
            if (self.method.tol is not None and measured <= self.method.tol) or measured == 0.0:
                break
        return y

    def _pcg(self, b, inv, mvm, unscale, residual_norm, cols, h, x_star, history, rho):
        """Flexible (Polak-Ribiere) PCG, all right-hand-side columns at once with per-column step lengths."""
        y = np.zeros_like(b)
        r = b.copy()
        z = inv(r)
        p = z.copy()
        rz = np.sum(r * z, axis=0)
        for it in range(1, self.method.iterations + 1):
            q = mvm(p)
            pq = np.sum(p * q, axis=0)
            active = (rz != 0) & (np.linalg.norm(r, axis=0) > 0)
            if np.any(active & ~(pq > 0)) or np.any(active & ~(rz > 0)):
                raise ConvergenceError(
                    f"PCG broke down at iteration {it}: p.Hp or r.INV(r) is not positive (H or the INV's inverse is "
                    "not positive definite)", iteration=it, history=history)
            alpha = np.where(active, rz / np.where(active, pq, 1.0), 0.0)
            y = y + alpha * p
            r_new = r - alpha * q
            measured = residual_norm(r_new)
            self._record(history, it, measured, y, unscale, cols, h, x_star)
            if not np.isfinite(measured) or measured > 1e3 * max(history[0]["residual"], 1e-300):
                raise ConvergenceError(f"PCG diverged at iteration {it}: the residual is {measured:.3g}",
                                       iteration=it, history=history)
            if it == self.method.iterations or (self.method.tol is not None and measured <= self.method.tol) or measured == 0.0:
                break
            z_new = inv(r_new)
            beta = np.where(active, np.sum(r_new * (z_new - z), axis=0) / np.where(active, rz, 1.0), 0.0)
            p = z_new + beta * p
            r, z = r_new, z_new
            rz = np.sum(r * z, axis=0)
        return y

    # ---- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def _growing(history: list, run: int = 3, factor: float = 8.0) -> bool:
        """True when the residual grew in each of the last ``run`` iterations by ``factor`` in total."""
        if len(history) < run + 1:
            return False
        tail = [h["residual"] for h in history[-(run + 1):]]
        return all(b > a for a, b in zip(tail, tail[1:])) and tail[-1] > factor * tail[0]
