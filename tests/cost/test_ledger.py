"""Ledger arithmetic against hand calculations; the breakdown always sums to energy_j."""
import json

import numpy as np
import pytest

from amc.cost import COMPONENTS, Cost, HardwareCostModel, cost_of, settle_of_size, solve_counts
from amc.cost.ledger import mvm_read, programming
from amc.errors import AmcError, InputError
from amc.hw.counters import OperationCounts

HW = HardwareCostModel.preset("rram-ic")
E_ADC8 = 9.7e-15 * 2 ** (8 - 0.55)          # Walden: FOM x 2^ENOB, ENOB = 8 - 0.55


def test_conversion_energy_is_walden():
    assert E_ADC8 == pytest.approx(1.696e-12, rel=1e-3)
    c = cost_of(OperationCounts(dac_conversions=3, adc_conversions=5), HW, n=4)
    assert c.breakdown["ADC"] == pytest.approx(5 * E_ADC8)
    assert c.breakdown["DAC"] == pytest.approx(3 * E_ADC8)
    assert c.breakdown["digital control"] == pytest.approx(8 * 1.25e-12)
    assert c.time_s == 0.0  # conversions are timed per settle/read, not on their own


def test_programming_by_hand():
    # 32 cells of a 4-column array, a row (4 cells) at a time: 8 rows x 10 pulses x (100 ns pulse + 100 ns + 4 ns
    # verify) = 16.32 us; per cell 10 x (2 V x 100 uA x 100 ns / pump efficiency + (0.2 V)^2 x 17.75 uS x 104 ns +
    # one ADC conversion). The 2 V pulse from a 1.2 V supply needs a 1-stage Dickson pump: 2 / (2 x 1.2) x 0.7.
    t, e = programming(32, 4, HW)
    assert t == pytest.approx(8 * 10 * 204e-9)
    pump = 2.0 / (2 * 1.2) * 0.7
    assert HW.write.pump_efficiency() == pytest.approx(pump)
    per_cell = 10 * (2.0 * 100e-6 * 100e-9 / pump + 0.04 * 17.75e-6 * 104e-9 + E_ADC8)
    assert e == pytest.approx(32 * per_cell)
    c = cost_of(OperationCounts(programmings=1, cells_programmed=32), HW, n=4)
    assert c.breakdown["programming"] == pytest.approx(32 * per_cell)
    assert c.time_s == pytest.approx(16.32e-6)
    assert c.cell_cycles == 32 * 10       # one endurance cycle per write pulse


def test_direct_solve_by_hand():
    n, k = 8, 3
    settle = settle_of_size(n, 0.1, HW)
    c = cost_of(solve_counts(n, k), HW, n=n, settle=settle)
    # time: programming 128 cells / 8 per row = 16 rows x 2.04 us; 3 x (DAC 4 ns + settle + ADC 4 ns)
    t_settle = (np.log(1000) + 0.28) / (2 * np.pi * 695.1e6 * 0.1)
    assert c.time_s == pytest.approx(16 * 2.04e-6 + 3 * (8e-9 + t_settle))
    # energy: 16 op-amps x 2.4 V x 58.3 uA x t_settle x 1.034 per settle
    assert c.breakdown["opamps"] == pytest.approx(3 * 16 * 2.4 * 58.3e-6 * t_settle * 1.034)
    assert c.breakdown["ADC"] == pytest.approx(24 * E_ADC8)


def test_mvm_read_by_hand():
    t, e = mvm_read(4, 4, HW)
    assert t == pytest.approx(np.log(2 ** 9) / (2 * np.pi * 695.1e6 * 0.5))
    g_mean = 0.5e-6 + 0.5 * 34.5e-6
    assert e["crosspoint array"] == pytest.approx(2 * 16 * 0.04 * g_mean * t)
    assert e["opamps"] == pytest.approx(4 * (2.4 * 58.3e-6 * t + 1.2 * 4 * 2 * g_mean * 0.2 * t))


