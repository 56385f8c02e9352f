"""Figures state their conditions truthfully and do not exaggerate: continuous-cell points drawn, identical curves
noted, many series distinguishable with the legend beside the data, no 'mean over' the axis, accuracy not zoomed,
titles wrapped, and the cost figure's ratios not inflated by log-axis bars."""
import matplotlib

matplotlib.use("Agg")

import pytest

from workflow import plots


@pytest.fixture
def captured(monkeypatch):
    figures = []

    def keep(fig, out, name):
        figures.append(fig)
        return [out / f"{name}.png"]
    monkeypatch.setattr(plots, "_save", keep)
    return figures


def rec(params, **metrics):
    return {"status": "ok", "params": params, "metrics": metrics}


def legend_labels(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_continuous_cells_are_drawn_not_dropped(captured, tmp_path):
    records = [rec({"device.levels": lv}, relative_error=e) for lv, e in ((8, 0.3), (16, 0.1), (None, 0.01))]
    assert plots.line_figure(records, "device.levels", "relative_error", None, tmp_path, "f")
    ax = captured[0].axes[0]
    assert any(line.get_linestyle() == ":" and abs(line.get_ydata()[0] - 0.01) < 1e-12 for line in ax.lines)
    assert any("continuous cells" in t for t in legend_labels(captured[0]))


def test_identical_curves_are_noted(captured, tmp_path):
    records = [rec({"device.levels": 8, "opamp.gain": g}, relative_error=0.2) for g in (1e4, 1e5)] + \
              [rec({"device.levels": 16, "opamp.gain": g}, relative_error=0.1) for g in (1e4, 1e5)]
    plots.line_figure(records, "device.levels", "relative_error", "opamp.gain", tmp_path, "f")
    labels = legend_labels(captured[0])
    assert sum("identical to" in t for t in labels) == 1, labels


def test_sixteen_series_get_sixteen_colours_and_the_legend_beside_the_axes(captured, tmp_path):
    records = [rec({"matrix.n": n, "opamp.gain": float(g)}, relative_error=g * n * 1e-3)
               for g in range(1, 17) for n in (4, 8)]
    plots.line_figure(records, "matrix.n", "relative_error", "opamp.gain", tmp_path, "f")
    fig = captured[0]
    colours = {tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
               for line in fig.axes[0].lines if len(line.get_xdata()) == 2}
    assert len(colours) == 16
    legend = fig.axes[0].get_legend()
    assert legend.get_bbox_to_anchor().x0 > fig.axes[0].get_window_extent().x1 - 1   # outside, to the right


def test_a_seed_on_the_x_axis_is_not_said_to_be_averaged(captured, tmp_path):
    meta = {"name": "s", "spec": {"base": {"circuit": "rram"}}}
    records = [rec({"matrix.seed": s}, relative_error=0.1 * (s + 1)) for s in range(3)]
    subtitle = plots.conditions(meta, records)
    assert "mean ± std over matrix.seed" in subtitle
    plots.line_figure(records, "matrix.seed", "relative_error", None, tmp_path, "f", subtitle=subtitle)
    assert "mean ± std over" not in captured[0].axes[0].get_title()


def test_accuracy_is_not_zoomed_into_a_slope(captured, tmp_path):
    records = [rec({"device.program_sigma": s}, final_test_accuracy=a) for s, a in ((0.0, 0.458), (0.1, 0.450))]
    plots.line_figure(records, "device.program_sigma", "final_test_accuracy", None, tmp_path, "f")
    lo, hi = captured[0].axes[0].get_ylim()
    assert hi - lo >= 10 - 1e-9 and lo <= 45.0 <= 45.8 <= hi


def test_long_titles_wrap_and_every_condition_line_is_kept(captured, tmp_path):
    records = [rec({"matrix.n": n}, relative_error=0.1) for n in (4, 8)]
    subtitle = plots._wrap("; ".join(f"key{i} = {i}" for i in range(60)), 85)
    plots.line_figure(records, "matrix.n", "relative_error", None, tmp_path, "f", title="t " * 60,
                      subtitle=subtitle)
    title = captured[0].axes[0].get_title()
    assert "key59 = 59" in title and max(len(line) for line in title.splitlines()) <= 85


def test_cost_figure_draws_points_with_true_ratios(tmp_path):
    from amc.cost import HardwareCostModel, cost_of
    from amc.cost.figure import plot_costs
    from amc.cost.ledger import settle_of_size, solve_counts
    hw = HardwareCostModel.for_circuit("rram-ic")
    cost = cost_of(solve_counts(16, 1), hw, n=16, settle=settle_of_size(16, 0.1, hw))
    import matplotlib.pyplot as plt
    made = []
    real = plt.subplots

    def spy(*a, **k):
        fig, axes = real(*a, **k)
        made.append(fig)
        return fig, axes
    plt.subplots = spy
    try:
        plot_costs({"analog": cost}, tmp_path / "c.png", "t", "conditions " * 30,
                   {"CPU": (2.7 * cost.time_s, 20 * cost.energy_j)})
    finally:
        plt.subplots = real
    time_axis = made[0].axes[1]
    assert time_axis.get_yscale() == "log" and not time_axis.patches          # no bars on a log axis
    assert "2.7x" in [t.get_text() for t in time_axis.texts]                    # the ratio, written out
