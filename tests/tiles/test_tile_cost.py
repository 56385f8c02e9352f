"""The tile ledger against a hand count."""
import pytest

from amc.cost.tiles import TileCostModel
from amc.hw.counters import OperationCounts


def test_tile_cost_is_the_hand_count():
    model = TileCostModel()
    counts = OperationCounts(cell_pulses=10, driver_pulses=4, update_cycles=2, mvm_reads=3, dac_conversions=6,
                             adc_conversions=9)
    price = model.price(counts, rows=2, cols=4, bit_length=31)
    v, t, g = 1.2, 100e-9, 17.75e-6
    write = 10 * v * v * g * t + 4 * (v / 2) ** 2 * g * t * 3     # a line half-selects (2 + 4)/2 cells on average
    read = 15 * 256 * 9.7e-15 + 3 * 8 * 0.2 ** 2 * g * 4e-9
    assert price["energy_write_j"] == pytest.approx(write) and price["energy_read_j"] == pytest.approx(read)
    assert price["time_s"] == pytest.approx(2 * 31 * 200e-9 + 3 * 4e-9)
    assert OperationCounts.from_dict(counts.to_dict()) == counts
