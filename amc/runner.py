"""The only module that talks to ngspice: one shared-library session per process, cleaned after every run.

PySpice's ``NgSpiceShared`` loads libngspice in process. The library keeps global state, so this module owns a
single instance; every analysis ends with ``destroy all`` and ``remcirc`` (otherwise memory grows by about
1 MB a solve), and every failure carries the lines ngspice printed while it happened.
"""
from __future__ import annotations

import ctypes.util
import glob
import logging
import os
import re
import warnings
from typing import Optional, Sequence

import numpy as np

from .errors import NgspiceUnavailableError, SimulationError

INSTALL_HINT = ("install it with `make install` (or `sudo apt-get install libngspice0 ngspice` on Debian/Ubuntu), "
                "or point NGSPICE_LIBRARY_PATH at libngspice.so")
# Lines ngspice prints on a failed parse or analysis even when the API call itself returns 0.
_FAILURE_MARKERS = ("error", "aborted", "timestep too small", "iteration limit", "singular matrix",
                    "unknown subckt", "could not find", "no such", "unable to find")
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
        self.loaded = False
        self.unrecoverable = ""
        self.tag: object = None
        self.runs = 0
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

    # ---- public ---------------------------------------------------------------------------------
    def load(self, deck: str, tag: object = None) -> None:
        """Parse a deck; raise SimulationError with ngspice's lines when it does not parse.

        ``tag`` names what is loaded (e.g. one programmed array) so a caller can reuse it on a later call.
        """
        if self.unrecoverable:
            raise SimulationError(self.unrecoverable)
        self.clean()
        self._log.clear()
        self._ng.clear_output()  # PySpice keeps its own copy of every line; drop it
        from PySpice.Spice.NgSpice.Shared import FFI, ffi
        lines = [line for line in deck.splitlines() if line.strip()] + [""]
        _refuse_known_parse_failures(lines)
        keep = [ffi.new("char[]", line.encode("utf8")) for line in lines] + [FFI.NULL]
        rc = self._ng._ngspice_shared.ngSpice_Circ(ffi.new("char *[]", keep))
        failures = self._failure_lines(0)
        if rc or failures:
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
        self._command(command)
        failures = self._failure_lines(0)
        if failures:
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

    def _reset_control(self) -> None:
        # A failed parse or command leaves a frame on ngspice's control stack (256 deep): after 255 failures the next
        # valid deck died with "stack overflow". The NULL command empties that stack and the command history.
        from PySpice.Spice.NgSpice.Shared import FFI
        self._ng._ngspice_shared.ngSpice_Command(FFI.NULL)

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
