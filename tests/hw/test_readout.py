"""The one read-out (auto-range, converters, x from V) and the typed results of the simulation strategies."""
import numpy as np
import pytest

from amc import CircuitConfig, InvArray
from amc.hw import analyses
from amc.hw.netlist import build_deck, output_node
from amc.hw.readout import Readout
from amc.hw.runner import session
from workflow.matrices import random_spd

RRAM = CircuitConfig.preset("rram").replace(**{"device.levels": None})
IDEAL = CircuitConfig.preset("ideal")


def _raw(deck: str, vectors: list) -> dict:
    """ngspice's own vectors for a deck, run afresh (what a typed result must reproduce)."""
    ng = session()
    ng.load(deck)
    try:
        return ng.run(vectors)
    finally:
        ng.clean()


def test_auto_range_rescales_and_resolves_on_saturation_and_reports_it():
    config = RRAM.replace(**{"io.max_rescales": 4})
    readout = Readout(config)
    array = InvArray(config).program(random_spd(5, seed=2))
    mapped = array.mapped
    g = np.random.default_rng(3).standard_normal((5, 1))
    r_closed = np.linalg.inv(mapped.effective_conductance(config.opamp.gain))     # V = -R I (linear circuit)
    v_sat = config.opamp.v_sat

    calls = []

    def settle(currents):               # the linear circuit clipped at the rails: a saturating first guess
        calls.append(currents.copy())
        return np.clip(-r_closed @ currents, -v_sat, v_sat), np.zeros(currents.shape[1]), np.zeros(currents.shape[1])

    # a first guess that would put the largest output at 1.5 v_sat: the outputs are pinned at the rails
    first = 1.5 * v_sat / np.abs(r_closed @ readout.dac(g[:, 0], 1.0)).max()
    readout.initial_i0 = lambda m, col: first
    ranged = readout.auto_range(mapped, g, settle)
    # one re-range: the clipped outputs sit at v_sat, so I0 shrinks by 0.5 target_swing v_sat / v_sat, which puts
    # the largest output at 0.375 v_sat (linear, not under-used without converters): accepted
    assert (ranged.rescales, ranged.settles, len(calls)) == (1, 2, 2)
    assert ranged.i0[0] == pytest.approx(first * 0.5 * config.io.target_swing, rel=1e-12)
    assert np.abs(ranged.outputs).max() == pytest.approx(0.375 * v_sat, rel=1e-9)
    assert not ranged.saturated.any()
    x = readout.x_from_v(ranged.outputs, ranged.i0, g, mapped.g0)
    np.testing.assert_allclose(x, np.linalg.solve(mapped.effective_conductance(config.opamp.gain) / mapped.g0, g),
                               rtol=1e-12)
    # a fixed I0 gets one attempt: the saturation is reported, not corrected
    fixed = Readout(config.replace(**{"io.i0_a": 1e-3})).auto_range(mapped, g, settle)
    assert fixed.rescales == 0 and fixed.saturated.all()

    # the same through ngspice: the array re-solves, reports the rescale and counts both settles
    reference = array.solve(g[:, 0])                     # the first guess in range: one settle
    assert reference.rescales == 0 and array.counts.inv_settles == 1
    array.readout.initial_i0 = lambda m, col: 1e-3
    sol = array.solve(g[:, 0])
    assert sol.rescales >= 1 and not sol.saturated_any
    assert array.counts.inv_settles == 1 + 1 + sol.rescales
    # the same programmed circuit in its linear region: only the limiter's compression differs with I0
    np.testing.assert_allclose(sol.x, reference.x, rtol=1e-5)


