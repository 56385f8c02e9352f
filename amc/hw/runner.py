"""The only module that talks to ngspice: one shared-library session per process, cleaned after every run.

PySpice's ``NgSpiceShared`` loads libngspice in process. The library keeps global state, so this module owns a
single instance; every analysis ends with ``destroy all`` and ``remcirc`` (otherwise memory grows by about
1 MB a solve), and every failure carries the lines ngspice printed while it happened.

The matrix engine (:func:`matrix_operating_points`) also lives here: ngspice solves one right-hand side and
exports its own circuit matrix, which :mod:`amc.hw.mna` factors and solves for all the others.
"""
from __future__ import annotations

import ctypes.util
import glob
import logging
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from amc.errors import AmcError, NgspiceUnavailableError, SimulationError
from amc.hw.mna import CircuitMatrix, MatrixExportError, Verification, parse_matrix, parse_rhs

INSTALL_HINT = ("install it with `make install` (or `sudo apt-get install libngspice0 ngspice` on Debian/Ubuntu), "
                "or point NGSPICE_LIBRARY_PATH at libngspice.so")
# Lines ngspice prints on a failed parse or analysis even when the API call itself returns 0.
_FAILURE_MARKERS = ("error", "aborted", "timestep too small", "iteration limit", "singular matrix",
                    "unknown subckt", "could not find", "no such", "unable to find")
# libngspice does not return all the memory of a failure, in proportion to the deck: ~0.6-0.8 MB for a failed parse
# of a 16x16 array deck (~620 lines; tests/hw/test_ngspice_failure_budget.py), tens of KB for a failed analysis through
# the matrix engine, next to nothing for a 5-line deck. Each failure is charged the lines of its deck; a process stops
# using ngspice once the charge reaches this budget (about 250 failed 16x16 parses, ~150 MB), and sweep workers are
# replaced at half of it (workflow.engine), so a sweep never reaches it.
FAILURE_BUDGET = int(os.environ.get("AMC_NGSPICE_FAILURE_BUDGET", "160000"))
# ...and lines that merely echo the deck (its title may contain any word).
_BENIGN = ("warning:", "note: can't find init file", "unsupported ngspice version", "circuit:")


def _find_library() -> str:
    explicit = os.environ.get("NGSPICE_LIBRARY_PATH")
    if explicit:
        return explicit
    found = ctypes.util.find_library("ngspice")
    if found:
        return found
    for pattern in ("/usr/lib/*/libngspice.so*", "/usr/lib/libngspice.so*", "/usr/local/lib/libngspice.so*"):
        matches = sorted(glob.glob(pattern))
        if matches:
            return matches[0]
    raise NgspiceUnavailableError(f"the ngspice shared library (libngspice) was not found: {INSTALL_HINT}")


def _silence_pyspice() -> None:
    # PySpice 1.5 logs "Unsupported Ngspice version 39" (harmless) and every stderr line as an error;
    # this module collects ngspice's output itself and attaches it to the exceptions it raises.
    for name in ("PySpice", "PySpice.Spice.NgSpice.Shared"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module="PySpice")


