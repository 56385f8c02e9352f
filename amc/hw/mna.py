"""ngspice's own MNA system at an operating point, factored once and solved for many right-hand sides.

Pure numerics: nothing here talks to ngspice. The runner reads the matrix (``mdump``), the right-hand side
(``mrdump``), the unknowns' names and ngspice's own solution, and hands them to :class:`CircuitMatrix`; every
use starts with :meth:`CircuitMatrix.verify` against that solution, so a wrong export or mapping is caught
instead of answered.

Export format (ngspice 39, ``SMPprint`` / ``spFileMatrix`` without reordering), as found by running it:
``Circuit Matrix`` / ``<size> real`` / one ``row col value`` line per stored element (1-based equation numbers,
structural zeros included, values with 15 significant digits) / ``0 0 0.0``. ``mrdump`` writes one value per
line, equations 1..size. After ``op`` both hold the final load of the converged point (ngspice reloads for
the small-signal models), i.e. the Jacobian J and the right-hand side b with J x_op = b.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import scipy.sparse
import scipy.linalg
import scipy.sparse.linalg

from amc.errors import AmcError

# SuperLU with a column ordering: the crossbar's MNA matrix is mostly op-amp/branch structure around two dense
# n x n blocks, and LAPACK's dense LU (tried from 450 to 1,800 unknowns) was slower at every size here.
PERMC_SPEC = "COLAMD"
# Re-stamped programmings of arrays without wires use SchurFactor below (dense LU of the crossbar's unknowns only);
# LAPACK's dense LU of all the unknowns is far slower (benchmarks/bench_matrix_engine.py --restamp prints all three).


class MatrixExportError(AmcError, ValueError):
    """ngspice's matrix export is unreadable or inconsistent with its own solution."""


def parse_matrix(text: str) -> scipy.sparse.csc_matrix:
    """The circuit matrix of an ``mdump`` file (duplicates summed, though ngspice writes none)."""
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0].startswith("Circuit Matrix"):
        raise MatrixExportError("the matrix dump does not start with 'Circuit Matrix'")
    head = lines[1].split()
    if len(head) < 2 or head[1] != "real":
        raise MatrixExportError(f"the matrix dump is not a real matrix (header {lines[1]!r})")
    size = int(head[0])
    try:
        values = np.array(" ".join(lines[2:]).split(), dtype=float).reshape(-1, 3)
    except ValueError:
        raise MatrixExportError("the matrix dump has a malformed element line") from None
    if len(values) == 0 or values[-1, 0] != 0:
        raise MatrixExportError("the matrix dump is truncated (no '0 0 0.0' terminator)")
    values = values[:-1]
    rows, cols = values[:, 0].astype(np.int64) - 1, values[:, 1].astype(np.int64) - 1
    if len(values) and (rows.min() < 0 or cols.min() < 0 or rows.max() >= size or cols.max() >= size):
        raise MatrixExportError("the matrix dump has an element outside the matrix")
    return scipy.sparse.csc_matrix((values[:, 2], (rows, cols)), shape=(size, size))


def parse_rhs(text: str, size: int) -> np.ndarray:
    try:
        rhs = np.array(text.split(), dtype=float)
    except ValueError:
        raise MatrixExportError("the right-hand-side dump is not a list of numbers") from None
    if rhs.shape != (size,):
        raise MatrixExportError(f"the right-hand-side dump has {rhs.size} values for {size} equations")
    return rhs


@dataclass
class Verification:
    voltage_error: float    # max |x - x_ngspice| over node voltages / max |node voltage|
    current_error: float    # same over branch currents
    rtol: float

    @property
    def passed(self) -> bool:
        return self.voltage_error <= self.rtol and self.current_error <= self.rtol

    def __str__(self) -> str:
        return (f"node voltages differ by {self.voltage_error:.3g}, branch currents by {self.current_error:.3g} "
                f"(relative, tolerance {self.rtol:g})")


