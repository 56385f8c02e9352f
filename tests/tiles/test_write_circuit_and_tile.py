"""The write circuit against plain ngspice runs of the same lines; tile reads against W x and ngspice."""
import numpy as np
import pytest

from amc.config import CircuitConfig
from amc.errors import ConfigError
from amc.tiles.array import PulsedArray
from amc.tiles.devices import DeviceModel
from amc.tiles.tile import WeightTile
from amc.tiles.write_circuit import PulseModel, WriteCircuit, plain_ngspice_cell_voltages


@pytest.mark.parametrize("scheme", ["v/2", "v/3"])
def test_effective_amplitudes_match_a_plain_ngspice_run_of_the_same_lines(scheme):
    rng = np.random.default_rng(0)
    g = rng.uniform(0.5e-6, 35e-6, (7, 6))
    circuit = WriteCircuit(g, 40.0, 25.0)        # large segments so the IR drop is well above ngspice's tolerance
    amplitude = circuit.effective_amplitudes(scheme)
    assert circuit.ngspice_runs == 1
    for i, j in [(0, 0), (6, 5), (3, 2), (6, 0)]:
        pattern = circuit.pattern(i, j, scheme, v=1.2)
        plain = plain_ngspice_cell_voltages(g, 40.0, 25.0, pattern)
        assert amplitude[i, j] * 1.2 == pytest.approx(plain[i, j], rel=1e-7)
        np.testing.assert_allclose(circuit.cell_voltages(pattern), plain, rtol=0, atol=1e-7)
    # the far corner loses most; with these wires the loss is a few per mille
    assert amplitude[6, 5] < amplitude[0, 0] < 1.0 and amplitude[6, 5] > 0.95


def test_no_wires_gives_the_nominal_voltages_of_each_scheme():
    g = np.full((4, 5), 10e-6)
    circuit = WriteCircuit(g, 0.0, 0.0)
    np.testing.assert_allclose(circuit.effective_amplitudes("v/2"), 1.0)
    np.testing.assert_allclose(circuit.effective_amplitudes("v/3"), 1.0)
    v2 = circuit.cell_voltages(circuit.pattern(1, 2, "v/2"))
    v3 = circuit.cell_voltages(circuit.pattern(1, 2, "v/3"))
    assert v2[1, 2] == 1.0 and v2[1, 0] == 0.5 and v2[0, 2] == 0.5 and v2[0, 0] == 0.0
    assert v3[1, 2] == 1.0 and np.allclose(np.abs(np.delete(np.delete(v3, 1, 0), 2, 1)), 1 / 3)


def test_ir_drop_shifts_the_symmetric_point():
    """Different SET/RESET overdrive: a cell that gets 97 % of the pulse moves its up and down steps by different
    factors, so its soft-bounds symmetric point leaves 0 by τ(s_up - s_down)/(s_up + s_down)."""
    model = PulseModel(v_set=1.2, v_th_set=0.8, v_reset=1.5, v_th_reset=0.9)
    up, down = model.factors(np.array([0.97]))
    assert up[0] == pytest.approx((0.97 * 1.2 - 0.8) / 0.4) and down[0] == pytest.approx((0.97 * 1.5 - 0.9) / 0.6)
    cells = DeviceModel("soft-bounds", dw_min=1e-3).draw_cells((1,), np.random.default_rng(0))
    shifted = cells.with_write_factors(up, down).symmetric_points()
    assert shifted[0] == pytest.approx((up[0] - down[0]) / (up[0] + down[0]), abs=1e-9)


def _tile(config, mapping="differential", shape=(3, 5)):
    device = DeviceModel("soft-bounds", dw_min=1e-3)
    array = PulsedArray(device, shape, np.random.default_rng(1), update="mean-field")
    array.w = np.random.default_rng(2).uniform(-0.8, 0.8, shape)
    return WeightTile(array, config, mapping=mapping)


@pytest.mark.parametrize("mapping", ["differential", "reference"])
def test_tile_reads_are_w_x_and_w_transpose_d_with_counted_conversions(mapping):
    tile = _tile(CircuitConfig.preset("ideal"), mapping)
    x, d = np.random.default_rng(3).standard_normal((5, 4)), np.random.default_rng(4).standard_normal((3, 4))
    np.testing.assert_allclose(tile.forward(x), tile.array.w @ x, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tile.backward(d), tile.array.w.T @ d, rtol=1e-12, atol=1e-14)
    assert tile.counts.mvm_reads == 8
    assert tile.counts.dac_conversions == 4 * 5 + 4 * 3 and tile.counts.adc_conversions == 4 * 3 + 4 * 5


def test_tile_adc_and_saturation_follow_the_periphery():
    config = CircuitConfig.preset("rram").replace(**{"io.adc_bits": 6, "io.dac_bits": 6})
    tile = _tile(config)
    x = np.random.default_rng(5).standard_normal(5)
    y = tile.forward(x)
    exact = tile.array.w @ x
    # 6-bit ADC over the swing, TIA aimed at target_swing for the worst case: the error is a few LSB of that range
    lsb = np.max(np.abs(tile.array.device.w_max)) * 5 * np.max(np.abs(x)) / tile.target_swing / 31
    assert np.max(np.abs(y - exact)) < lsb and np.max(np.abs(y - exact)) > 0


def test_wired_tile_reads_run_in_ngspice_and_agree_with_the_closed_form_at_small_wires():
    config = CircuitConfig.preset("ideal").replace(**{"wires.row_ohm": 1e-3, "wires.col_ohm": 1e-3})
    tile = _tile(config)
    x = np.random.default_rng(6).standard_normal((5, 3))
    y = tile.forward(x)
    assert tile.counts.ngspice_runs == 1
    np.testing.assert_allclose(y, tile.array.w @ x, rtol=1e-4, atol=1e-6)


def test_tile_refuses_bad_input():
    with pytest.raises(ConfigError, match="mapping"):
        _tile(CircuitConfig.preset("ideal"), mapping="single")
    with pytest.raises(ConfigError, match="expects 5"):
        _tile(CircuitConfig.preset("ideal")).forward(np.ones(4))
