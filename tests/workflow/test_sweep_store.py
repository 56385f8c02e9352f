"""The JSONL store: complete records only, a cut-off last line repaired, a failed write rolled back."""
from __future__ import annotations

import errno
import json
import os

import pytest

from workflow import store as store_mod
from workflow.store import ResultStore, StoreError, read_records


def test_partial_last_line_is_truncated(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"id": "a", "status": "ok"}) + "\n" + '{"id": "b", "stat')
    records, bad = read_records(path)
    assert [r["id"] for r in records] == ["a"] and bad == 1
    with ResultStore(tmp_path) as store:
        assert [r["id"] for r in store.open()] == ["a"]
        assert store.repaired_bytes > 0
        store.append({"id": "c", "status": "ok", "metrics": {"x": float("nan")}})
    lines = path.read_text().splitlines()
    assert [json.loads(l)["id"] for l in lines] == ["a", "c"]
    assert json.loads(lines[1])["metrics"]["x"] is None  # NaN stored as null: the file stays strict JSON


def test_full_disk_rolls_back(tmp_path, monkeypatch):
    with ResultStore(tmp_path) as store:
        store.open()
        store.append({"id": "a"})
        real_write = os.write

        def half_write(fd, data):
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(store_mod.os, "write", half_write)
        with pytest.raises(StoreError, match="No space left"):
            store.append({"id": "b", "payload": "x" * 100})
        monkeypatch.setattr(store_mod.os, "write", real_write)
    records, bad = read_records(tmp_path / "records.jsonl")
    assert [r["id"] for r in records] == ["a"] and bad == 0


def test_one_writer_at_a_time(tmp_path):
    first = ResultStore(tmp_path)
    first.open()
    try:
        with pytest.raises(StoreError, match="another sweep"):
            ResultStore(tmp_path).open()
    finally:
        first.close()