class NgspiceSession:
    """One in-process ngspice. Use :func:`session` to get the process-wide instance."""

    def __init__(self) -> None:
        _silence_pyspice()
        library = _find_library()
        os.environ["NGSPICE_LIBRARY_PATH"] = library
        try:
            from PySpice.Spice.NgSpice.Shared import NgSpiceShared
        except ImportError as exc:  # pragma: no cover - dependency missing
            raise NgspiceUnavailableError(f"PySpice is not installed ({exc}); run `make install`") from None
        NgSpiceShared.LIBRARY_PATH = library
        try:
            self._ng = NgSpiceShared.new_instance()
        except OSError as exc:
            raise NgspiceUnavailableError(f"cannot load the ngspice library {library!r} ({exc}): {INSTALL_HINT}") from None
        except AttributeError as exc:  # a loadable library that is not libngspice (missing ngSpice_* symbols)
            NgSpiceShared._instances.pop(0, None)
            raise NgspiceUnavailableError(f"{library!r} is not the ngspice shared library ({str(exc).split(':')[0]}): "
                                          f"{INSTALL_HINT}") from None
        self._log: list[str] = []
        original = self._ng.send_char

        def capture(message: str, ngspice_id: int) -> int:
            self._log.append(message.partition(" ")[2] if message.startswith(("stdout ", "stderr ")) else message)
            return 0

        self._ng.send_char = capture  # instance attribute: PySpice's callback calls self.send_char(...)
        del original
        self._vector_names: list[str] = []

        def capture_names(data, ngspice_id: int) -> int:
            from PySpice.Spice.NgSpice.Shared import ffi
            self._vector_names = [ffi.string(data.vecs[i].vecname).decode("utf8", "replace")
                                  for i in range(data.veccount)]
            return 0

        self._ng.send_init_data = capture_names
        self.loaded = False
        self.unrecoverable = ""
        self.tag: object = None
        self.runs = 0
        self.failures = 0              # failed parses and analyses inside libngspice
        self.failed_lines = 0          # their decks' lines: the charge against FAILURE_BUDGET
        self.failure_budget = FAILURE_BUDGET
        self._deck_lines = 0
        self._commands = 0

    # ---- low level ------------------------------------------------------------------------------
    def _command(self, command: str) -> None:
        self._commands += 1
        if self._commands % 5000 == 0:
            # ngspice keeps every command in its history; a NULL command frees it (long runs otherwise grow).
            from PySpice.Spice.NgSpice.Shared import FFI
            self._ng._ngspice_shared.ngSpice_Command(FFI.NULL)
        rc = self._ng._ngspice_shared.ngSpice_Command(command.encode("ascii"))
        if rc:
            self._reset_control()
            raise SimulationError(f"ngspice rejected the command {command!r} (return code {rc})", self._log)

    def _failure_lines(self, start: int) -> list[str]:
        failures = []
        for line in self._log[start:]:
            low = line.strip().lower()
            if any(low.startswith(b) for b in _BENIGN):
                continue
            if any(marker in low for marker in _FAILURE_MARKERS):
                failures.append(line)
        return failures

    def _vector(self, name: str) -> np.ndarray:
        from PySpice.Spice.NgSpice.Shared import ffi
        info = self._ng._ngspice_shared.ngGet_Vec_Info(name.encode("ascii"))
        if info == ffi.NULL or info.v_length <= 0 or info.v_realdata == ffi.NULL:
            raise SimulationError(f"ngspice produced no vector {name!r}", self._log)
        return np.frombuffer(ffi.buffer(info.v_realdata, info.v_length * 8), dtype=np.float64).copy()

    def _complex_vector(self, name: str) -> np.ndarray:
        from PySpice.Spice.NgSpice.Shared import ffi
        info = self._ng._ngspice_shared.ngGet_Vec_Info(name.encode("ascii"))
        if info == ffi.NULL or info.v_length <= 0:
            raise SimulationError(f"ngspice produced no vector {name!r}", self._log)
        if info.v_compdata == ffi.NULL:
            return self._vector(name).astype(complex)
        pairs = np.frombuffer(ffi.buffer(info.v_compdata, info.v_length * 16), dtype=np.float64)
        return pairs[0::2] + 1j * pairs[1::2]

    # ---- public ---------------------------------------------------------------------------------
    def run_ac(self, vectors: Sequence[str]) -> dict[str, np.ndarray]:
        """Run a loaded .ac analysis and fetch complex vectors (the frequency as a real one)."""
        if not self.loaded:
            raise SimulationError("no circuit is loaded")
        self._log.clear()
        self._ng.clear_output()
        self._command("run")
        failures = self._failure_lines(0)
        if failures:
            self._command("destroy all")
            self._reset_control()
            raise SimulationError(f"ngspice analysis failed: {failures[0].strip()}", self._log)
        self.runs += 1
        result = {name: self._complex_vector(name) for name in vectors}
        self._command("destroy all")
        return result

    def load(self, deck: str, tag: object = None) -> None:
        """Parse a deck; raise SimulationError with ngspice's lines when it does not parse.

        ``tag`` names what is loaded (e.g. one programmed array) so a caller can reuse it on a later call.
        """
        if self.unrecoverable:
            raise SimulationError(self.unrecoverable)
        self._check_budget()
        self.clean()
        self._log.clear()
        self._ng.clear_output()  # PySpice keeps its own copy of every line; drop it
        from PySpice.Spice.NgSpice.Shared import FFI, ffi
        lines = [line for line in deck.splitlines() if line.strip()] + [""]
        _refuse_known_parse_failures(lines)
        keep = [ffi.new("char[]", line.encode("utf8")) for line in lines] + [FFI.NULL]
        self._deck_lines = len(lines)
        rc = self._ng._ngspice_shared.ngSpice_Circ(ffi.new("char *[]", keep))
        failures = self._failure_lines(0)
        if rc or failures:
            self._charge(len(lines))
            self.loaded = True  # whatever ngspice kept of the deck must go
            self.clean()
            self._reset_control()
            if any("cannot recover" in line for line in self._log):
                # libngspice is now in a state where its next parse double-frees and aborts the process.
                self.unrecoverable = ("the ngspice library cannot recover from an earlier failed parse in this "
                                      "process; start a new process")
            raise SimulationError("ngspice could not parse the deck", self._log)
        self.loaded = True
        self.tag = tag

    def run(self, vectors: Sequence[str], command: str = "run") -> dict[str, np.ndarray]:
        """Run the loaded analysis (``run``) or a new operating point (``op``) and fetch the named vectors."""
        if not self.loaded:
            raise SimulationError("no circuit is loaded")
        # Keep only this analysis' lines: a reused circuit would otherwise accumulate them without bound.
        self._log.clear()
        self._ng.clear_output()
        self._check_budget()
        self._command(command)
        failures = self._failure_lines(0)
        if failures:
            self._charge(self._deck_lines)
            self._command("destroy all")
            self._reset_control()
            raise SimulationError(f"ngspice analysis failed: {failures[0].strip()}", self._log)
        self.runs += 1
        result = {name: self._vector(name) for name in vectors}
        # Results live in ngspice until destroyed; keep only the circuit, drop the plots.
        self._command("destroy all")
        return result

    def alter_waveforms(self, waveforms: dict[str, str]) -> None:
        """Replace the PWL points of independent sources of the loaded circuit (``alter @src[pwl] = [...]``)."""
        for name, points in waveforms.items():
            self._command(f"alter @{name}[pwl] = [ {points} ]")

    def alter_sources(self, values: dict[str, float]) -> None:
        """Change DC values of independent sources of the loaded circuit without re-parsing it."""
        for name, value in values.items():
            self._command(f"alter {name} = {value:.17g}")

    @property
    def failures_left(self) -> int:
        """What is left of the failure budget, in deck lines."""
        return self.failure_budget - self.failed_lines

    def _charge(self, lines: int) -> None:
        self.failures += 1
        self.failed_lines += max(int(lines), 1)

    def _check_budget(self) -> None:
        if self.failed_lines >= self.failure_budget:
            raise SimulationError(f"ngspice failed {self.failures} times in this process on decks of "
                                  f"{self.failed_lines} lines in all (the budget is {self.failure_budget} lines); "
                                  "libngspice keeps part of the memory of every failure, so this process stops using "
                                  "it: start a new process (sweep workers are replaced automatically; "
                                  "AMC_NGSPICE_FAILURE_BUDGET sets the budget)")

    def _reset_control(self) -> None:
        # A failed parse or command leaves a frame on ngspice's control stack (256 deep): after 255 failures the next
        # valid deck died with "stack overflow". The NULL command empties that stack and the command history.
        from PySpice.Spice.NgSpice.Shared import FFI
        self._ng._ngspice_shared.ngSpice_Command(FFI.NULL)

    def circuit_matrix(self, deck: str) -> CircuitMatrix:
        """Load a deck that saves every vector, run ``op`` and read back ngspice's own J, b, names and solution.

        The equation order is ngspice's: at the start of the analysis it announces the plot's vectors, which
        (with everything saved) are the circuit's unknowns in reverse equation order -- the plot list is built
        by prepending. :meth:`CircuitMatrix.verify` checks that order against ngspice's solution on every use.
        """
        self.load(deck)
        workdir = tempfile.mkdtemp(prefix="amc-mdump-")
        try:
            self._log.clear()
            self._ng.clear_output()
            self._vector_names = []
            self._command("op")
            failures = self._failure_lines(0)
            if failures:
                self._charge(self._deck_lines)
                raise SimulationError(f"ngspice analysis failed: {failures[0].strip()}", self._log)
            self.runs += 1
            matrix_file, rhs_file = os.path.join(workdir, "matrix.txt"), os.path.join(workdir, "rhs.txt")
            for command, path in (("mdump", matrix_file), ("mrdump", rhs_file)):
                if '"' in path:
                    raise SimulationError(f"cannot pass the temporary path {path!r} to ngspice")
                self._command(f'{command} "{path}"')
                if not os.path.exists(path):
                    raise SimulationError(f"ngspice wrote no {command} file", self._log)
            with open(matrix_file) as f:
                matrix = parse_matrix(f.read())
            with open(rhs_file) as f:
                rhs = parse_rhs(f.read(), matrix.shape[0])
            names = self._vector_names[::-1]
            if len(names) != matrix.shape[0]:
                raise MatrixExportError(f"ngspice announced {len(names)} vectors for {matrix.shape[0]} equations "
                                        "(does the deck restrict them with .save?)")
            reference = np.array([self._vector(name)[-1] for name in names])
            return CircuitMatrix(matrix, rhs, [_unknown_name(name) for name in names], reference)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            self.clean()

    def clean(self) -> None:
        """Remove all plots and the loaded circuit, leaving the session ready for the next deck."""
        if self.loaded:
            self._ng._ngspice_shared.ngSpice_Command(b"destroy all")
            self._ng._ngspice_shared.ngSpice_Command(b"remcirc")
            self.loaded = False
        self.tag = None

    @property
    def output(self) -> list[str]:
        return list(self._log)


