"""``direct``: one INV settle per right-hand side on the programmed factor array (the published one-step method).

``program(H)`` gives a handle (amc/methods/programmed.py) owning H's own InvArray; handles are kept in one cache
(least recently used dropped beyond ``cache_size``); an array the controller finds unusable after programming is
remembered there, so the same H is not written again until it changes.
"""
from __future__ import annotations

import time

import numpy as np

from amc.config import CircuitConfig
from amc.errors import ConfigError, InputError, UnstableCircuitError
from amc.hw.counters import OperationCounts
from amc.hw.inv_array import InvArray
from amc.hw.mapping import validate_matrix, validate_rhs
from amc.methods.config import DirectConfig
from amc.methods.programmed import Programmed, ProgrammedCache, Refused, timed_programming
from amc.methods.shared import quantisation_shift
from amc.solution import Solution, equivalent_bits


class DirectSolver:
    """One INV array per distinct H (one settle per right-hand side)."""

    def __init__(self, circuit: CircuitConfig, method: DirectConfig):
        if method.equilibrate is not None:
            circuit = circuit.replace(**{"io.equilibrate": method.equilibrate})
        if circuit.device.drift_nu > 0 and method.operators != "extracted":
            raise ConfigError("conductance drift (device.drift_nu) is modelled on the measured-response path: use "
                              "operators 'extracted'")
        self.circuit = circuit
        self.method = method
        self.cache = ProgrammedCache(method.cache_size)
        self._serial = 0

    @property
    def deterministic(self) -> bool:
        d = self.circuit.device
        return not d.is_stochastic_per_read and d.drift_nu == 0

    @property
    def linear(self) -> bool:          # one settle per column: linear in g up to converter rounding
        return self.deterministic

    def program(self, h: np.ndarray) -> Programmed:
        """H on its own INV array (the cached handle when this H is programmed already)."""
        return self._program(validate_matrix(h))[0]

    def _program(self, h: np.ndarray) -> tuple[Programmed, bool]:
        n = h.shape[0]
        if self.method.array_size is not None and n > self.method.array_size:
            raise InputError(f"method 'direct' needs one {n}x{n} array but array_size is {self.method.array_size}; "
                             "use method 'blockamc' or 'hpinv-pcg'")
        found = self.cache.find(h)
        if isinstance(found, Refused):     # the controller already found this programming unusable: no new write
            raise found.error()
        if found is not None:
            return found, False
        self._serial += 1
        array = InvArray(self.circuit, rng=np.random.default_rng([self.circuit.device.seed + 1, self._serial]))

        def program():
            self._write(array, h)
            return array, lambda: [array]
        try:
            handle = timed_programming(self, h, program)
        except Exception as exc:
            self.cache.add(h, Refused(exc))
            exc.operations = array.counts.copy()      # the writes happened: their cost travels with the refusal
            raise
        self.cache.add(h, handle)
        return handle, True

    def _write(self, array: InvArray, h: np.ndarray) -> None:
        """Program H + mu diag(H) (mu = method.shift). After equilibration the shift is mu I on the unit diagonal,
        which sits on the top conductance level and so survives quantisation; for K-FAC it acts as extra damping
        (the array inverts the shifted matrix). ``shift: auto`` is program-and-verify (amc/hw/controller.py's
        ``write_until_accepted``): the controller knows the levels it wrote, and re-programs with mu grown (0.05,
        then x1.5, at most 12 writes, every one counted) until the loop settles and the symmetric part of what the
        array inverts has lambda_min >= shift_margin (1 + mu); it starts from the quantisation error's norm, which
        the controller computes from the levels it writes."""
        shift, margin = self.method.shift, self.method.shift_margin
        if shift == "verify":          # the controller a chip could have: decisions from reads only
            from amc.hw.controller import program_and_verify
            array.controller_decision = program_and_verify(array, h, margin)
            return
        from amc.hw.controller import write_until_accepted
        diag = np.diag(np.abs(np.diag(h)))
        if shift == "auto":     # start at ||Q(D H D) - D H D||_2: the controller knows the levels it writes
            if self.circuit.io.equilibrate:
                d = 1.0 / np.sqrt(np.abs(np.diag(h)))
                mu = quantisation_shift(h * d[:, None] * d[None, :], self.circuit.device.levels)
            else:       # mu diag(H): in units of the diagonal
                mu = quantisation_shift(h, self.circuit.device.levels) / float(np.max(np.abs(np.diag(h))))
        else:
            mu = float(shift or 0.0)

        def write(mu: float):
            array.program(h + mu * diag if mu else h)
            array.shift, array.shift_diag = mu, mu * np.abs(np.diag(h))
            if shift != "auto":
                return None, True
            n = h.shape[0]
            m = array.mapped.effective_conductance(self.circuit.opamp.gain) / array.mapped.g0
            lam = float(np.linalg.eigvalsh((m + m.T) / 2).min())
            array.counts.add(digital_flops=4 * n ** 3)      # the controller's check of what it wrote
            # in units of the largest entry the array holds, as HP-INV's check
            return None, lam >= margin * float(np.max(np.abs(array.mapped.h)))
        _, mu, writes, accepted = write_until_accepted(write, mu, retry=shift == "auto")
        if not accepted:
            raise UnstableCircuitError(f"no diagonal shift up to {max(1.5 * mu, 0.05):.3g} made the programmed "
                                       f"array settle stably ({writes} programmings)")

    def solve(self, h: np.ndarray, g: np.ndarray, seconds_since_programming: float = 0.0,
              transient: bool = False) -> Solution:
        """Program H (unless held) and solve; the first solve after programming carries the programming's counts."""
        handle, fresh = self._program(h)
        return self.solve_programmed(handle, g, seconds_since_programming, transient=transient, first=fresh)

    def solve_programmed(self, handle: Programmed, g: np.ndarray, seconds_since_programming: float = 0.0,
                         transient: bool = False, first: bool = False) -> Solution:
        start = time.perf_counter()
        h, array = handle.h, handle.state
        n = h.shape[0]
        before = OperationCounts() if first else array.counts.copy()
        before_controller = OperationCounts() if first else array.controller_counts.copy()
        compensate = self.method.shift_compensation == "mvm" and array.shift > 0
        x_one_settle = None
        if compensate:
            if transient:
                raise ConfigError("shift 'verify' compensates an applied shift through reads of the measured "
                                  "response; a transient solve of a shifted array is not supported")
            from amc.hw.controller import compensated_read
            sol, x_one_settle = compensated_read(array, validate_rhs(g, n), seconds_since_programming)
        elif transient:
            sol = array.solve(g, transient=True)     # ngspice .tran: settling time and energy of every settle
        elif self.method.operators == "extracted":
            sol = array.read(g, seconds_since_programming)
        else:
            sol = array.solve(g)
        sol.operations = array.counts - before
        # Diagnostics against exact arithmetic (never used for a decision): the deliberate bias of the shift
        # (what the shifted, compensated recipe gives with exact cells) apart from the device error around it.
        x_star = np.linalg.solve(h, g)
        sol.relative_error, sol.equivalent_bits = equivalent_bits(sol.x, x_star)
        one_settle = sol.x if x_one_settle is None else x_one_settle
        sol.analog_error = float(np.linalg.norm(one_settle - x_star) / np.linalg.norm(x_star))
        x_bias = x_star
        if array.shift:
            from amc.hw.controller import exact_bias_solution
            x_bias = exact_bias_solution(h, g, array.shift_diag, compensated=compensate)
        scale = float(np.linalg.norm(x_star))
        sol.bias_error = float(np.linalg.norm(x_bias - x_star) / scale)
        sol.device_error = float(np.linalg.norm(sol.x - x_bias) / scale)
        sol.step_cosine = float(np.vdot(sol.x, x_star) / max(np.linalg.norm(sol.x) * scale, 1e-300))
        sol.details.update(shift=float(array.shift), shift_compensated=bool(compensate),
                           controller_operations=(array.controller_counts - before_controller).to_dict())
        decision = getattr(array, "controller_decision", None)
        if first and array.mapped.clipping:
            sol.details["clipping"] = dict(array.mapped.clipping)
        if first and decision is not None:
            sol.details.update(controller_writes=decision["writes"], controller_history=decision["history"])
        sol.wall_time_s = time.perf_counter() - start
        return sol