def test_adc_quantisation_step_matches_bits_and_full_scale_by_hand():
    config = RRAM.replace(**{"io.adc_bits": 8, "io.adc_full_scale_fraction": 0.8, "io.dac_bits": 6})
    readout = Readout(config)
    full_scale = 0.8 * 4.5                              # adc_full_scale_fraction x the AD823 preset's v_sat
    step = full_scale / (2 ** 7 - 1)                    # 8 bits: 127 levels per polarity (mid-tread)
    v = np.linspace(-3.5, 3.5, 1001)
    q = readout.adc(v)
    np.testing.assert_allclose(q / step, np.round(q / step), atol=1e-9)
    assert np.abs(q - v).max() <= step / 2 + 1e-12
    assert np.min(np.diff(np.unique(q))) == pytest.approx(step, rel=1e-9)
    np.testing.assert_allclose(readout.adc(np.array([-9.0, 9.0])), [-full_scale, full_scale])
    # the DAC: 6 bits over max|g|, so 31 levels of I0 / 31 and the largest input at exactly I0
    g = np.array([0.3, -1.7, 0.05, 1.1])
    currents = readout.dac(g, 2e-6)
    np.testing.assert_allclose(currents / (2e-6 / 31), np.round(g / 1.7 * 31), atol=1e-9)
    assert np.abs(currents).max() == pytest.approx(2e-6, rel=1e-15)
    assert Readout(RRAM).adc(v) is v                    # no bits: the ideal converter passes V through


def test_x_from_v_is_the_mapping_g0_i0_closed_form():
    array = InvArray(IDEAL).program(random_spd(6, seed=4))
    mapped, readout = array.mapped, array.readout
    g = np.random.default_rng(5).standard_normal(6)
    i0 = readout.initial_i0(mapped, g)
    currents = readout.dac(g, i0)
    result = analyses.OperatingPoints(array.config, array.rng, ("test",)).run(mapped, currents[:, None])
    v = result.outputs(6)[:, 0]
    # the circuit: G V = -I on the rows with G = G0 H_mapped (plus the finite-gain diagonal)
    g_eff = mapped.effective_conductance(array.config.opamp.gain)
    np.testing.assert_allclose(v, -np.linalg.solve(g_eff, currents), rtol=1e-9)
    x = readout.x_from_v(v[:, None], np.array([i0]), g[:, None], mapped.g0)[:, 0]
    np.testing.assert_array_equal(x, -v * mapped.g0 * np.abs(g).max() / i0)
    np.testing.assert_allclose(x, np.linalg.solve(g_eff / mapped.g0, g), rtol=1e-9)
    # a column never settled (zero input, I0 = 0) reads x = 0
    assert not readout.x_from_v(np.ones((6, 1)), np.zeros(1), np.zeros((6, 1)), mapped.g0).any()


@pytest.mark.parametrize("preset", ["rram", "rram-macro"])
def test_operating_point_result_v_and_supply_power_are_the_raw_vectors(preset):
    config = CircuitConfig.preset(preset)
    array = InvArray(config).program(random_spd(4, seed=6))
    g = np.random.default_rng(7).standard_normal(4)
    currents = array.readout.dac(g, array.readout.initial_i0(array.mapped, g))[:, None]
    result = analyses.OperatingPoints(array.config, array.rng, (object(),)).run(array.mapped, currents)
    sense = analyses.sense_sources(array.config, 4)
    assert bool(sense) == (preset == "rram-macro")
    raw = _raw(build_deck(array.mapped, currents[:, 0], array.config),
               [output_node(j) for j in range(4)] + ["vcc#branch", "vee#branch"] + [f"{s}#branch" for s in sense])
    for j in range(4):
        assert result.v(output_node(j))[0] == raw[output_node(j)][-1]
    for s in sense:
        assert result.i(s)[0] == raw[f"{s}#branch"][-1]
    supply = config.opamp.supply_v
    # the rails deliver P = -(V+ I+ + V- I-), ngspice's branch currents flowing into the + terminal
    expected = -(supply * raw["vcc#branch"][-1] - supply * raw["vee#branch"][-1])
    assert result.supply_power()[0] == pytest.approx(expected, rel=1e-12)
    assert result.supply_power()[0] > 0


def test_matrix_engine_result_matches_one_op_per_column():
    array = InvArray(CircuitConfig.preset("rram")).program(random_spd(5, seed=8))
    g = np.random.default_rng(9).standard_normal((5, 3))
    # at a twentieth of the auto-ranged scale the limiter is linear to the engine's tolerance (as amc.hw.response
    # measures): the engine answers every column itself
    currents = np.stack([0.05 * array.readout.dac(g[:, c], array.readout.initial_i0(array.mapped, g[:, c]))
                         for c in range(3)], axis=1)
    stats = {"calls": 0, "engine_rhs": 0, "fallback_rhs": 0, "last_fallback": None}
    engine = analyses.steady_state(array.config, array.rng, (object(),), stats)
    assert isinstance(engine, analyses.MatrixEngine)
    batch = engine.run(array.mapped, currents)
    assert stats["engine_rhs"] == 3 and stats["fallback_rhs"] == 0
    plain = analyses.OperatingPoints(array.config, array.rng, (object(),))
    for c in range(3):
        one = plain.run(array.mapped, currents[:, [c]])
        np.testing.assert_allclose(batch.outputs(5)[:, c], one.outputs(5)[:, 0], rtol=1e-9)
        assert batch.supply_power()[c] == pytest.approx(one.supply_power()[0], rel=1e-9)