def _refuse_known_parse_failures(lines: list[str]) -> None:
    """Raise before ngspice sees a deck that is certain to fail to parse in one of the common ways.

    libngspice reports these failures by a longjmp that leaks its copy of the deck and its parse state (2 to 30 KB
    for a few lines, more for a large array), so catching them here keeps repeated failures flat: a missing
    absolute .include file, unbalanced .subckt/.ends, a call of a subcircuit the deck does not define. Anything
    else is left to ngspice.
    """
    # Only dot cards, subcircuit calls and continuations matter: skip the (many) element lines cheaply.
    low = [line.strip().lower() for line in lines if line.lstrip()[:1] in (".", "x", "X", "+")]
    opened = sum(line.startswith(".subckt ") for line in low)
    closed = sum(line.startswith(".ends") for line in low)
    if opened != closed:
        raise SimulationError(f"ngspice could not parse the deck: {opened} .subckt but {closed} .ends lines")
    includes = [line.split(None, 1) for line in lines if line.lstrip()[:4].lower() == ".inc"]
    for parts in includes:
        path = parts[1].strip().strip("'\"") if len(parts) > 1 else ""
        if os.path.isabs(path) and not os.path.isfile(path):
            raise SimulationError(f"ngspice could not parse the deck: include file not found: {path}")
    if includes or any(line.startswith((".lib", "+", ".control")) for line in low):
        return  # subcircuits may come from elsewhere, or a call may span lines
    defined = {line.split()[1] for line in low if line.startswith(".subckt ") and len(line.split()) > 1}
    for line in low:
        if not line.startswith("x"):
            continue
        parts = re.split(r"(\s+params:|=)", line, maxsplit=1)
        tokens = parts[0].split()
        if len(parts) > 1 and parts[1] == "=":
            tokens = tokens[:-1]  # the parameter's name
        if len(tokens) >= 2 and tokens[-1] not in defined:
            raise SimulationError(f"ngspice could not parse the deck: {tokens[0]} calls the subcircuit "
                                  f"{tokens[-1]!r}, which the deck does not define")


