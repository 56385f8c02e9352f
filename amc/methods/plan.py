"""What each method does to the hardware, stated before it runs: the one count model the cost ledger prices.

``plan(solver, n, k) -> Plan`` gives the operation counts of programming an n x n system once
(``Plan.programming``) and of solving it for k right-hand sides (``Plan.solve``), in the nominal case:

- the controller accepts its first write (no refused shift, no re-programming; the read-verified controller runs
  all its Lanczos settles),
- no output re-ranges (auto-ranging lands inside the swing at the first settle or read),
- refinement runs all its iterations (no ``tol`` stop), every bit slice and DAC input slice is non-empty.

``tests/methods/test_plan.py`` holds every method's plan to what a run of it counts; ``amc/cost/workloads.py``
prices these plans, so the ledger and the methods share one count model. ``ngspice_runs`` and the programming
provenance counts are simulator artefacts and are not planned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from amc.hw.counters import OperationCounts
from amc.methods.blockamc import split_point


@dataclass(frozen=True)
class Plan:
    programming: OperationCounts      # once per programmed system (every array it needs)
    solve: OperationCounts            # one solve of k right-hand sides on the programmed system

    def total(self, solves: int = 1) -> OperationCounts:
        out = self.programming.copy()
        for _ in range(solves):
            out = out + self.solve
        return out


def inv_program(n: int, equilibrate: bool) -> OperationCounts:
    """One InvArray programming (amc/hw/inv_array.py): both halves of the pair; Jacobi scaling 3 n^2."""
    return OperationCounts(programmings=1, cells_programmed=2 * n * n, digital_flops=float(3 * n * n if equilibrate
                                                                                           else 0))


def inv_settles(n: int, k: int, equilibrate: bool) -> OperationCounts:
    """k INV settles of an n x n array: one DAC per row and one ADC per output each; scaling 2 n k."""
    return OperationCounts(inv_settles=k, dac_conversions=n * k, adc_conversions=n * k,
                           digital_flops=float(2 * n * k if equilibrate else 0))


def _tiles(m: int, p: int, size: Optional[int]) -> list[tuple[int, int]]:
    a = size or max(m, p)
    return [(min(a, m - r), min(a, p - c)) for r in range(0, m, a) for c in range(0, p, a)]


def mvm_program(m: int, p: int, slices: int, size: Optional[int]) -> OperationCounts:
    """AnalogMVM.program of an m x p matrix: one array per bit slice and tile (amc/hw/mvm.py)."""
    tiles = _tiles(m, p, size)
    return OperationCounts(programmings=len(tiles) * slices,
                           cells_programmed=sum(2 * r * c for r, c in tiles) * slices)


def mvm_reads(m: int, p: int, k: int, slices: int, size: Optional[int], input_slices: int = 1) -> OperationCounts:
    """AnalogMVM.multiply of k vectors: one read per array, vector and DAC input slice."""
    tiles = _tiles(m, p, size)
    reads = len(tiles) * slices * k * input_slices
    return OperationCounts(mvm_reads=reads, dac_conversions=sum(c for _, c in tiles) * slices * k * input_slices,
                           adc_conversions=sum(r for r, _ in tiles) * slices * k * input_slices)


def _input_slices(mvm_config, input_slices: int) -> int:
    return 1 if mvm_config.io.dac_bits is None else input_slices


def verify_reads(n: int, equilibrate: bool) -> OperationCounts:
    """The read-verified controller (amc/hw/controller.py, ``shift: verify``): min(VERIFY_SETTLES, n) Lanczos
    settles through the programmed array and their digital work, for an array that passes at its first write."""
    from amc.hw.controller import VERIFY_SETTLES, verify_flops
    settles = min(VERIFY_SETTLES, n)
    out = inv_settles(n, settles, equilibrate)
    out.add(digital_flops=float(verify_flops(n)))
    return out


def direct_plan(solver, n: int, k: int) -> Plan:
    eq = bool(solver.circuit.io.equilibrate)
    programming = inv_program(n, eq)
    if solver.method.shift == "verify":
        programming = programming + verify_reads(n, eq)
    return Plan(programming, inv_settles(n, k, eq))


def blockamc_plan(solver, n: int, k: int) -> Plan:
    """BlockAMC (amc/methods/blockamc.py): setup A^-1 B by INV, S = D - C Y by MVM + digital, recursively; with
    ``shift: verify`` every leaf's programming includes the controller's verify settles. Extracted operators count
    the same reads as per-solve ones (one per array and column)."""
    size, slices, eq = solver.array_size, solver.mvm_slices, bool(solver.config.io.equilibrate)
    ins = _input_slices(solver.mvm_config, 1)

    verified = solver.shift == "verify"         # the read-verified controller on every INV leaf

    def setup(m: int) -> OperationCounts:
        if m <= size:
            return inv_program(m, eq) + verify_reads(m, eq) if verified else inv_program(m, eq)
        m1 = split_point(m, size)
        m2 = m - m1
        out = setup(m1) + solve(m1, m2)                                  # Y = A^-1 B (B's m2 columns)
        out = out + mvm_program(m2, m1, slices, size) + mvm_reads(m2, m1, m2, slices, size, ins)   # C Y
        out.add(digital_flops=float(m2 * m2))                            # S = D - C Y
        return out + setup(m2) + mvm_program(m1, m2, slices, size)

    def solve(m: int, cols: int) -> OperationCounts:
        if m <= size:
            return inv_settles(m, cols, eq)
        m1 = split_point(m, size)
        m2 = m - m1
        out = solve(m1, cols) + mvm_reads(m2, m1, cols, slices, size, ins) + solve(m2, cols)
        out = out + mvm_reads(m1, m2, cols, slices, size, ins) + solve(m1, cols)
        out.add(digital_flops=float(m * cols))                           # the two subtractions after the ADCs
        return out

    programming, solving = setup(n), solve(n, k)
    if solver.equilibrate:          # D H D before partitioning (3 n^2); D on the way in and out (2 n k)
        programming.add(digital_flops=float(3 * n * n))
        solving.add(digital_flops=float(2 * n * k))
    return Plan(programming, solving)


def hpinv_plan(solver, n: int, k: int) -> Plan:
    """HP-INV (amc/methods/hpinv.py), per-solve or extracted operators, analog or identity preconditioner."""
    eq_circuit = bool(solver.config.io.equilibrate)
    eq_method = bool(solver.equilibrate)
    blocks = solver.block_slices(n)
    sizes = [s.stop - s.start for s in blocks] if blocks else [n]
    method = solver.method
    slices = method.mvm.slices
    tile = method.mvm.array_size or method.array_size
    ins = 1 if method.operators == "extracted" else _input_slices(solver.mvm_config, method.mvm.input_slices)
    analog = method.preconditioner == "analog"
    programming = OperationCounts()
    if analog:
        for b in sizes:
            programming = programming + inv_program(b, eq_circuit)
            programming.add(digital_flops=float(4 * b ** 3))          # the controller's check of each write
    programming = programming + mvm_program(n, n, slices, tile)
    iterations = method.iterations
    inv_calls = iterations                     # richardson: one per iteration; pcg: the first + iterations - 1
    solve = OperationCounts()
    for _ in range(inv_calls):
        if analog:
            for b in sizes:
                solve = solve + inv_settles(b, k, eq_circuit)
                solve.add(digital_flops=float(2 * b * k))               # residual scaling in and out
    arrays = len(_tiles(n, n, tile)) * slices
    for _ in range(iterations):
        solve = solve + mvm_reads(n, n, k, slices, tile, ins)
        solve.add(digital_flops=float(arrays * ins * k * n))          # shift-and-add of the partial products
    per_iteration = (10 if method.refinement == "pcg" else 4) * n * k
    solve.add(digital_flops=float(per_iteration * iterations + (4 * n * k if eq_method else 0)))
    return Plan(programming, solve)


def repast_plan(solver, n: int, k: int) -> Plan:
    """RePAST-style (amc/methods/repast.py): once per programming the INV method computes H^-1 (n right-hand
    sides) and the inverse is programmed into bit-sliced MVM arrays; every solve is one MVM read per array."""
    inverter = solver._inverter
    inverse = plan_of(inverter, n, n)
    m = solver.method.mvm
    tile = m.array_size
    programming = inverse.total(1) + mvm_program(n, n, m.slices, tile)
    arrays = len(_tiles(n, n, tile)) * m.slices
    ins = 1 if solver.method.operators == "extracted" else _input_slices(solver.mvm_config, m.input_slices)
    solve = mvm_reads(n, n, k, m.slices, tile, ins)
    solve.add(digital_flops=float(arrays * ins * n * k))          # shift-and-add of the partial products
    return Plan(programming, solve)


def plan_of(solver, n: int, k: int) -> Plan:
    """The plan of any method's solver object (DirectSolver, HPInvSolver, BlockAMCSolver, RepastSolver)."""
    from amc.methods.blockamc import BlockAMCSolver
    from amc.methods.direct import DirectSolver
    from amc.methods.hpinv import HPInvSolver
    from amc.methods.repast import RepastSolver
    for kind, fn in ((DirectSolver, direct_plan), (BlockAMCSolver, blockamc_plan), (HPInvSolver, hpinv_plan),
                     (RepastSolver, repast_plan)):
        if isinstance(solver, kind):
            return fn(solver, n, k)
    raise TypeError(f"no plan for {type(solver).__name__}")
