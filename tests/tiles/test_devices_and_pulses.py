"""Device responses and pulse trains against their closed forms (Wu et al. 2024 eq. 3; Gokmen & Vlasov 2016)."""
import numpy as np
import pytest

from amc.errors import ConfigError
from amc.tiles.array import PulsedArray
from amc.tiles.devices import DeviceModel, preset
from amc.tiles.pulses import expected_counts, stochastic_pulse_trains


def test_soft_bounds_mean_field_is_the_closed_form():
    tau = 1.7
    device = DeviceModel("soft-bounds", dw_min=1e-3, w_max=tau, w_min=-tau)
    rng = np.random.default_rng(0)
    cells = device.draw_cells((6, 7), rng)
    w = rng.uniform(-0.9 * tau, 0.9 * tau, (6, 7))
    delta = 0.05 * rng.standard_normal((6, 7))
    expected = w + delta - np.abs(delta) / tau * w
    np.testing.assert_allclose(cells.mean_field(w, delta), expected, rtol=0, atol=1e-15)


def test_pulse_train_mean_matches_the_mean_field_update():
    """One rank-one update ΔW = η d xᵀ by stochastic pulse trains, repeated from the same W: its mean is the
    soft-bounds closed form (to a few standard errors plus the second-order term of ~100 pulses)."""
    tau, dw = 1.0, 1e-4
    device = DeviceModel("soft-bounds", dw_min=dw, w_max=tau, w_min=-tau)
    rng = np.random.default_rng(1)
    d, x, lr = np.array([1.0, -0.5, 0.25]), np.array([0.8, -0.3, 0.6, 1.0]), 0.01
    w0 = rng.uniform(-0.6, 0.6, (3, 4))
    array = PulsedArray(device, (3, 4), rng, update="pulsed", bit_length=255)
    finals = []
    for _ in range(3000):
        array.w = w0.copy()
        array.update(d, x, lr)
        finals.append(array.w)
    finals = np.array(finals)
    delta = lr * np.outer(d, x)
    expected = w0 + delta - np.abs(delta) / tau * w0
    se = finals.std(axis=0) / np.sqrt(len(finals))
    second_order = 0.5 * (np.abs(delta) / tau) ** 2 * tau
    assert np.all(np.abs(finals.mean(axis=0) - expected) < 4 * se + second_order + 1e-12)
    # and the coincidence counts are the expected ones on average: BL p q = η|d x|/dw
    assert array.clipped_lines == 0