_SESSION: Optional[NgspiceSession] = None


def session() -> NgspiceSession:
    """The process-wide ngspice session (created on first use)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = NgspiceSession()
    return _SESSION


def _unknown_name(vector: str) -> str:
    # Branch currents of subcircuit devices come as "v.xamp_0.vsense#branch"; nodes as "xamp_0.n1".
    return vector.lower()


# ---- the matrix engine (issue 9) -------------------------------------------------------------------------
class EngineFallback(AmcError):
    """The matrix engine cannot answer this call; the message says why, the caller runs plain ngspice."""


@dataclass
class MatrixSolve:
    """Operating points of one loaded circuit for k right-hand sides, from ngspice's factored matrix."""

    outputs: np.ndarray            # (len(outputs), k) node voltages
    supply: dict                   # supply branch name -> (k,) currents
    accepted: np.ndarray           # (k,) bool: columns inside the linear region (the others need ngspice)
    limiter_error: np.ndarray      # (k,) first-order estimate of |x_engine - x_ngspice| / max|output|
    verification: Optional[Verification]   # None: a re-stamped system, no ngspice run behind it
    unknowns: int

    @property
    def rejected(self) -> int:
        return int(np.sum(~self.accepted))


def limiter(v: np.ndarray, v_sat: float, sharpness: float) -> np.ndarray:
    """The op-amp output stage of netlists/amc_opamps.lib, v/(1+|v/VSAT|^P)^(1/P), used only to *measure*
    how far an engine answer is from the limiter's curve (a first-order estimate of the error), never to solve."""
    return v / (1.0 + np.abs(v / v_sat) ** sharpness) ** (1.0 / sharpness)