class CircuitMatrix:
    """J x = b of one loaded circuit: ngspice's matrix, right-hand side, unknown names and reference solution."""

    def __init__(self, matrix: scipy.sparse.spmatrix, rhs: np.ndarray, unknowns: Sequence[str],
                 reference: Optional[np.ndarray] = None):
        self.matrix = scipy.sparse.csc_matrix(matrix)
        self.rhs = np.asarray(rhs, dtype=float)
        self.unknowns = [name.lower() for name in unknowns]
        size = self.matrix.shape[0]
        if self.matrix.shape != (size, size) or self.rhs.shape != (size,) or len(self.unknowns) != size:
            raise MatrixExportError(f"matrix {self.matrix.shape}, right-hand side {self.rhs.shape} and "
                                    f"{len(self.unknowns)} unknown names do not agree")
        self.index = {name: i for i, name in enumerate(self.unknowns)}
        self.reference = None if reference is None else np.asarray(reference, dtype=float)
        self._is_current = np.array(["#branch" in name for name in self.unknowns])
        self._lu = None

    @property
    def size(self) -> int:
        return self.matrix.shape[0]

    def __repr__(self) -> str:
        return f"CircuitMatrix({self.size} unknowns, {self.matrix.nnz} stored elements)"

    def equation(self, name: str) -> int:
        try:
            return self.index[name.lower()]
        except KeyError:
            raise MatrixExportError(f"ngspice reports no unknown named {name!r}") from None

    # ---- factor and solve -----------------------------------------------------------------------
    def factor(self, kind: str = "sparse") -> "CircuitMatrix":
        """LU of the matrix: ``"sparse"`` (SuperLU) or ``"dense"`` (LAPACK getrf)."""
        if not np.all(np.isfinite(self.matrix.data)):
            raise MatrixExportError("ngspice's matrix has non-finite entries")
        try:
            if kind == "dense":
                lu = scipy.linalg.lu_factor(self.matrix.toarray(), check_finite=False)
                if not np.all(np.isfinite(lu[0])) or np.any(np.diag(lu[0]) == 0):
                    raise ValueError("singular matrix")
                self._lu = _DenseLU(lu)
            elif kind == "sparse":
                self._lu = scipy.sparse.linalg.splu(self.matrix, permc_spec=PERMC_SPEC)
            else:
                raise ValueError(f"unknown factorisation {kind!r}")
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
            raise MatrixExportError(f"ngspice's matrix cannot be factored ({exc})") from None
        return self

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Unknowns for right-hand sides of shape (size,) or (size, k)."""
        if self._lu is None:
            self.factor()
        x = self._lu.solve(np.asarray(rhs, dtype=float))
        if not np.all(np.isfinite(x)):
            raise MatrixExportError("ngspice's matrix is singular at this operating point")
        return x

    def verify(self, rtol: float, rhs: Optional[np.ndarray] = None, reference: Optional[np.ndarray] = None
               ) -> Verification:
        """Solve J x = b and hold x to ngspice's own solution (which also checks the name <-> equation map).
        ``rhs`` and ``reference``: another deck's right-hand side and ngspice's solution of it (same unknowns)."""
        reference = self.reference if reference is None else np.asarray(reference, dtype=float)
        if reference is None:
            raise MatrixExportError("no ngspice solution to verify against")
        x = self.solve(self.rhs if rhs is None else rhs)
        errors = []
        for mask in (~self._is_current, self._is_current):
            ref = reference[mask]
            scale = float(np.max(np.abs(ref))) if ref.size else 0.0
            diff = float(np.max(np.abs(x[mask] - ref))) if ref.size else 0.0
            errors.append(diff / scale if scale > 0 else diff)
        return Verification(errors[0], errors[1], rtol)

    def canonical(self) -> "CircuitMatrix":
        """This matrix with sorted, unique stored elements (what stamp_positions indexes)."""
        self.matrix.sum_duplicates()
        self.matrix.sort_indices()
        return self

    def stamp_positions(self, node_a: Sequence[str], node_b: Sequence[str]) -> np.ndarray:
        """(4, m) indices into ``matrix.data`` of the (a,a), (b,b), (a,b), (b,a) entries of m resistors between
        node_a and node_b (-1 where a node is ground "0"). Every entry must be stored: a resistor already in the
        circuit has its stamp there, so a missing one means the names do not belong to this circuit."""
        self.canonical()
        size = self.size
        ia = np.array([-1 if a == "0" else self.equation(a) for a in np.ravel(node_a)], dtype=np.int64)
        ib = np.array([-1 if b == "0" else self.equation(b) for b in np.ravel(node_b)], dtype=np.int64)
        m = self.matrix
        cols = np.repeat(np.arange(size, dtype=np.int64), np.diff(m.indptr))
        keys = cols * size + m.indices.astype(np.int64)         # ascending: columns in order, rows sorted
        out = np.full((4, ia.size), -1, dtype=np.int64)
        for p, (r, c) in enumerate(((ia, ia), (ib, ib), (ia, ib), (ib, ia))):
            valid = (r >= 0) & (c >= 0)
            want = c[valid] * size + r[valid]
            pos = np.searchsorted(keys, want)
            if np.any(pos >= keys.size) or np.any(keys[np.minimum(pos, keys.size - 1)] != want):
                raise MatrixExportError("a resistor's stamp is not among ngspice's stored matrix elements")
            out[p, valid] = pos
        return out

    def with_factor(self, lu) -> "CircuitMatrix":
        """This matrix with an LU computed elsewhere (a SchurFactor of it)."""
        self._lu = lu
        return self

    def restamped(self, positions: np.ndarray, delta_s: np.ndarray, rhs: Optional[np.ndarray] = None
                  ) -> "CircuitMatrix":
        """A copy whose resistors (at ``positions`` from stamp_positions) conduct delta_s siemens more, without any
        new structure: +dG on both diagonals, -dG between the nodes. Same unknowns, no ngspice reference."""
        data = self.matrix.data.copy()
        delta_s = np.asarray(delta_s, dtype=float).reshape(-1)
        for p, sign in enumerate((1.0, 1.0, -1.0, -1.0)):
            valid = positions[p] >= 0
            np.add.at(data, positions[p, valid], sign * delta_s[valid])
        matrix = scipy.sparse.csc_matrix((data, self.matrix.indices, self.matrix.indptr), shape=self.matrix.shape)
        return CircuitMatrix(matrix, self.rhs if rhs is None else rhs, self.unknowns, None)

    # ---- right-hand sides and conductance changes -------------------------------------------------
    def rhs_with(self, nodes: Sequence[str], values: np.ndarray, signs: np.ndarray) -> np.ndarray:
        """Right-hand sides (size, k): this one with the entries of ``nodes`` set to ``signs * values[:, c]``."""
        values = np.asarray(values, dtype=float).reshape(len(nodes), -1)
        rows = np.array([self.equation(node) for node in nodes])
        out = np.repeat(self.rhs[:, None], values.shape[1], axis=1)
        out[rows, :] = signs[:, None] * values
        return out

    def with_conductances(self, node_a: Sequence[str], node_b: Sequence[str], delta_s: np.ndarray) -> "CircuitMatrix":
        """A copy whose matrix carries extra conductances delta_s between node pairs (node "0" is ground).

        A resistor's stamp is +G on both diagonals and -G between its nodes; the right-hand side is unchanged
        (a resistor adds no source term), so only the matrix is re-factored.
        """
        delta_s = np.asarray(delta_s, dtype=float).reshape(-1)
        ia = np.array([-1 if a == "0" else self.equation(a) for a in np.ravel(node_a)], dtype=np.int64)
        ib = np.array([-1 if b == "0" else self.equation(b) for b in np.ravel(node_b)], dtype=np.int64)
        if not (ia.size == ib.size == delta_s.size):
            raise ValueError("node_a, node_b and delta_s must have the same number of entries")
        rows = np.concatenate([ia, ib, ia, ib])
        cols = np.concatenate([ia, ib, ib, ia])
        vals = np.concatenate([delta_s, delta_s, -delta_s, -delta_s])
        keep = (rows >= 0) & (cols >= 0)  # ground has no equation
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        delta = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=self.matrix.shape)
        return CircuitMatrix(self.matrix + delta, self.rhs, self.unknowns, None)


class _DenseLU:
    """LAPACK's LU factors behind SuperLU's ``solve`` interface."""

    def __init__(self, lu: tuple):
        self._lu = lu

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return scipy.linalg.lu_solve(self._lu, rhs, check_finite=False)



class SchurFactor:
    """LU of circuit matrices that differ only in conductances among a few unknowns C (the crossbar's nodes), by
    block elimination of the rest (I: op-amp internals, supplies): J = [Jcc Jci; Jic Jii].

    Built once from one matrix: Jii's sparse LU (small blocks, one per op-amp), Z = Jii^-1 Jic (sparse) and the dense
    Schur complement S0 = Jcc - Jci Z. A conductance change among C changes Jcc alone, so it is added to S0 and one
    dense LU of S (|C| ~ 5n unknowns) replaces SuperLU's LU of the whole matrix, whose fill in the dense crossbar
    blocks makes its factor and n-column solves cost ~3x more at n = 128 (benchmarks/bench_matrix_engine.py).
    """

    def __init__(self, matrix: scipy.sparse.spmatrix, boundary: np.ndarray, chunk: int = 512):
        matrix = scipy.sparse.csc_matrix(matrix)
        size = matrix.shape[0]
        csr = matrix.tocsr()
        mask = np.zeros(size, dtype=bool)
        mask[np.asarray(boundary, dtype=np.int64)] = True
        # The current of a voltage source at a crossbar node (an op-amp's output sense source) is fixed by C's KCL;
        # left in I it makes Jii singular. Such unknowns (zero diagonal: a branch equation, adjacent to C) join C,
        # as does any unknown coupled only to C (an empty row or column of Jii).
        adjacent = np.asarray((abs(matrix[mask]) != 0).sum(axis=0)).ravel() > 0
        mask |= adjacent & (csr.diagonal() == 0)
        while True:
            inner = csr[~mask][:, ~mask]
            empty = (np.diff(inner.indptr) == 0) | (np.diff(inner.tocsc().indptr) == 0)
            if not empty.any():
                break
            mask[np.flatnonzero(~mask)[empty]] = True
        self.c, self.i, self.size = np.flatnonzero(mask), np.flatnonzero(~mask), size
        self.j_ci = csr[self.c][:, self.i].tocsr()
        j_ic = csr[self.i][:, self.c].tocsc()
        try:
            self.lu_ii = scipy.sparse.linalg.splu(csr[self.i][:, self.i].tocsc(), permc_spec=PERMC_SPEC)
        except RuntimeError as exc:
            raise MatrixExportError(f"the circuit's internal block cannot be factored ({exc})") from None
        parts = [scipy.sparse.csc_matrix(self.lu_ii.solve(np.asfortranarray(j_ic[:, s:s + chunk].toarray())))
                 for s in range(0, self.c.size, chunk)]
        self.z = scipy.sparse.hstack(parts).tocsr() if parts else scipy.sparse.csr_matrix((self.i.size, 0))
        self.s0 = csr[self.c][:, self.c].toarray() - self.j_ci @ self.z
        if not np.all(np.isfinite(self.s0)):
            raise MatrixExportError("the circuit's Schur complement is not finite")
        self._local = np.full(size, -1, dtype=np.int64)
        self._local[self.c] = np.arange(self.c.size)

    def local_index(self, equations: np.ndarray) -> np.ndarray:
        """Positions in C of equation numbers (-1, ground, stays -1); MatrixExportError if one is not in C."""
        equations = np.asarray(equations, dtype=np.int64)
        out = np.where(equations >= 0, self._local[np.maximum(equations, 0)], -1)
        if np.any((equations >= 0) & (out < 0)):
            raise MatrixExportError("a changed conductance touches an unknown outside the Schur block")
        return out

    @property
    def nbytes(self) -> int:
        return int(self.s0.nbytes + self.z.data.nbytes + self.z.indices.nbytes + self.j_ci.data.nbytes
                   + self.j_ci.indices.nbytes)

    def restamped(self, la: np.ndarray, lb: np.ndarray, delta_s: np.ndarray) -> "_SchurLU":
        """The factor of the matrix with conductances delta_s added between local unknowns la and lb."""
        s = self.s0.copy()
        delta_s = np.asarray(delta_s, dtype=float).reshape(-1)
        for r, c, sign in ((la, la, 1.0), (lb, lb, 1.0), (la, lb, -1.0), (lb, la, -1.0)):
            valid = (r >= 0) & (c >= 0)
            np.add.at(s, (r[valid], c[valid]), sign * delta_s[valid])
        lu = scipy.linalg.lu_factor(s, check_finite=False)
        if not np.all(np.isfinite(lu[0])) or np.any(np.diag(lu[0]) == 0):
            raise MatrixExportError("the re-stamped circuit matrix is singular")
        return _SchurLU(self, lu)


class _SchurLU:
    """J x = b by block elimination with a factored Schur complement (SuperLU's ``solve`` interface)."""

    def __init__(self, parts: SchurFactor, lu: tuple):
        self.parts, self.lu = parts, lu

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        p = self.parts
        b = np.asarray(rhs, dtype=float)
        flat = b.ndim == 1
        b = b.reshape(p.size, -1)
        u = p.lu_ii.solve(np.asfortranarray(b[p.i]))
        x_c = scipy.linalg.lu_solve(self.lu, b[p.c] - p.j_ci @ u, check_finite=False)
        x = np.empty_like(b)
        x[p.c], x[p.i] = x_c, u - p.z @ x_c
        return x[:, 0] if flat else x
