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
from amc.methods.programmed import Programmed, ProgrammedCache
from amc.methods.shared import circuit_config
from amc.hw.counters import OperationCounts
from amc.hw.inv_array import InvArray
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
    power: dict = field(default_factory=dict)


@dataclass
class _Tree:
    """One H's block tree on the hardware: the recursion, every array it programmed, their static power, and what
    setting it up computed digitally (the Schur complements' subtractions)."""

    root: Optional[_Node]
    hardware: list
    power: dict
    setup_flops: float = 0.0
    saturated: bool = False


class BlockAMCSolver:
    """BlockAMC on arrays of at most ``array_size``; the block tree (and its programmed arrays) is kept per H.

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
        mvm_config = config if mvm_config is None else circuit_config(mvm_config)
        if config.device.drift_nu > 0 or mvm_config.device.drift_nu > 0:
            raise ConfigError("BlockAMC does not model conductance drift (device.drift_nu); use method direct or "
                              "hp-inv with operators 'extracted'")
        self.config = config
        self.mvm_config = mvm_config
        self.method = method               # validated when it was made
        # One block tree at a time (a new H replaces it, as the arrays are re-programmed): the handle of the tree.
        self.cache = ProgrammedCache(1)
        self._arrays = 0               # arrays made so far: each draws its own device seed
        self._hardware: list = []      # every programmed array of the tree being built or solved (InvArray / AnalogMVM)
        self._power: dict = {}

    # the method's options, by the names the solver always had
    array_size = property(lambda self: self.method.array_size)
    mvm_slices = property(lambda self: self.method.mvm.slices)
    mvm_target_swing = property(lambda self: self.method.mvm.target_swing)
    gain_calibration = property(lambda self: self.method.mvm.gain_calibration)
    check_blocks = property(lambda self: self.method.check_convergence)

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
        return f"BlockAMCSolver(array_size={self.array_size}, mvm_slices={self.mvm_slices}, {self.config.describe()})"

    # ---- setup ---------------------------------------------------------------------------------------------
    def _array_config(self, base: CircuitConfig) -> CircuitConfig:
        """Each physical array draws its own programming error: a distinct device seed per array."""
        self._arrays += 1
        if base.device.program_sigma == 0 and base.device.stuck_rate == 0 and base.device.read_noise_sigma == 0:
            return base
        return base.replace(**{"device.seed": base.device.seed + 1009 * self._arrays})

    def counts(self) -> OperationCounts:
        """Everything done so far to the arrays of the block tree being built or solved."""
        total = OperationCounts()
        for hw in self._hardware:
            total = total + hw.counts
        return total

    def _mvm(self, m: np.ndarray, name: str) -> AnalogMVM:
        mvm = AnalogMVM(self._array_config(self.mvm_config), slices=self.mvm_slices, array_size=self.array_size,
                        target_swing=self.mvm_target_swing, gain_calibration=self.gain_calibration)
        try:
            mvm.program(m)
        except AmcError as exc:
            raise BlockError(f"{name}: {exc}", block=name) from None
        self._hardware.append(mvm)
        return mvm

    def _build(self, h: np.ndarray, lo: int, depth: int) -> _Node:
        n = h.shape[0]
        name = block_name(lo, lo + n, depth)
        if n <= self.array_size:
            solver = InvArray(self._array_config(self.config), name=name)
            self._hardware.append(solver)
            try:
                solver.program(h)
            except AmcError as exc:
                raise BlockError(f"{name}: {exc}", block=name, depth=depth) from None
            return _Node(name=name, n=n, depth=depth, h=h, solver=solver)
        n1 = split_point(n, self.array_size)
        a, b, c, d = h[:n1, :n1], h[:n1, n1:], h[n1:, :n1], h[n1:, n1:]
        node = _Node(name=name, n=n, depth=depth, n1=n1, b=b, c=c)
        node.a = self._build(a, lo, depth + 1)
        y = self._solve(node.a, b)                                  # A^-1 B: INV with B's columns as RHS
        node.c_mvm = self._mvm(c, f"coupling C of {name}")
        s = d - self._multiply(node.c_mvm, c, y)                    # S = D - C (A^-1 B)
        self._digital_flops += s.size
        s_name = block_name(lo + n1, lo + n, depth + 1)
        check_block(s, s_name, "Schur complement S = D - C A^-1 B as computed by the circuit")
        node.s = self._build(s, lo + n1, depth + 1)
        node.b_mvm = self._mvm(b, f"coupling B of {name}")
        return node

    # ---- operations ----------------------------------------------------------------------------------------
    def _multiply(self, mvm: AnalogMVM, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        result = mvm.multiply(m, v)
        self._saturated = self._saturated or result.saturated
        self._power[id(mvm)] = max(self._power.get(id(mvm), 0.0), result.static_power_w)
        return result.y

    def _solve(self, node: _Node, g: np.ndarray) -> np.ndarray:
        if node.solver is not None:
            try:
                sol = node.solver.solve(g)
            except AmcError as exc:
                raise BlockError(f"{node.name}: {exc}", block=node.name, depth=node.depth) from None
            self._saturated = self._saturated or sol.saturated_any
            if sol.static_power_w is not None:
                self._power[id(node.solver)] = max(self._power.get(id(node.solver), 0.0),
                                                   float(np.max(sol.static_power_w)))
            return sol.x
        g1, g2 = g[:node.n1], g[node.n1:]
        y1 = self._solve(node.a, g1)
        x2 = self._solve(node.s, g2 - self._multiply(node.c_mvm, node.c, y1))
        x1 = self._solve(node.a, g1 - self._multiply(node.b_mvm, node.b, x2))
        self._digital_flops += g.size               # the two subtractions after the ADCs
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
        if found is not None:
            return found, False
        start = time.perf_counter()
        if self.check_blocks:
            try:
                plan_check(h, self.array_size)     # digital: nothing written yet, the held tree stays
            except AmcError as exc:
                exc.operations = OperationCounts()
                raise
        self.cache = ProgrammedCache(self.cache.size)   # programming a new H overwrites the held tree's arrays
        self._hardware, self._power = [], {}
        self._saturated, self._digital_flops = False, 0.0
        tree = _Tree(root=None, hardware=self._hardware, power=self._power)
        tree.root = self._build(h, 0, 0)
        tree.setup_flops, tree.saturated = self._digital_flops, self._saturated
        programming = self.counts()
        programming.add(digital_flops=tree.setup_flops)
        handle = Programmed(self, h, tree, lambda: tree.hardware, programming, time.perf_counter() - start)
        self.cache.add(h, handle)
        return handle, True

    def solve(self, h: np.ndarray, g: np.ndarray) -> Solution:
        start = time.perf_counter()
        h = validate_matrix(h)
        g = validate_rhs(g, h.shape[0])
        try:
            handle, fresh = self._program(h)
        except AmcError as exc:       # what the arrays did until the failure travels with it
            if getattr(exc, "operations", None) is None:
                exc.operations = self.counts()
            raise
        return self.solve_programmed(handle, g, first=fresh, start=start)

    def solve_programmed(self, handle: Programmed, g: np.ndarray, seconds_since_programming: float = 0.0,
                         first: bool = False, start: Optional[float] = None) -> Solution:
        """Solve on a programmed block tree; the first solve after programming carries its counts (``first``)."""
        if seconds_since_programming:
            raise ConfigError("BlockAMC does not model conductance drift: it takes no seconds_since_programming")
        start = time.perf_counter() if start is None else start
        tree = handle.state
        self._hardware, self._power = tree.hardware, tree.power
        self._saturated = tree.saturated if first else False
        self._digital_flops = tree.setup_flops if first else 0.0
        baseline = OperationCounts() if first else self.counts()
        setup_ops = handle.programming.copy() if first else OperationCounts()
        setup_time = handle.programming_time_s if first else 0.0
        h = handle.h
        try:
            x = self._solve(tree.root, g)
        except AmcError as exc:       # what the arrays did until the failure travels with it
            exc.operations = self.counts() - baseline
            raise
        ops = self.counts() - baseline
        ops.add(digital_flops=self._digital_flops)
        x_star = np.linalg.solve(h, g)
        err, bits = equivalent_bits(x, x_star)
        n = h.shape[0]
        total, per_column = residuals(h, x.reshape(n, -1), g.reshape(n, -1))
        return Solution(
            x=x, method="blockamc", backend="circuit", relative_residual=total,
            relative_residuals=per_column[0] if g.ndim == 1 else per_column,
            saturated=np.full(x.shape, bool(self._saturated)),
            static_power_w=float(sum(self._power.values())), operations=ops, history=[],
            relative_error=err, equivalent_bits=bits, wall_time_s=time.perf_counter() - start,
            analog_error=err,        # no digital refinement: the partitioned analog answer is the answer
            lambda_min=min((a.lambda_min for a in self._hardware if isinstance(a, InvArray)), default=None),
            details=dict(array_size=self.array_size, depth=self._depth(tree.root),
                         setup_operations=setup_ops.to_dict(), setup_time_s=setup_time, mvm_slices=self.mvm_slices,
                         gain_calibration=self.gain_calibration, leaves=self._count(tree.root)))

    def _depth(self, node: Optional[_Node]) -> int:
        if node is None or node.solver is not None:
            return 0 if node is None else node.depth
        return max(self._depth(node.a), self._depth(node.s))

    def _count(self, node: Optional[_Node]) -> int:
        if node is None:
            return 0
        if node.solver is not None:
            return 1
        return self._count(node.a) + self._count(node.s)