def matrix_operating_points(deck: str, source_nodes: Sequence[str], currents: np.ndarray, outputs: Sequence[str],
                            supplies: Sequence[str] = ("vcc#branch", "vee#branch"), quiescent_a: float = 0.0,
                            v_sat: Optional[float] = None, sharpness: float = 8.0, rtol: float = 1e-9,
                            linear_rtol: Optional[float] = None, stamps: Optional[tuple] = None,
                            ng: Optional[NgspiceSession] = None) -> MatrixSolve:
    """Operating points of an INV deck for every column of ``currents`` (A, shape (n, k)).

    ``deck`` is the .op deck of column 0 saving every vector. ngspice solves it, its matrix is factored once,
    and the result for column 0 is held to ngspice's own solution (``rtol``): a mismatch raises EngineFallback.
    The other columns change only the input sources' entries of the right-hand side (current sources into
    ``source_nodes``). Supply currents follow the library's supply bookkeeping (rail current = quiescent
    current + the sourced or sunk output current of every amplifier), anchored to ngspice's own rail currents
    and checked against them. A column whose outputs sit where the output limiter bends (estimated error above
    ``linear_rtol``, default ``rtol``) is marked not accepted.

    ``stamps = (node_a, node_b, delta_s)``: column c is a read of a different array, whose resistors between
    node_a[m] and node_b[m] conduct delta_s[m, c] siemens more than in the deck (delta_s[:, 0] must be 0): that
    column's matrix gets those stamps and is re-factored, without re-parsing any deck.
    """
    linear_rtol = rtol if linear_rtol is None else linear_rtol
    currents = np.asarray(currents, dtype=float)
    ng = ng if ng is not None else session()
    system, verification = verified_system(deck, rtol, ng)
    sign = source_sign(system, source_nodes, currents[:, 0])
    return answer_columns(system, sign, source_nodes, currents, outputs, supplies, quiescent_a, v_sat, sharpness,
                          rtol, linear_rtol, stamps, verification)


def verified_system(deck: str, rtol: float, ng: Optional[NgspiceSession] = None) -> tuple[CircuitMatrix, Verification]:
    """ngspice's .op of ``deck`` and its exported, factored matrix, held to ngspice's own solution (EngineFallback
    when the export is unusable or disagrees)."""
    ng = ng if ng is not None else session()
    try:
        system = ng.circuit_matrix(deck)
        verification = system.verify(rtol)
    except MatrixExportError as exc:
        raise EngineFallback(f"ngspice's matrix export is unusable: {exc}") from None
    if not verification.passed:
        raise EngineFallback(f"ngspice's factored matrix disagrees with its own .op: {verification}")
    return system, verification


def source_sign(system: CircuitMatrix, source_nodes: Sequence[str], first: np.ndarray) -> float:
    """The sign with which an input current source enters its node's equation, read off ngspice's right-hand side
    of the deck whose input currents were ``first``."""
    try:
        rows = np.array([system.equation(node) for node in source_nodes])
    except MatrixExportError as exc:
        raise EngineFallback(str(exc)) from None
    nonzero = np.abs(first) > 0
    if not nonzero.any():
        raise EngineFallback("the verified right-hand side has no input current to read the source stamps from")
    signs = system.rhs[rows[nonzero]] / first[nonzero]
    sign = float(np.sign(signs[0]))
    if np.max(np.abs(signs - sign)) > 1e-12:
        raise EngineFallback("the input nodes' right-hand-side entries are not the input currents alone")
    return sign


