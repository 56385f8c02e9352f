"""One formatter for physical quantities in messages, reprs and tables (engineering prefixes, SI units)."""
from __future__ import annotations

import math

_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"),
             (1e-15, "f"))


def si(value: float, unit: str, digits: int = 3) -> str:
    """``si(3.5e-5, "S") == "35 µS"``; zero, infinities and NaN print plainly."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    magnitude = abs(value)
    for scale, prefix in _PREFIXES:
        if magnitude >= scale * (1 - 0.5 * 10 ** -digits):
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value / 1e-15:.{digits}g} f{unit}"


def format_time(seconds: float, digits: int = 3) -> str:
    """Seconds with a prefix no larger than s (``format_time(3.2e-5) == "32 µs"``, ``format_time(90) == "90 s"``)."""
    if seconds >= 1.0 or seconds == 0 or not math.isfinite(seconds):
        return f"{seconds:.{digits}g} s"
    return si(seconds, "s", digits)


def format_energy(joules: float, digits: int = 3) -> str:
    if joules >= 1.0 or joules == 0 or not math.isfinite(joules):
        return f"{joules:.{digits}g} J"
    return si(joules, "J", digits)


def format_power(watts: float, digits: int = 3) -> str:
    if watts >= 1.0 or watts == 0 or not math.isfinite(watts):
        return f"{watts:.{digits}g} W"
    return si(watts, "W", digits)
