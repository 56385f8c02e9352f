"""Physical objects print one short line saying what they are (scikit-rf's habit), and one unit formatter."""
import warnings

import numpy as np
import pytest

from amc import AnalogSolver, CircuitConfig, MethodConfig
from amc.config import PRESETS
from amc.cost.presets import HardwareCostModel
from amc.hw.inv_array import InvArray
from amc.hw.mvm import AnalogMVM
from amc.units import format_energy, format_power, format_time, si


def one_line(obj) -> str:
    text = repr(obj)
    assert "\n" not in text and len(text) < 120, text
    return text


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_circuit_preset_prints_one_short_line_naming_its_physics(name):
    cfg = CircuitConfig.preset(name)
    text = one_line(cfg)
    assert name in text and cfg.opamp.name in text
    assert ("continuous" in text) if cfg.device.levels is None else (f"{cfg.device.levels} levels" in text)


def test_a_modified_config_and_the_hardware_objects_print_one_line():
    cfg = CircuitConfig.preset("rram-variability").replace(**{"device.levels": 16, "opamp.gain": 1e4,
                                                               "io.dac_bits": 8, "wires.row_ohm": 2.0})
    assert "16 levels" in one_line(cfg) and "A0 1e+04" in repr(cfg)
    h = np.array([[2.0, 0.3], [0.3, 1.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = AnalogSolver("rram")
        mapped = solver.program(h)
        array = InvArray(CircuitConfig.preset("rram"))
        array.program(h)
        mvm = AnalogMVM(CircuitConfig.preset("rram"), slices=2)
        result = mvm.multiply(h, np.ones(2))
    assert "G0 " in one_line(mapped) and "µS" in repr(mapped)
    one_line(solver)
    assert "2x2 programmed" in one_line(array)
    assert "2 slices" in one_line(mvm) and "2 arrays programmed" in repr(mvm)
    assert "reads" in one_line(result)
    one_line(MethodConfig.preset("hpinv-pcg"))
    assert "rram-ic" in one_line(HardwareCostModel.preset("rram-ic"))


def test_units_pick_the_engineering_prefix():
    assert si(3.5e-5, "S") == "35 µS" and si(5e-7, "S") == "500 nS" and si(16e6, "Hz") == "16 MHz"
    assert format_time(3.2e-5) == "32 µs" and format_time(90.0) == "90 s" and format_time(2.5e-12) == "2.5 ps"
    assert format_energy(3.48e-7) == "348 nJ" and format_power(1.67) == "1.67 W" and format_power(0.0) == "0 W"
    assert si(999.9e-9, "s", 3) == "1 µs"       # rounding up crosses the prefix, not "1e+03 ns"
