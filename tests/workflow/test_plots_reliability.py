"""Figures: a generic x/y plot of any study, no averaging over a swept axis, missed targets drawn as missing,
units in µ and ±, and the preset and conditions in every figure."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workflow import plots
from amc.cli import main


def _write(directory: Path, records: list[dict], meta: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (directory / "sweep.json").write_text(json.dumps(meta))
    return directory


def _hpinv_study(tmp_path) -> Path:
    records = []
    for n in (8, 16, 32):
        for iterations in (2, 5, 10):
            for seed in (0, 1):
                error = 10.0 ** (-iterations / 2) * (1 + 0.1 * seed) * n / 8
                records.append({"id": f"{n}-{iterations}-{seed}", "status": "ok",
                                "params": {"matrix.n": n, "solve.iterations": iterations, "matrix.seed": seed},
                                "metrics": {"relative_error": error, "settling_time_s": 1e-6 * n}})
    meta = {"name": "hpinv_iterations_n", "kind": "circuit", "grid_keys": ["matrix.n", "solve.iterations",
                                                                          "matrix.seed"],
            "spec": {"base": {"circuit": "rram", "matrix": {"n": 16, "kind": "spd", "condition": 10},
                              "solve": {"method": "hp-inv"}}}}
    return _write(tmp_path / "study", records, meta)


@pytest.fixture
def figures(monkeypatch):
    drawn = []

    def keep(fig, out, name):
        drawn.append(fig)
        return [Path(out) / f"{name}.png"]
    monkeypatch.setattr(plots, "_save", keep)
    return drawn


def test_error_vs_n_draws_one_line_per_iteration_count_and_averages_only_seeds(tmp_path, figures):
    plots.plot_results(_hpinv_study(tmp_path), sweep_plots=["error_vs_n"])
    (fig,) = figures
    ax = fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    assert sorted(labels) == sorted(f"solve.iterations = {i}" for i in (2, 5, 10)), labels
    line = handles[labels.index("solve.iterations = 5")].lines[0]
    np.testing.assert_allclose(line.get_ydata()[0], np.mean([10 ** -2.5 * 1.0, 10 ** -2.5 * 1.1]))
    title = ax.get_title()
    assert "preset rram" in title and "matrix.condition = 10" in title and "mean ± std over matrix.seed" in title


def test_units_use_micro_and_plus_minus(tmp_path, figures):
    plots.plot_results(_hpinv_study(tmp_path), sweep_plots=["settling_vs_n"])
    ax = figures[0].axes[0]
    text = ax.get_title() + ax.get_ylabel() + ax.get_xlabel()
    assert "µs" in text and "us)" not in text and "+-" not in text


def test_a_missed_target_is_drawn_as_missing(tmp_path, figures):
    records = [{"id": f"{opt}{s}", "status": "ok", "params": {"training.optimizer": opt, "seed": s},
                "metrics": {"optimizer": opt, "target_accuracy": 0.87,
                            "epochs_to_target": (1.5 + s if opt == "kfac" else None)}}
               for opt in ("kfac", "sgd") for s in (0, 1)]
    plots.plot_results(_write(tmp_path / "cmp", records, {"name": "compare"}), sweep_plots=["epochs_to_target"])
    ax = figures[0].axes[0]
    bars = {round(p.get_x() + p.get_width() / 2): p for p in ax.patches}
    labels = [t.get_text() for t in ax.get_xticklabels()]
    missing = bars[labels.index("sgd")]
    assert missing.get_height() > 0 and missing.get_hatch() == "//"
    assert any("n/r" in t.get_text() for t in ax.texts)
    assert "±" in ax.get_title() and "sweep compare" in ax.get_title()


@pytest.mark.slow
def test_generic_plot_of_any_study(tmp_path, capsys):
    study = _hpinv_study(tmp_path)
    assert main(["plot", str(study), "--x", "matrix.n", "--y", "relative_error", "--hue", "solve.iterations"]) == 0
    assert (study / "figures" / "relative_error_vs_matrix_n_by_solve_iterations.png").is_file()
    assert main(["plot", str(study), "--x", "matrix.n", "--y", "nope"]) == 2
    assert "'nope' is in no record" in capsys.readouterr().err


def test_plot_into_an_unwritable_figures_directory_is_one_line(tmp_path, capsys):
    study = _hpinv_study(tmp_path)
    (study / "figures").write_text("a file where the figures directory should be")
    assert main(["plot", str(study), "--x", "matrix.n", "--y", "relative_error"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "figures" in err and len(err.splitlines()) == 1
