"""Explicit programmed-array handles: ``solver.program(H) -> Programmed``, then ``handle.solve(B, seconds)``.

A ``Programmed`` is one H on the hardware: it owns that system's arrays (INV arrays, MVM arrays, a BlockAMC tree),
what was done to them (``counts``: programming and every solve since; ``programming``: the programming alone) and
the wall time programming took. Nothing finds an array by hashing a matrix: a solver keeps its handles in one
``ProgrammedCache``, looked up by equality of H (shape and every entry), least recently used dropped beyond its
size; a programming the controller refused is kept there too, so the same H is not written again until it changes.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Union

import numpy as np

from amc.hw.counters import OperationCounts


class Programmed:
    """One programmed system: ``solve(B, seconds_since_programming=0.0)`` runs the method on it."""

    def __init__(self, solver: Any, h: np.ndarray, state: Any, hardware: Callable[[], list],
                 programming: OperationCounts, programming_time_s: float):
        self.h = np.array(h, dtype=np.float64)
        self.h.setflags(write=False)
        self.solver = solver
        self.state = state                     # the method's own record of the system (arrays, shift, operators)
        self._hardware = hardware              # -> the arrays it owns (each with .counts)
        self.programming = programming         # what programming did to the hardware
        self.programming_time_s = programming_time_s
        self.solves = 0

    @property
    def n(self) -> int:
        return self.h.shape[0]

    @property
    def hardware(self) -> list:
        return list(self._hardware())

    @property
    def counts(self) -> OperationCounts:
        """Everything done to this system's arrays: its programming and every solve since."""
        total = OperationCounts()
        for hw in self._hardware():
            total = total + hw.counts
        return total

    def solve(self, b: np.ndarray, seconds_since_programming: float = 0.0, **options):
        """x = H^-1 B on the programmed arrays; ``operations`` counts this solve alone."""
        from amc.hw.mapping import validate_rhs
        self.solves += 1
        return self.solver.solve_programmed(self, validate_rhs(b, self.n), seconds_since_programming, **options)

    def __repr__(self) -> str:
        return (f"Programmed({type(self.solver).__name__}, n {self.n}, {len(self._hardware())} arrays, "
                f"{self.solves} solves, programmed in {self.programming_time_s:.3g} s)")


class Refused:
    """A programming the controller refused: raised again (with no new write) while H is unchanged."""

    def __init__(self, exc: BaseException):
        self.kind, self.message = type(exc), str(exc)     # not the exception: its traceback holds caller frames

    def error(self) -> BaseException:
        return self.kind(self.message)


class ProgrammedCache:
    """Handles by H (equality of shape and entries), least recently used dropped beyond ``size``; refusals too."""

    def __init__(self, size: int):
        self.size = int(size)
        self._entries: list[tuple[np.ndarray, Union[Programmed, Refused]]] = []

    def __len__(self) -> int:
        return sum(isinstance(e, Programmed) for _, e in self._entries)

    def find(self, h: np.ndarray) -> Optional[Union[Programmed, Refused]]:
        for i, (key, entry) in enumerate(self._entries):
            if key.shape == h.shape and np.array_equal(key, h):
                self._entries.append(self._entries.pop(i))       # most recently used last
                return entry
        return None

    def add(self, h: np.ndarray, entry: Union[Programmed, Refused]) -> None:
        key = entry.h if isinstance(entry, Programmed) else np.array(h, dtype=np.float64)
        kind = type(entry)
        self._entries = [(k, e) for k, e in self._entries if not (k.shape == h.shape and np.array_equal(k, h))]
        self._entries.append((key, entry))
        same = [i for i, (_, e) in enumerate(self._entries) if isinstance(e, kind)]
        for i in reversed(same[:max(0, len(same) - self.size)]):      # handles and refusals each keep ``size``
            self._entries.pop(i)

    def handles(self) -> list[Programmed]:
        return [e for _, e in self._entries if isinstance(e, Programmed)]


def timed_programming(solver, h: np.ndarray, program: Callable[[], tuple[Any, Callable[[], list]]],
                      extra: Optional[Callable[[], OperationCounts]] = None) -> Programmed:
    """Run ``program() -> (state, hardware)`` and wrap the result in a handle with its counts and wall time."""
    start = time.perf_counter()
    state, hardware = program()
    counts = OperationCounts()
    for hw in hardware():
        counts = counts + hw.counts
    if extra is not None:
        counts = counts + extra()
    return Programmed(solver, h, state, hardware, counts, time.perf_counter() - start)
