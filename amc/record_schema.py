"""The operation-count fields of a study record, shared by the writers (sweep points and training runs in
``workflow/``) and the reader (``amc cost study``): one schema, so a record is read with the names it was written with.

A record's ``metrics`` carry the hardware work of the whole point or run as ``ops_<OperationCounts field>`` and the
rows of the largest array used as ``ops_array_n``; a point that measured its INV loop adds ``lambda_min``.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping, Optional

from amc.errors import InputError
from amc.hw.counters import OperationCounts

PREFIX = "ops_"
ARRAY_N = "ops_array_n"
LAMBDA_MIN = "lambda_min"
COUNT_FIELDS = tuple(f.name for f in fields(OperationCounts))


def operation_metrics(counts: OperationCounts, array_n: int) -> dict:
    """The record fields for ``counts`` done on arrays of at most ``array_n`` rows (the writer's half)."""
    out = {f"{PREFIX}{key}": value for key, value in counts.to_dict().items()}
    out[ARRAY_N] = int(array_n)
    return out


def read_operations(metrics: Mapping[str, Any], where: str) -> Optional[tuple[OperationCounts, int, Optional[float]]]:
    """(counts, array rows, loop lambda_min or None) of a record's metrics, None when it holds no operation counts
    (a digital run); a record with some but not all fields, or values that are not counts, is an InputError."""
    if not isinstance(metrics, Mapping):
        raise InputError(f"{where}: 'metrics' is {type(metrics).__name__}, not a mapping")
    present = [k for k in (*(PREFIX + f for f in COUNT_FIELDS), ARRAY_N) if k in metrics]
    if not present:
        return None
    missing = [k for k in (*(PREFIX + f for f in COUNT_FIELDS), ARRAY_N) if k not in metrics]
    if missing:
        raise InputError(f"{where}: operation counts incomplete (missing {', '.join(missing)}): not a record "
                         "written by this version's sweep engine")
    values = {}
    for name in COUNT_FIELDS:
        value = metrics[PREFIX + name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise InputError(f"{where}: {PREFIX}{name} = {value!r} is not a count")
        values[name] = value if name == "digital_flops" else int(value)
    array_n = metrics[ARRAY_N]
    if isinstance(array_n, bool) or not isinstance(array_n, int) or array_n < 1:
        raise InputError(f"{where}: {ARRAY_N} = {array_n!r} is not an array size")
    lam = metrics.get(LAMBDA_MIN)
    if lam is not None and (isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam > 0):
        raise InputError(f"{where}: {LAMBDA_MIN} = {lam!r} is not a positive number")
    return OperationCounts(**values), int(array_n), (float(lam) if lam is not None else None)