def test_coincidence_counts_average_to_eta_dx_over_dw():
    rng = np.random.default_rng(2)
    d, x = rng.standard_normal(5), rng.standard_normal(6)
    counts = np.mean([stochastic_pulse_trains(d, x, 0.02, 1e-3, 100, rng).counts for _ in range(2000)], axis=0)
    mean = expected_counts(d, x, 0.02, 1e-3)
    np.testing.assert_allclose(counts, mean, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("kind, shape", [("soft-bounds", {}), ("linear-step", {"gamma_up": 0.3, "gamma_down": 0.6})])
def test_affine_pulse_closed_form_equals_pulse_by_pulse(kind, shape):
    device = DeviceModel(kind, dw_min=0.01, w_max=1.2, w_min=-0.8, up_down=0.1, shape=shape)
    rng = np.random.default_rng(3)
    cells = device.draw_cells((4, 5), rng)
    w = rng.uniform(-0.7, 1.1, (4, 5))
    counts = rng.integers(0, 60, (4, 5))
    sign = np.where(rng.random((4, 5)) < 0.5, -1.0, 1.0)
    np.testing.assert_allclose(cells.apply_pulses(w, counts, sign), cells.apply_pulses(w, counts, sign, exact=True),
                               rtol=0, atol=1e-12)


def test_symmetric_point_of_asymmetric_soft_bounds():
    """Soft bounds on [-τ, τ] with up/down scales 1 ± u balance at w = u·τ."""
    device = DeviceModel("soft-bounds", dw_min=1e-3, w_max=2.0, w_min=-2.0, up_down=0.15)
    assert device.symmetric_point() == pytest.approx(0.3, abs=1e-9)


def test_pow_step_with_unit_exponent_is_soft_bounds_and_a_table_reproduces_it(tmp_path):
    soft = DeviceModel("soft-bounds", dw_min=1e-3, w_max=1.0, w_min=-1.0).draw_cells((50,), np.random.default_rng(0))
    power = DeviceModel("pow-step", dw_min=1e-3, w_max=1.0, w_min=-1.0).draw_cells((50,), np.random.default_rng(0))
    w = np.linspace(-0.99, 0.99, 50)
    np.testing.assert_allclose(power.step_up(w), soft.step_up(w), rtol=1e-12)
    np.testing.assert_allclose(power.step_down(w), soft.step_down(w), rtol=1e-12)
    # a measured table of a soft-bounds device (ΔG per pulse vs G, in µS) gives back its response
    g = np.linspace(1.0, 21.0, 41)
    dg_up, dg_down = 0.05 * (21.0 - g) / 10.0, 0.05 * (g - 1.0) / 10.0
    path = tmp_path / "dev.csv"
    path.write_text("g,dg_up,dg_down\n" + "".join(f"{a},{b},{c}\n" for a, b, c in zip(g, dg_up, dg_down)))
    table = DeviceModel("table", dw_min=1e-3, w_max=1.0, w_min=-1.0, shape={"path": str(path)})
    cells = table.draw_cells((50,), np.random.default_rng(0))
    np.testing.assert_allclose(cells.step_up(w) / cells.step_up(np.zeros(1)), soft.step_up(w) / 1e-3, rtol=1e-9)
    np.testing.assert_allclose(cells.step_down(w) / cells.step_down(np.zeros(1)), soft.step_down(w) / 1e-3, rtol=1e-9)


def test_exp_step_steps_collapse_near_the_bound():
    cells = DeviceModel("exp-step", dw_min=1e-3, shape={"A_up": 0.2, "gamma_up": 3.0, "A_down": 0.2,
                                                        "gamma_down": 3.0}).draw_cells((3,), np.random.default_rng(0))
    up = cells.step_up(np.array([-0.5, 0.0, 0.5]))
    assert up[1] == pytest.approx(1e-3) and up[0] > up[1] > up[2]
    assert cells.step_up(np.array([0.99]))[0] == pytest.approx(1e-3 * max(0, 1 - 0.2 * np.exp(3 * 0.99)) / 0.8)


def test_finite_states_and_variation():
    device = DeviceModel("constant-step", dw_min=None, states=400, dw_min_dtod=0.3, dw_min_std=0.2)
    assert device.step == pytest.approx(2.0 / 400)
    cells = device.draw_cells((200, 200), np.random.default_rng(4))
    assert np.std(cells.dw_up / device.step) == pytest.approx(0.3, rel=0.05)
    # cycle-to-cycle: one pulse's steps spread by dw_min_std around the cell's mean
    w = np.zeros((200, 200))
    moved = cells.apply_pulses(w, np.ones_like(w, dtype=int), np.ones_like(w), rng=np.random.default_rng(5))
    live = cells.dw_up > 0
    assert np.std(moved[live] / cells.dw_up[live]) == pytest.approx(0.2, rel=0.05)


def test_symmetric_point_calibration_finds_and_subtracts_it():
    device = DeviceModel("soft-bounds", dw_min=2e-3, w_max=1.0, w_min=-1.0, up_down=0.2, up_down_dtod=0.05)
    array = PulsedArray(device, (3, 4), np.random.default_rng(6), update="pulsed")
    ref = array.calibrate_symmetric_point(lambda: array.w.copy(), cycles=3000)
    np.testing.assert_allclose(ref, array.cells.symmetric_points(), atol=2 * device.step)
    assert np.all(np.abs(array.weights) < 2 * device.step)
    assert array.counts.cell_pulses == 2 * 3000 * 12


def test_presets_name_their_source_and_bad_devices_are_refused():
    for name in ("wu2024-softbounds", "rram-softbounds", "capacitor-linear", "gokmen-vlasov", "ideal"):
        assert preset(name).source
    with pytest.raises(ConfigError, match="no effect on a soft-bounds"):
        DeviceModel("soft-bounds", shape={"gamma_up": 2})
    with pytest.raises(ConfigError, match="unknown device preset"):
        preset("nope")
    with pytest.raises(ConfigError, match="dw_min or states"):
        DeviceModel.from_dict({"kind": "soft-bounds", "dw_min": 0.1, "states": 10})
