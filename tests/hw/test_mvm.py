"""Analog MVM circuit (ngspice): ideal accuracy, bit slicing, tiling, the TIA's finite-gain error."""
import numpy as np
import pytest

from amc import AnalogMVM, CircuitConfig, bit_slice
from amc.errors import ConfigError, InputError
from amc.hw.mvm import build_mvm_deck


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_ideal_mvm_equals_numpy():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((12, 9))          # rectangular: 12 TIAs, 9 DAC columns
    v = rng.standard_normal((9, 3))
    result = AnalogMVM("ideal").multiply(h, v)
    assert result.y.shape == (12, 3)
    assert _rel(result.y, h @ v) <= 1e-9
    assert result.reads == 3 and result.arrays == 1 and not result.saturated


def test_bit_sliced_mvm_beats_one_8_level_array():
    rng = np.random.default_rng(2)
    h = rng.standard_normal((16, 16))
    v = rng.standard_normal(16)
    cfg = CircuitConfig.preset("rram")                    # 8 levels, A0 = 1e5, v_sat 4.5 V
    one = AnalogMVM(cfg, slices=1).multiply(h, v)
    four = AnalogMVM(cfg, slices=4).multiply(h, v)
    eight = AnalogMVM(cfg, slices=8, gain_calibration=True).multiply(h, v)
    e1, e4, e8 = _rel(one.y, h @ v), _rel(four.y, h @ v), _rel(eight.y, h @ v)
    assert 0.03 < e1 < 0.5              # one 8-level array: a few bits
    assert e4 < 2e-3 and e4 < e1 / 50   # 4 slices x 3 bits
    assert e8 < 1e-6                    # 8 slices, TIA gain calibrated: > 20 bits
    assert four.reads == 4 and eight.arrays == 8


def test_uncalibrated_tia_gain_error_matches_closed_form():
    # V_out = -R_f (G V) / (1 + (1 + R_f S)/A0): with A0 = 1e5 the raw MVM is off by ~1e-4, calibration removes it.
    rng = np.random.default_rng(3)
    h = rng.standard_normal((8, 8))
    v = rng.standard_normal(8)
    cfg = CircuitConfig.preset("rram").replace(**{"device.levels": None})
    raw = AnalogMVM(cfg)
    y_raw = raw.multiply(h, v).y
    arr = raw.program(h)[0]
    factor = 1.0 / (1.0 + (1.0 + arr.rf * arr.row_total) / cfg.opamp.gain)
    assert np.allclose(y_raw, factor * (h @ v), rtol=1e-8, atol=0)
    y_cal = AnalogMVM(cfg, gain_calibration=True).multiply(h, v).y
    assert _rel(y_cal, h @ v) < 1e-8 < _rel(y_raw, h @ v)


def test_slicing_digits_fit_levels_and_reconstruct():
    rng = np.random.default_rng(4)
    h = rng.standard_normal((6, 6))
    device = CircuitConfig.preset("rram").device
    s = bit_slice(h, device, slices=6)
    assert s.base == 8 and s.max_digit == 7
    assert all(np.all(d == np.round(d)) and np.max(np.abs(d)) <= 7 for d in s.digits)
    assert np.max(np.abs(s.remainder)) <= 0.5 * s.weight(5) + 1e-15


def test_tiled_and_dac_sliced_inputs():
    rng = np.random.default_rng(5)
    h = rng.standard_normal((10, 10))
    v = rng.standard_normal(10)
    tiled = AnalogMVM("ideal", array_size=4).multiply(h, v)
    assert tiled.arrays == 9 and _rel(tiled.y, h @ v) < 1e-9
    cfg = CircuitConfig.preset("ideal").replace(**{"io.dac_bits": 6})
    coarse = AnalogMVM(cfg, input_slices=1).multiply(h, v)
    fine = AnalogMVM(cfg, input_slices=4).multiply(h, v)
    assert _rel(fine.y, h @ v) < 1e-6 < _rel(coarse.y, h @ v)


def test_deck_is_readable_and_bad_input_rejected():
    deck = build_mvm_deck(np.full((2, 2), 1e-5), np.full((2, 2), 1e-6), np.array([0.1, -0.2]), 1e4,
                          CircuitConfig.preset("ideal"))
    assert "xtia_0 0 row_0 out_0" in deck and "rf_1 row_1 out_1" in deck and "vn_1 cn_1 0 DC 0.2" in deck
    mvm = AnalogMVM("ideal")
    with pytest.raises(InputError):
        mvm.multiply(np.ones((3, 3)), np.ones(4))
    with pytest.raises(ConfigError):
        AnalogMVM("ideal", slices=0)


def test_batch_response_equals_per_read_multiply():
    """The MVM response measured in one quasi-static batch per array equals n separate ngspice reads."""
    import numpy as np
    from amc import AnalogMVM, CircuitConfig
    h = np.random.default_rng(4).standard_normal((6, 5))
    config = CircuitConfig.preset("rram")
    per_read = AnalogMVM(config, slices=3, gain_calibration=True).multiply(h, np.eye(5)).y
    every = config.replace(**{"simulation.verify_every": 1})    # no re-stamping: one ngspice batch per array
    mvm = AnalogMVM(every, slices=3, gain_calibration=True)
    batch = mvm.response(h)
    np.testing.assert_allclose(batch, per_read, rtol=0, atol=1e-9 * np.abs(per_read).max())
    assert mvm.counts.mvm_reads == 0 and mvm.counts.ngspice_runs == len(mvm.programmed_arrays) == 3
    assert (mvm.counts.programmings_verified, mvm.counts.programmings_restamped) == (3, 0)
    # re-stamped (amc/hw/mvm_restamp.py): the three slice arrays share a topology; the first is ngspice's batch
    # plus its matrix export, the other two are re-stamped into that matrix
    mvm = AnalogMVM(config, slices=3, gain_calibration=True)
    restamped = mvm.response(h)
    np.testing.assert_allclose(restamped, per_read, rtol=0, atol=1e-9 * np.abs(per_read).max())
    assert mvm.counts.ngspice_runs == 2
    assert (mvm.counts.programmings_verified, mvm.counts.programmings_restamped) == (1, 2)