def test_transient_result_v_and_supply_power_are_the_raw_waveforms():
    config = CircuitConfig.preset("ideal-dynamic")
    array = InvArray(config).program(random_spd(3, seed=1))
    g = np.array([1.0, -0.4, 0.2])
    currents = array.readout.dac(g, array.readout.initial_i0(array.mapped, g))
    spec = analyses.transient_spec(config, array.mapped, array.lambda_min)
    result = analyses.Transient(config, array.rng, spec).run(array.mapped, currents)
    raw = _raw(result.deck, ["time", output_node(0), "vcc#branch", "vee#branch"])
    np.testing.assert_array_equal(result.time, raw["time"])
    np.testing.assert_array_equal(result.v(output_node(0)), raw[output_node(0)])
    np.testing.assert_allclose(result.supply_power(), -(5.0 * raw["vcc#branch"] - 5.0 * raw["vee#branch"]),
                               rtol=1e-12, atol=0)
    # the outputs settle at the circuit's operating point
    g_eff = array.mapped.effective_conductance(config.opamp.gain)
    np.testing.assert_allclose(result.outputs(3)[:, -1], -np.linalg.solve(g_eff, currents), rtol=1e-3)


def test_measured_response_read_ranges_to_the_drive_limit_as_ngspice_solves_do():
    """Rule change of the split: a read from the measured response up-ranges to target_swing of the drive limit (as
    solve() always did), not of the swing, so an array whose output-current limit caps its outputs below the swing
    is read at what its amplifiers can drive."""
    config = CircuitConfig.preset("rram-macro").replace(**{"opamp.i_source_max_a": 1e-4, "opamp.i_sink_max_a": 1e-4,
                                                           "io.adc_bits": 8})
    array = InvArray(config, rng=np.random.default_rng(3)).program(random_spd(6, seed=3))
    mapped, readout = array.mapped, array.readout
    drive = readout.drive_limit(mapped)
    assert drive < 0.2 * readout.swing_limit              # the current limit, not the swing, bounds the outputs
    g = np.random.default_rng(4).standard_normal(6)
    readout.initial_i0 = lambda m, col: 1e-9              # far below range: the read must up-range once
    read = array.read(g)
    assert read.rescales == 1
    v_max = np.abs(read.x).max() * read.i0_a / (mapped.g0 * np.abs(g).max())
    # at target_swing of the drive limit within half an 8-bit ADC step (the rule before: of the 4.95 V swing)
    assert v_max == pytest.approx(config.io.target_swing * drive, abs=0.5 * readout.swing_limit / 127)
    solve = array.solve(g)
    assert solve.rescales == 1 and read.i0_a == pytest.approx(solve.i0_a, rel=1e-4)


def test_read_out_strategies_and_results_print_one_short_line():
    config = CircuitConfig.preset("ideal-dynamic").replace(**{"io.adc_bits": 8})
    array = InvArray(config).program(random_spd(3, seed=2))
    currents = array.readout.dac(np.ones(3), array.readout.initial_i0(array.mapped, np.ones(3)))
    spec = analyses.transient_spec(config, array.mapped, array.lambda_min)
    transient = analyses.Transient(config, array.rng, spec)
    steady = analyses.steady_state(config, array.rng, (object(),), dict(array.engine_stats))
    objects = [array.readout, steady, transient, steady.run(array.mapped, currents[:, None]),
               transient.run(array.mapped, currents),
               array.readout.auto_range(array.mapped, np.ones((3, 1)), lambda i: (-1e4 * i, np.zeros(i.shape[1]), np.zeros(i.shape[1])))]
    for obj in objects:
        text = repr(obj)
        assert "\n" not in text and len(text) < 120, text
    assert "8-bit ADC" in repr(array.readout) and "auto-ranged" in repr(array.readout)