def test_digital_remainder_and_parallel_arrays():
    c = cost_of(OperationCounts(digital_flops=1e6), HW, n=10)
    assert c.breakdown["digital remainder"] == pytest.approx(2.3e-6)
    assert c.time_s == pytest.approx(1e6 / 10e9)
    settle = settle_of_size(8, 0.1, HW)
    one = cost_of(OperationCounts(inv_settles=4), HW, n=8, settle=settle)
    four = cost_of(OperationCounts(inv_settles=4), HW, n=8, settle=settle, parallel_arrays=4)
    assert four.time_s == pytest.approx(one.time_s / 4)
    assert four.energy_j == pytest.approx(one.energy_j)


@pytest.mark.parametrize("counts", [
    OperationCounts(programmings=2, cells_programmed=512, inv_settles=7, mvm_reads=11, dac_conversions=300,
                    adc_conversions=290, digital_flops=12345.0),
    OperationCounts(inv_settles=1, dac_conversions=16, adc_conversions=16),
])
def test_breakdown_sums_to_energy_and_survives_arithmetic(counts):
    c = cost_of(counts, HW, n=16, settle=settle_of_size(16, 0.05, HW))
    assert set(c.breakdown) == set(COMPONENTS)
    assert sum(c.breakdown.values()) == pytest.approx(c.energy_j, rel=1e-15)
    total = c + c * 2.5
    assert sum(total.breakdown.values()) == pytest.approx(total.energy_j, rel=1e-15)
    assert total.energy_j == pytest.approx(3.5 * c.energy_j)
    d = json.loads(json.dumps(total.to_dict()))
    assert set(d) == {"time_s", "energy_j", "breakdown"}


def test_bad_input_is_named():
    with pytest.raises(InputError, match="lambda_min="):
        cost_of(OperationCounts(inv_settles=1), HW, n=4)
    with pytest.raises(InputError, match="non-negative"):
        cost_of(OperationCounts(inv_settles=-1), HW, n=4, settle=settle_of_size(4, 0.1, HW))
    with pytest.raises(InputError, match="lambda_min"):
        settle_of_size(4, -0.1, HW)
    with pytest.raises(AmcError, match="unknown cost preset"):
        HardwareCostModel.preset("nope")
    with pytest.raises(AmcError, match="gain-bandwidth"):
        HardwareCostModel.for_circuit("ideal")


def test_lambda_min_shortcut_and_combinators():
    counts = OperationCounts(inv_settles=2, dac_conversions=16, adc_conversions=16)
    a = cost_of(counts, HW, n=8, lambda_min=0.1)
    b = cost_of(counts, HW, n=8, settle=settle_of_size(8, 0.1, HW))
    assert a.to_dict() == b.to_dict()
    slow = cost_of(counts, HW, n=8, lambda_min=0.01)
    par, ser = Cost.parallel(a, slow), Cost.serial(a, slow)
    assert par.energy_j == pytest.approx(ser.energy_j)
    assert par.time_s == pytest.approx(slow.time_s)
    assert ser.time_s == pytest.approx(a.time_s + slow.time_s)
    with pytest.raises(InputError, match="not both"):
        cost_of(counts, HW, n=8, lambda_min=0.1, settle=settle_of_size(8, 0.1, HW))


def test_price_arrays():
    from amc.cost import price_arrays
    inv = OperationCounts(programmings=1, cells_programmed=128, inv_settles=3, dac_conversions=24, adc_conversions=24)
    mvm = OperationCounts(programmings=1, cells_programmed=128, mvm_reads=5, dac_conversions=40, adc_conversions=40)
    a = cost_of(inv, HW, n=8, lambda_min=0.05)
    b = cost_of(mvm, HW, n=8)
    both = price_arrays([(inv, 8, 0.05), (mvm, 8, None)], HW)
    assert both.energy_j == pytest.approx(a.energy_j + b.energy_j)
    assert both.time_s == pytest.approx(max(a.time_s, b.time_s))
    assert price_arrays([(inv, 8, 0.05), (mvm, 8, None)], HW, parallel=False).time_s == pytest.approx(
        a.time_s + b.time_s)
