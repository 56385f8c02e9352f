"""Results of a sweep: one JSON Lines file, appended one complete record at a time, and a CSV view of it.

Only the submitting process writes. Each record is one ``os.write`` of a whole line on an O_APPEND descriptor,
followed by ``fsync``, so a finished point survives a crash, a kill or a power cut. The one thing a hard kill
can leave is a partial last line (the write was cut short): :meth:`ResultStore.open` detects it (the file does
not end with a newline, or its last line is not JSON) and truncates it away before anything is appended. A
write that fails (disk full) is rolled back to the previous length, so the file stays parseable.
"""
from __future__ import annotations

import csv
import errno
import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Optional

from amc.errors import AmcError

RECORDS = "records.jsonl"
CSV_VIEW = "records.csv"
LOCK = ".sweep.lock"


class StoreError(AmcError, RuntimeError):
    """The results file cannot be written (disk full, permissions) or is locked by another sweep."""


def read_records(path: str | Path) -> tuple[list[dict], int]:
    """All complete records of a JSONL file, and the number of damaged lines skipped (read-only)."""
    path = Path(path)
    if not path.exists():
        return [], 0
    records, bad = [], 0
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # no trailing newline: the last line was cut short
        bad += 1
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict) and "id" in record:
            records.append(record)
        else:
            bad += 1
    return records, bad


def damaged_lines(path: str | Path) -> list[int]:
    """1-based numbers of the lines before the last that are not complete records (a cut-off LAST line is the
    one thing a crash can leave; anything else was written by someone else and must not be skipped quietly)."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    bad = []
    for number, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        if not (isinstance(record, dict) and "id" in record):
            bad.append(number)
    return bad


def check_intact(path: str | Path, error: type[Exception] = None) -> None:
    """Raise (StoreError by default) naming the first damaged line of a results file."""
    bad = damaged_lines(path)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise (error or StoreError)(f"{path}: line {bad[0]}{more} is not a sweep record (the file was edited or "
                                    "damaged); nothing was changed: fix or delete that line, or move the file aside")


def latest_by_id(records: Iterable[dict]) -> dict[str, dict]:
    """The last record of every point id (a retried point supersedes its earlier failure)."""
    out: dict[str, dict] = {}
    for record in records:
        out[record["id"]] = record
    return out


class ResultStore:
    """Append-only JSONL results of one sweep directory, with an exclusive lock while a sweep writes."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.path = self.dir / RECORDS
        self.csv_path = self.dir / CSV_VIEW
        self._fd: Optional[int] = None
        self._lock_fd: Optional[int] = None
        self.repaired_bytes = 0
        self.written = 0

    # ---- life cycle -----------------------------------------------------------------------------
    def open(self) -> list[dict]:
        """Lock the directory, repair a cut-off last line, and return the records already there."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the results directory {self.dir}: {exc.strerror}") from None
        try:
            self._lock_fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot write to the results directory {self.dir}: {exc.strerror} "
                             "(a sweep needs a writable --out, also to resume)") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StoreError(f"another sweep is writing to {self.dir} (lock {self.dir / LOCK} is held)") from None
        try:
            check_intact(self.path)
        except StoreError:
            self.close()
            raise
        try:
            self._repair()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            self.close()
            raise StoreError(f"cannot write {self.path}: {exc.strerror}") from None
        records, _ = read_records(self.path)
        return records

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _repair(self) -> None:
        """Cut a partial last line (from a crash mid-write) so appends start on a clean line."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            keep = len(data)
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
            else:
                # A complete-looking last line that is not JSON (e.g. zero bytes after a power cut) goes too.
                start = data.rfind(b"\n", 0, max(len(data) - 1, 0)) + 1
                last = data[start:].strip()
                if last:
                    try:
                        json.loads(last)
                    except ValueError:
                        keep = start
            if keep != len(data):
                self.repaired_bytes = len(data) - keep
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())

    # ---- writing --------------------------------------------------------------------------------
    def append(self, record: dict) -> None:
        """Write one complete record durably, or roll back and raise StoreError (nothing half-written stays)."""
        if self._fd is None:
            raise StoreError("the result store is not open")
        line = (json.dumps(_plain(record), allow_nan=False, default=str) + "\n").encode()
        before = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, before)
                os.fsync(self._fd)
            except OSError:
                pass  # the next open() repairs a partial line anyway
            raise StoreError(f"cannot write to {self.path}: {exc.strerror or exc} "
                             f"({self.written} records written this run are intact; rerun to resume)") from None
        self.written += 1

    def write_csv(self) -> Path:
        """Regenerate the CSV view (latest record per point) from the JSONL file, atomically."""
        records, _ = read_records(self.path)
        return write_csv(list(latest_by_id(records).values()), self.csv_path)


def flatten(record: dict) -> dict:
    """One flat row: id, status, swept parameters, scalar metrics, error."""
    row: dict[str, Any] = {"id": record.get("id"), "status": record.get("status"), "kind": record.get("kind")}
    for key, value in (record.get("params") or {}).items():
        row[key] = value
    for key, value in (record.get("metrics") or {}).items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            row[key] = value
    row["wall_time_s"] = record.get("wall_time_s")
    row["error"] = record.get("error") or ""
    return row


def write_csv(records: list[dict], path: Path) -> Path:
    rows = [flatten(r) for r in records]
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or ["id"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else (v.splitlines()[0][:300] if k == "error" and v else v))
                             for k, v in row.items()})
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars/arrays to Python, NaN/Inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