def answer_columns(system: CircuitMatrix, sign: float, source_nodes: Sequence[str], currents: np.ndarray,
                   outputs: Sequence[str], supplies: Sequence[str], quiescent_a: float, v_sat: Optional[float],
                   sharpness: float, rtol: float, linear_rtol: float, stamps: Optional[tuple] = None,
                   verification: Optional[Verification] = None) -> MatrixSolve:
    """Every column of ``currents`` from the factored ``system``. With a ``verification`` (the system is ngspice's
    own, at column 0's operating point) column 0 is ngspice's answer and the rail bookkeeping is anchored to and
    checked against ngspice's rail currents; without one (a re-stamped system: no ngspice run) every column is the
    factor's answer and the rails are the bookkeeping alone."""
    try:
        out_rows = np.array([system.equation(name) for name in outputs])
        supply_rows = {name: system.equation(name) for name in supplies}
    except MatrixExportError as exc:
        raise EngineFallback(str(exc)) from None
    k = currents.shape[1]
    per_column = None
    if stamps is not None:
        node_a, node_b, delta_s = stamps
        delta_s = np.asarray(delta_s, dtype=float).reshape(len(node_a), k)
        if np.any(delta_s[:, 0]):
            raise ValueError("stamps: column 0 is the deck itself, its conductance change must be 0")
        try:
            per_column = [system] + [system.with_conductances(node_a, node_b, delta_s[:, c]).factor()
                                     for c in range(1, k)]
        except MatrixExportError as exc:
            raise EngineFallback(f"a perturbed read cannot be factored: {exc}") from None

    def solve(rhs: np.ndarray) -> np.ndarray:
        if per_column is None:
            return system.solve(rhs)
        return np.stack([per_column[c].solve(rhs[:, c]) for c in range(k)], axis=1)

    x = solve(system.rhs_with(list(source_nodes), currents, np.full(len(source_nodes), sign)))
    anchored = verification is not None
    if anchored:
        x[:, 0] = system.reference  # column 0 is ngspice's own answer

    # Rail currents: the output-current halves max(+-i, 0) are piecewise linear, so J (taken at column 0's
    # signs) cannot carry them to other columns; re-add them from the solved output currents instead.
    sense = np.array([i for i, name in enumerate(system.unknowns) if name.endswith(".vsense#branch")], dtype=int)
    i_sense = x[sense, :]
    supply = {}
    for name, row in supply_rows.items():
        sourcing = name.startswith("vcc")
        part = np.maximum(i_sense if sourcing else -i_sense, 0.0).sum(axis=0)
        sign_rail = -1.0 if sourcing else 1.0
        if not anchored:
            supply[name] = sign_rail * (part + len(sense) * quiescent_a)
            continue
        i_sense0 = system.reference[sense][:, None]
        part0 = np.maximum(i_sense0 if sourcing else -i_sense0, 0.0).sum(axis=0)
        reference = system.reference[row]
        # ngspice's own rail current must be this bookkeeping at column 0, else the model is not the one assumed.
        expected = sign_rail * (part0[0] + len(sense) * quiescent_a)
        if abs(reference - expected) > rtol * max(abs(reference), 1e-30) + 1e-18:
            raise EngineFallback(f"ngspice's {name} ({reference:.6g} A) is not the supply bookkeeping the engine "
                                 f"assumes ({expected:.6g} A)")
        supply[name] = reference + sign_rail * (part - part0)

    out = x[out_rows, :]
    scale = np.maximum(np.max(np.abs(out), axis=0), 1e-300)
    error = np.zeros(currents.shape[1])
    if v_sat is not None:
        # One Newton correction through the same factor: the residual of every limiter's equation at the
        # engine's answer, mapped to the outputs. It measures the non-linearity; the answer is not corrected.
        residual = np.zeros_like(x)
        for i, name in enumerate(system.unknowns):
            match = re.fullmatch(r"b\.(.+)\.bout#branch", name)
            if not match:
                continue
            inst = match.group(1)
            ctrl = system.index.get(f"{inst}.n1", system.index.get(f"{inst}.n1a"))
            outi = system.index.get(f"{inst}.outi")
            if ctrl is None or outi is None:
                raise EngineFallback(f"the output stage of {inst} is not the library's (no n1/outi nodes)")
            stamp = system.matrix[i, outi]
            residual[i, :] = stamp * (x[outi, :] - limiter(x[ctrl, :], v_sat, sharpness))
        if residual.any():
            correction = solve(residual)[out_rows, :]
            error = np.max(np.abs(correction), axis=0) / scale
    return MatrixSolve(outputs=out, supply=supply, accepted=error <= linear_rtol, limiter_error=error,
                       verification=verification, unknowns=system.size)
