"""BlockAMC (Pan et al., DATE 2024): solve an n x n system on arrays of at most ``array_size`` rows/columns.

H is split 2 x 2, H = [A B; C D] (the split point a multiple of array_size, near n/2), and solved with the
Schur complement S = D - C A^-1 B, recursively until every diagonal block fits one array:

    setup (once per H):  Y = A^-1 B        INV solves on A's array(s), B's columns as right-hand sides
                         S = D - C Y       MVM of C (tiled arrays) column by column; subtraction digital
    solve:               y1 = A^-1 g1      INV
                         x2 = S^-1 (g2 - C y1)   MVM (C) + INV (S, recursively)
                         x1 = A^-1 (g1 - B x2)   MVM (B) + INV (A again)

INV circuits are ``InvArray``s (one per leaf block, each programmed once, with its own programming-error
draw); the couplings B and C are ``AnalogMVM`` arrays tiled to array_size (``mvm_slices`` > 1 bit-slices them too).

Training options (issue 19; fields of ``BlockAMCConfig``): ``operators: extracted`` reads every INV leaf and
coupling array from its measured linear response (ngspice once per programming, as ``direct`` and ``hp-inv`` do),
every read still counted; ``shift: verify`` programs every INV leaf with the read-verified controller
(amc/hw/controller.py: a diagonal shift only where counted verify reads say the leaf needs one); ``equilibrate:
true`` Jacobi-scales H (D H D, unit diagonal) before partitioning, and each leaf array equilibrates its own block
(the Schur complements' diagonals are not unit). ``program(H)`` gives the handle of H's block tree (its own
arrays); the solver keeps ``cache_size`` of them, least recently used dropped.
Every block is checked before any simulation: the diagonal blocks and the exact Schur complements must be
invertible and have eigenvalues with positive real parts (the INV loop's stability condition); the Schur
complement computed by the circuit is checked again before it is programmed. A failure raises ``BlockError``
naming the block, e.g. "block [64:128, 64:128] at depth 1".
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from amc.config import CircuitConfig
from amc.errors import AmcError, ConfigError
from amc.hw.mapping import MAX_CONDITION, validate_matrix, validate_rhs
from amc.methods.config import PRESETS, BlockAMCConfig
from amc.methods.errors import BlockError
from amc.methods.programmed import Programmed, ProgrammedCache, Refused
from amc.methods.shared import circuit_config
from amc.hw.counters import OperationCounts
from amc.hw.inv_array import InvArray, jacobi_scaling
from amc.hw.mvm import AnalogMVM
from amc.solution import Solution, equivalent_bits, residuals


def block_name(lo: int, hi: int, depth: int) -> str:
    return f"block [{lo}:{hi}, {lo}:{hi}] at depth {depth}"


def split_point(n: int, array_size: int) -> int:
    """First-block size: a multiple of array_size close to n/2 (so leaves fill whole arrays)."""
    arrays = -(-n // array_size)
    return min(array_size * (-(-arrays // 2)), n - 1)


def check_block(m: np.ndarray, name: str, what: str = "") -> None:
    """Raise BlockError unless m is invertible and its eigenvalues have positive real parts."""
    label = f"{name}{(' (' + what + ')') if what else ''}"
    if not np.isfinite(m).all():
        raise BlockError(f"{label} contains non-finite values", block=name)
    sv = np.linalg.svd(m, compute_uv=False)
    if sv[0] == 0 or sv[-1] <= sv[0] / MAX_CONDITION:
        ratio = 0.0 if sv[0] == 0 else sv[-1] / sv[0]
        raise BlockError(f"{label} is singular (sigma_min/sigma_max = {ratio:.3g}): BlockAMC cannot invert it; "
                         "H itself is singular or this partition has a singular pivot block", block=name)
    eig = np.linalg.eigvals(m)
    if eig.real.min() <= 0:
        raise BlockError(f"{label} is unstable on an INV array: an eigenvalue has non-positive real part "
                         f"(min Re = {eig.real.min():.4g}); the closed loop would not settle. Solve an SPD "
                         "(or positive-real) system or change the partition", block=name)


def plan_check(h: np.ndarray, array_size: int, lo: int = 0, depth: int = 0) -> int:
    """Digital check of every diagonal block and exact Schur complement of the recursion; returns the depth."""
    n = h.shape[0]
    name = block_name(lo, lo + n, depth)
    if n <= array_size:
        check_block(h, name)
        return depth
    n1 = split_point(n, array_size)
    a, b, c, d = h[:n1, :n1], h[:n1, n1:], h[n1:, :n1], h[n1:, n1:]
    depth_a = plan_check(a, array_size, lo, depth + 1)
    s = d - c @ np.linalg.solve(a, b)
    check_block(s, block_name(lo + n1, lo + n, depth + 1), "Schur complement S = D - C A^-1 B")
    depth_s = plan_check(s, array_size, lo + n1, depth + 1)
    return max(depth_a, depth_s)


@dataclass
class _Node:
    name: str
    n: int
    depth: int
    h: Optional[np.ndarray] = None            # leaf: the block on the INV array
    solver: Optional[InvArray] = None        # leaf: its own programmed INV array
    n1: int = 0
    a: Optional["_Node"] = None
    s: Optional["_Node"] = None
    b: Optional[np.ndarray] = None
    c: Optional[np.ndarray] = None
    b_mvm: Optional[AnalogMVM] = None
    c_mvm: Optional[AnalogMVM] = None
    b_response: Optional[np.ndarray] = None   # extracted operators: the coupling arrays' measured response
    c_response: Optional[np.ndarray] = None


class _DigitalWork:
    """The digital work around one tree's arrays (Schur subtractions, scaling), counted like an array's."""

    def __init__(self):
        self.counts = OperationCounts()


@dataclass
class _Tree:
    """One H's block tree on the hardware: the recursion, every array it programmed (and the digital work beside
    them), their static power, and the Jacobi scaling of H when equilibrated."""

    root: Optional[_Node] = None
    digital: _DigitalWork = field(default_factory=_DigitalWork)
    arrays: list = field(default_factory=list)        # InvArray leaves and AnalogMVM couplings
    power: dict = field(default_factory=dict)
    scaling: Optional[np.ndarray] = None              # equilibrate: the Jacobi d of H (x = D y)

    def hardware(self) -> list:
        return [self.digital] + self.arrays

    def counts(self) -> OperationCounts:
        total = OperationCounts()
        for hw in self.hardware():
            total = total + hw.counts
        return total

    def leaves(self) -> list:
        return [hw for hw in self.arrays if isinstance(hw, InvArray)]

    def controller_counts(self) -> OperationCounts:
        total = OperationCounts()
        for leaf in self.leaves():
            total = total + leaf.controller_counts
        return total


class BlockAMCSolver:
    """BlockAMC on arrays of at most ``array_size``; the programmed block trees are kept per H (``cache_size``).

    ``BlockAMCSolver(circuit, BlockAMCConfig(array_size=16), mvm_config=None)``: the options are the fields of
    ``BlockAMCConfig`` (amc/methods/config.py; default: the ``blockamc`` preset), the coupling arrays' under its
    ``mvm`` section (``CouplingSection``); ``mvm_config`` is another circuit for the coupling arrays.
    """

    def __init__(self, config: Union[CircuitConfig, str, None] = None, method: Optional[BlockAMCConfig] = None,
                 mvm_config: Union[CircuitConfig, str, None] = None):
        config = circuit_config(config)
        if method is None:
            method = PRESETS["blockamc"]
        if not isinstance(method, BlockAMCConfig):
            raise ConfigError(f"BlockAMCSolver takes a BlockAMCConfig, got {type(method).__name__}")
        if method.equilibrate is not None:
            config = config.replace(**{"io.equilibrate": method.equilibrate})
        mvm_config = config if mvm_config is None else circuit_config(mvm_config)
        if config.device.drift_nu > 0 or mvm_config.device.drift_nu > 0:
            raise ConfigError("BlockAMC does not model conductance drift (device.drift_nu); use method direct or "
                              "hp-inv with operators 'extracted'")
        if method.operators == "extracted" and (mvm_config.device.is_stochastic_per_read or mvm_config.io.adc_bits
                                                is not None or mvm_config.io.dac_bits is not None):
            raise ConfigError("operators 'extracted' measures each coupling array's response once: it needs MVM "
                              "arrays without read noise and with ideal converters (mvm_config); use 'per-solve'")
        self.config = config
        self.mvm_config = mvm_config
        self.method = method               # validated when it was made
        self.cache = ProgrammedCache(method.cache_size)
        self._arrays = 0               # arrays made so far: each draws its own device seed
        self._tree: Optional[_Tree] = None      # the tree being built or last solved

    # the method's options, by the names the solver always had
    array_size = property(lambda self: self.method.array_size)
    mvm_slices = property(lambda self: self.method.mvm.slices)
    mvm_target_swing = property(lambda self: self.method.mvm.target_swing)
    gain_calibration = property(lambda self: self.method.mvm.gain_calibration)
    check_blocks = property(lambda self: self.method.check_convergence)
    operators = property(lambda self: self.method.operators)
    shift = property(lambda self: self.method.shift)
    shift_margin = property(lambda self: self.method.shift_margin)
    equilibrate = property(lambda self: bool(self.method.equilibrate))     # the scaling of H before partitioning

    @property
    def deterministic(self) -> bool:
        return not self.per_solve_noise            # drift is refused at construction

    @property
    def linear(self) -> bool:          # a fixed number of settles and reads, no iteration that depends on g
        return self.deterministic

    @property
    def per_solve_noise(self) -> bool:
        return self.config.device.is_stochastic_per_read or self.mvm_config.device.is_stochastic_per_read

    def __repr__(self) -> str:
        return (f"BlockAMCSolver(array_size={self.array_size}, mvm_slices={self.mvm_slices}, "
                f"operators={self.operators}, shift={self.shift}, {self.config.describe()})")

    # ---- setup ---------------------------------------------------------------------------------------------
    def _array_config(self, base: CircuitConfig) -> CircuitConfig:
        """Each physical array draws its own programming error: a distinct device seed per array."""
        self._arrays += 1
        if base.device.program_sigma == 0 and base.device.stuck_rate == 0 and base.device.read_noise_sigma == 0:
            return base
        return base.replace(**{"device.seed": base.device.seed + 1009 * self._arrays})

    def counts(self) -> OperationCounts:
        """Everything done so far to the arrays of the block tree being built or last solved."""
        return OperationCounts() if self._tree is None else self._tree.counts()

    def _mvm(self, tree: _Tree, m: np.ndarray, name: str) -> tuple:
        mvm = AnalogMVM(self._array_config(self.mvm_config), slices=self.mvm_slices, array_size=self.array_size,
                        target_swing=self.mvm_target_swing, gain_calibration=self.gain_calibration)
        tree.arrays.append(mvm)
        try:
            mvm.program(m)
            # Measuring the response is simulator bookkeeping (only its ngspice runs are counted); reads are counted
            # where they happen (_multiply).
            response = mvm.response(m) if self.operators == "extracted" else None
        except AmcError as exc:
            raise BlockError(f"{name}: {exc}", block=name) from None
        return mvm, response

    def _leaf(self, tree: _Tree, h: np.ndarray, name: str, depth: int) -> _Node:
        solver = InvArray(self._array_config(self.config), name=name)
        tree.arrays.append(solver)
        try:
            if self.shift == "verify":     # decisions from counted reads only; the shift stays as extra damping
                from amc.hw.controller import program_and_verify
                solver.controller_decision = program_and_verify(solver, h, self.shift_margin)
            else:
                solver.program(h)
        except AmcError as exc:
            raise BlockError(f"{name}: {exc}", block=name, depth=depth) from None
        return _Node(name=name, n=h.shape[0], depth=depth, h=h, solver=solver)

    def _build(self, tree: _Tree, h: np.ndarray, lo: int, depth: int) -> _Node:
        n = h.shape[0]
        name = block_name(lo, lo + n, depth)
        if n <= self.array_size:
            return self._leaf(tree, h, name, depth)
        n1 = split_point(n, self.array_size)
        a, b, c, d = h[:n1, :n1], h[:n1, n1:], h[n1:, :n1], h[n1:, n1:]
        node = _Node(name=name, n=n, depth=depth, n1=n1, b=b, c=c)
        node.a = self._build(tree, a, lo, depth + 1)
        y = self._solve(tree, node.a, b)                            # A^-1 B: INV with B's columns as RHS
        node.c_mvm, node.c_response = self._mvm(tree, c, f"coupling C of {name}")
        s = d - self._multiply(tree, node.c_mvm, c, node.c_response, y)     # S = D - C (A^-1 B)
        tree.digital.counts.add(digital_flops=s.size)
        s_name = block_name(lo + n1, lo + n, depth + 1)
        check_block(s, s_name, "Schur complement S = D - C A^-1 B as computed by the circuit")
        node.s = self._build(tree, s, lo + n1, depth + 1)
        node.b_mvm, node.b_response = self._mvm(tree, b, f"coupling B of {name}")
        return node

    # ---- operations ----------------------------------------------------------------------------------------
    def _multiply(self, tree: _Tree, mvm: AnalogMVM, m: np.ndarray, response: Optional[np.ndarray],
                  v: np.ndarray) -> np.ndarray:
        if response is not None:       # one read per programmed array and input column, as the per-solve path
            k = 1 if v.ndim == 1 else v.shape[1]
            arrays = mvm.programmed_arrays
            mvm.counts.add(mvm_reads=len(arrays) * k, dac_conversions=sum(a.g_pos.shape[1] for a in arrays) * k,
                           adc_conversions=sum(a.g_pos.shape[0] for a in arrays) * k)
            return response @ v
        result = mvm.multiply(m, v)
        self._saturated = self._saturated or result.saturated
        tree.power[id(mvm)] = max(tree.power.get(id(mvm), 0.0), result.static_power_w)
        return result.y

    def _solve(self, tree: _Tree, node: _Node, g: np.ndarray) -> np.ndarray:
        if node.solver is not None:
            try:
                sol = node.solver.read(g) if self.operators == "extracted" else node.solver.solve(g)
            except AmcError as exc:
                raise BlockError(f"{node.name}: {exc}", block=node.name, depth=node.depth) from None
            self._saturated = self._saturated or bool(np.any(sol.saturated))
            if sol.static_power_w is not None:
                tree.power[id(node.solver)] = max(tree.power.get(id(node.solver), 0.0),
                                                  float(np.max(sol.static_power_w)))
            return sol.x
        g1, g2 = g[:node.n1], g[node.n1:]
        y1 = self._solve(tree, node.a, g1)
        x2 = self._solve(tree, node.s, g2 - self._multiply(tree, node.c_mvm, node.c, node.c_response, y1))
        x1 = self._solve(tree, node.a, g1 - self._multiply(tree, node.b_mvm, node.b, node.b_response, x2))
        tree.digital.counts.add(digital_flops=g.size)     # the two subtractions after the ADCs
        return np.concatenate([x1, x2], axis=0)

    # ---- public ----------------------------------------------------------------------------------------------
    def program(self, h: np.ndarray) -> Programmed:
        """Check the partition, program the arrays and compute the Schur complements: the handle of H's block tree
        (the held one when H is programmed already)."""
        return self._program(validate_matrix(h))[0]

    def prepare(self, h: np.ndarray) -> None:
        """Program H's block tree unless it is held (``program`` without the handle)."""
        self.program(h)

    def _program(self, h: np.ndarray) -> tuple[Programmed, bool]:
        found = self.cache.find(h)
        if isinstance(found, Refused):     # no new write: nothing is done to any array
            self._tree = None
            raise found.error()
        if found is not None:
            return found, False
        start = time.perf_counter()
        self._tree = tree = _Tree()
        try:
            n = h.shape[0]
            hs = h
            if self.equilibrate:       # Jacobi scaling by the periphery: the partition sees D H D (unit diagonal)
                tree.scaling = jacobi_scaling(h)
                hs = h * tree.scaling[:, None] * tree.scaling[None, :]
                tree.digital.counts.add(digital_flops=3 * n * n)
            if self.check_blocks:
                plan_check(hs, self.array_size)
            self._saturated = False
            tree.root = self._build(tree, hs, 0, 0)
        except AmcError as exc:
            self.cache.add(h, Refused(exc))
            exc.operations = tree.counts()     # the writes happened: their cost travels with the refusal
            raise
        handle = Programmed(self, h, tree, tree.hardware, tree.counts(), time.perf_counter() - start)
        self.cache.add(h, handle)
        return handle, True

    def solve(self, h: np.ndarray, g: np.ndarray) -> Solution:
        start = time.perf_counter()
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        handle, fresh = self._program(h)
        return self.solve_programmed(handle, g, first=fresh, start=start)

    def solve_programmed(self, handle: Programmed, g: np.ndarray, seconds_since_programming: float = 0.0,
                         first: bool = False, start: Optional[float] = None) -> Solution:
        """Solve on a programmed block tree; the first solve after programming carries its counts (``first``)."""
        if seconds_since_programming:
            raise ConfigError("BlockAMC does not model conductance drift: it takes no seconds_since_programming")
        start = time.perf_counter() if start is None else start
        tree = handle.state
        self._tree = tree
        self._saturated = False
        baseline = OperationCounts() if first else tree.counts()
        controller_baseline = OperationCounts() if first else tree.controller_counts()
        h = handle.h
        n = h.shape[0]
        d = tree.scaling
        try:
            if d is not None:
                dd = d if g.ndim == 1 else d[:, None]
                x = self._solve(tree, tree.root, g * dd) * dd
                tree.digital.counts.add(digital_flops=2 * g.size)      # D on the way in and out
            else:
                x = self._solve(tree, tree.root, g)
        except AmcError as exc:       # what the arrays did until the failure travels with it
            exc.operations = tree.counts() - baseline
            raise
        ops = tree.counts() - baseline
        x_star = np.linalg.solve(h, g)
        err, bits = equivalent_bits(x, x_star)
        total, per_column = residuals(h, x.reshape(n, -1), g.reshape(n, -1))
        leaves = tree.leaves()
        shifts = [float(leaf.shift) for leaf in leaves]
        # Diagnostics against exact arithmetic (never used for a decision): the deliberate bias of the leaves'
        # shifts (the same partition in exact arithmetic with the shifted leaf blocks) apart from the device error.
        x_bias = x_star
        if any(shifts):
            dd = None if d is None else (d if g.ndim == 1 else d[:, None])
            hs = h if d is None else h * d[:, None] * d[None, :]
            x_bias = exact_shifted(tree.root, hs, g if dd is None else g * dd)
            if dd is not None:
                x_bias = x_bias * dd
        scale = float(np.linalg.norm(x_star))
        details = dict(array_size=self.array_size, depth=self._depth(tree.root),
                       setup_operations=(handle.programming if first else OperationCounts()).to_dict(),
                       setup_time_s=handle.programming_time_s if first else 0.0, mvm_slices=self.mvm_slices,
                       gain_calibration=self.gain_calibration, leaves=len(leaves), operators=self.operators,
                       equilibrated=d is not None, shift=max(shifts, default=0.0), leaf_shifts=shifts,
                       controller_operations=(tree.controller_counts() - controller_baseline).to_dict())
        if first and self.shift == "verify":
            details["controller_writes"] = sum(leaf.controller_decision["writes"] for leaf in leaves)
        return Solution(
            x=x, method="blockamc", backend="circuit", relative_residual=total,
            relative_residuals=per_column[0] if g.ndim == 1 else per_column,
            saturated=np.full(x.shape, bool(self._saturated)),
            static_power_w=float(sum(tree.power.values())), operations=ops, history=[],
            relative_error=err, equivalent_bits=bits, wall_time_s=time.perf_counter() - start,
            analog_error=err,        # no digital refinement: the partitioned analog answer is the answer
            bias_error=float(np.linalg.norm(x_bias - x_star) / scale),
            device_error=float(np.linalg.norm(x - x_bias) / scale),
            step_cosine=float(np.vdot(x, x_star) / max(np.linalg.norm(x) * scale, 1e-300)),
            lambda_min=min((leaf.lambda_min for leaf in leaves if leaf.lambda_min is not None), default=None),
            details=details)

    def _depth(self, node: Optional[_Node]) -> int:
        if node is None or node.solver is not None:
            return 0 if node is None else node.depth
        return max(self._depth(node.a), self._depth(node.s))


def exact_shifted(node: _Node, h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Diagnostic: the tree's recursion in exact arithmetic, each leaf block shifted as its controller shifted it
    (mu diag|block|): what the deliberate shifts alone do to the answer."""
    if node.solver is not None:
        mu = float(node.solver.shift)
        return np.linalg.solve(h + mu * np.diag(np.abs(np.diag(h))) if mu else h, g)
    n1 = node.n1
    a, b, c, d = h[:n1, :n1], h[:n1, n1:], h[n1:, :n1], h[n1:, n1:]
    s = d - c @ exact_shifted(node.a, a, b)
    g1, g2 = g[:n1], g[n1:]
    y1 = exact_shifted(node.a, a, g1)
    x2 = exact_shifted(node.s, s, g2 - c @ y1)
    x1 = exact_shifted(node.a, a, g1 - b @ x2)
    return np.concatenate([x1, x2], axis=0)
