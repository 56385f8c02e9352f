"""Analog points in the sweep engine: spec expansion, one record per run, the CSV columns the studies read."""
import csv

import pytest

from amc.errors import ConfigError
from workflow.points import run_point
from workflow.spec import build_sweep, load_sweep
from workflow.store import write_csv


def _sweep(**extra):
    data = {"name": "t", "kind": "analog", "base": {"circuit": "ideal", "seed": 0,
                                                    "analog": {"problem": "least-squares", "iterations": 200}},
            "grid": {"analog.algorithm": ["analog-sgd", "tiki-taka"], "analog.tau": [1.0, 2.5]}}
    data.update(extra)
    return build_sweep(data)


def test_analog_points_run_and_write_the_study_columns(tmp_path):
    sweep = _sweep()
    assert len(sweep) == 4 and sweep.points[0].params == {"analog.algorithm": "analog-sgd", "analog.tau": 1.0}
    records = [run_point(p.payload(60)) for p in sweep.points[:2]]
    assert all(r["status"] == "ok" for r in records), records
    path = write_csv(records, tmp_path / "records.csv")
    rows = list(csv.DictReader(open(path)))
    assert {"algorithm", "tau", "lr", "loss_tail"} <= set(rows[0])
    assert rows[1]["algorithm"] == "analog-sgd" and float(rows[1]["tau"]) == 2.5 and float(rows[1]["loss_tail"]) > 0


def test_shipped_study_files_expand():
    a = load_sweep("configs/sweeps/tiki_taka_least_squares.yaml")
    b = load_sweep("configs/sweeps/tiki_taka_wire_resistance.yaml")
    assert len(a) == 28 and len(b) == 22
    assert {p.spec["analog"]["algorithm"] for p in a.points} == {"digital-sgd", "analog-sgd", "tiki-taka", "c-ttv2"}


def test_analog_keys_are_refused_where_they_have_no_effect():
    with pytest.raises(ConfigError, match="analog.\\* applies to analog sweeps only"):
        build_sweep({"kind": "circuit", "base": {"matrix": {"n": 4}}, "grid": {"analog.lr": [0.1]}})
    with pytest.raises(ConfigError, match="unknown key 'analog.nope'"):
        _sweep(grid={"analog.nope": [1]})
