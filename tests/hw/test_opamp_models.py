"""Op-amp models beyond the behavioural one: the macromodel's physics, characterisation, limits, user subcircuits."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from amc import AnalogSolver, CircuitConfig
from amc.config import OPAMP_PRESETS, OpAmpConfig
from amc.hw import opamp_models
from amc.hw.characterise import characterise
from amc.hw.runner import session

REPO = Path(__file__).resolve().parents[2]


def _system(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    return a @ a.T / n + np.eye(n), rng.standard_normal(n)


def _op(deck: str, vectors: list[str]) -> dict:
    ng = session()
    try:
        ng.load(deck)
        return {k: float(v[-1]) for k, v in ng.run(vectors).items()}
    finally:
        ng.clean()


def test_macromodel_output_resistance_gives_the_closed_form_loaded_gain():
    """Inverting amplifier Rin/Rf driving RL: with open-loop gain A0 and Norton output resistance Rout, nodal
    analysis gives v(out) in closed form; ngspice's operating point must agree to 1e-6."""
    a0, rout, rin, rf, rl, vin = 2e3, 2000.0, 10e3, 30e3, 1.5e3, 0.05
    amp = OpAmpConfig(name="test", model="macromodel", gain=a0, gbw_hz=1e6, v_sat=None, rout_ohm=rout, supply_v=5.0,
                      quiescent_current_a=0.0)
    deck = "\n".join([opamp_models.macromodel_text(amp), "vcc vcc 0 DC 5", "vee vee 0 DC -5", f"vin in 0 DC {vin}",
                      f"rin in m {rin}", f"rf m out {rf}", f"rl out 0 {rl}",
                      opamp_models.instance("xa", dict(inp="0", inm="m", out="out", vcc="vcc", vee="vee"), amp),
                      ".op", ".end"])
    got = _op(deck, ["out", "m"])
    # unknowns (v_m, v_out): KCL at m and at out, with the amplifier's internal source A0 (0 - v_m)
    k = np.array([[1 / rin + 1 / rf, -1 / rf],
                  [-1 / rf + a0 / rout, 1 / rout + 1 / rl + 1 / rf]])
    v_m, v_out = np.linalg.solve(k, [vin / rin, 0.0])
    assert got["out"] == pytest.approx(v_out, rel=1e-6)
    assert got["m"] == pytest.approx(v_m, rel=1e-6)
    # the output resistance matters: the gain of the same amplifier with a zero output resistance,
    # -(Rf/Rin) / (1 + (1 + Rf/Rin)/A0), is a different number at 1e-4 -- far outside the 1e-6 tolerance above
    zero_rout = -(rf / rin) / (1 + (1 + rf / rin) / a0)
    assert abs(v_out / vin - zero_rout) / abs(zero_rout) > 1e-3


def test_characterise_recovers_a_macromodel_written_with_known_values():
    known = OpAmpConfig(name="known", model="macromodel", gain=3e4, gbw_hz=5e6, pole2_hz=20e6, v_sat=2.0,
                        rout_ohm=75.0, i_source_max_a=8e-3, i_sink_max_a=5e-3, slew_v_per_s=5e6, supply_v=2.5,
                        quiescent_current_a=1e-4)
    f = characterise(known)
    assert f.dc_gain == pytest.approx(3e4, rel=0.05)
    assert f.rout_ohm == pytest.approx(75.0, rel=0.05)
    assert f.i_source_max_a == pytest.approx(8e-3, rel=0.05)
    assert f.i_sink_max_a == pytest.approx(5e-3, rel=0.05)
    assert f.slew_rise_v_per_s == pytest.approx(5e6, rel=0.05)
    assert f.slew_fall_v_per_s == pytest.approx(5e6, rel=0.05)
    assert f.gbw_hz == pytest.approx(5e6, rel=0.05)
    assert f.pole2_hz == pytest.approx(20e6, rel=0.05)
    assert f.swing_pos_v == pytest.approx(2.0, rel=0.01) and f.swing_neg_v == pytest.approx(-2.0, rel=0.01)
    assert f.quiescent_current_a == pytest.approx(1e-4, rel=1e-6)
    # a two-pole amplifier: the unity-gain frequency is below GBW and the phase margin below 90 degrees
    assert f.unity_gain_hz < f.gbw_hz and 45 < f.phase_margin_deg < 80


def test_current_limited_opamp_in_an_inv_solve_is_flagged_and_auto_ranging_avoids_it():
    h, g = _system(4)
    exact = np.linalg.solve(h, g)
    base = CircuitConfig.preset("rram-macro").replace(**{"device.levels": None, "opamp.input_capacitance_f": 0.0})
    unlimited = AnalogSolver(base).solve(h, g)
    assert not unlimited.current_limited
    # fixed input scale (no auto-ranging) chosen so the outputs reach ~1 V: a 20 uA limit is exceeded and flagged
    i0 = float(unlimited.i0_a)
    tight = base.replace(**{"opamp.i_source_max_a": 20e-6, "opamp.i_sink_max_a": 20e-6})
    fixed = AnalogSolver(tight.replace(**{"io.i0_a": i0})).solve(h, g)
    assert fixed.current_limited and fixed.output_current_fraction > 0.9
    assert "CURRENT-LIMITED (1 rhs)" in fixed.summary() and "CURRENT-LIMITED" not in unlimited.summary()
    assert fixed.error_against(exact) > 10 * unlimited.error_against(exact)   # the limit really bent the answer
    # auto-ranging lowers the input scale until every output current is inside the limit, and says nothing is wrong
    ranged = AnalogSolver(tight).solve(h, g)
    assert not ranged.current_limited and ranged.output_current_fraction <= 0.9
    assert float(ranged.i0_a) < float(unlimited.i0_a)
    assert ranged.error_against(exact) == pytest.approx(unlimited.error_against(exact), abs=1e-3)


def test_slewing_is_flagged_in_a_transient():
    h, g = _system(4)
    base = CircuitConfig.preset("rram-macro").replace(**{"device.levels": None, "opamp.input_capacitance_f": 0.0})
    fast = AnalogSolver(base.replace(**{"opamp.slew_v_per_s": 2e9})).solve(h, g, transient=True)
    datasheet = AnalogSolver(base).solve(h, g, transient=True)             # 22 V/us
    slow = AnalogSolver(base.replace(**{"opamp.slew_v_per_s": 2e6})).solve(h, g, transient=True)
    assert not fast.slewed and datasheet.slewed and slow.slewed
    # slewing lengthens the settle; the outputs (~2.5 V at the target swing) take >= V / SR
    assert fast.settling_time_s < datasheet.settling_time_s < slow.settling_time_s
    assert slow.settling_time_s > float(np.max(np.abs(slow.waveforms[0]["outputs"][:, -1]))) / 2e6


def test_parasitics_only_in_transient_decks_and_the_operating_point_is_unchanged():
    h, g = _system(3)
    cfg = CircuitConfig.preset("rram-macro").replace(**{"opamp.input_capacitance_f": 0.0})
    with_caps = cfg.replace(**{"wires.row_cap_f": 0.1e-15, "wires.col_cap_f": 0.1e-15, "wires.cell_cap_f": 0.44e-15})
    solver = AnalogSolver(with_caps)
    op = solver.solve(h, g)
    assert "ccp_" not in op.netlist                      # capacitors are open at DC: the .op deck carries none
    assert np.array_equal(op.x, AnalogSolver(cfg).solve(h, g).x)
    tran_deck = solver.array.deck(g, transient=True)
    assert tran_deck.count("\nccp_") == 9 and tran_deck.count("\nccn_") == 9
    assert f"\ncwr_0 row_0 0 {6 * 0.1e-15:.17g}\n" in tran_deck           # 2n row segments of 0.1 fF on the lumped row line


def test_transistor_preset_figures_are_its_measurement():
    measured = characterise(OpAmpConfig(**OPAMP_PRESETS["cmos-2stage"])).opamp_fields()
    for key, value in measured.items():
        assert OPAMP_PRESETS["cmos-2stage"][key] == pytest.approx(value, rel=1e-3), key
    # the output stage can drive a 64-cell column at 35 uS each, 0.9 V: 2.0 mA, inside the sink limit
    assert measured["i_sink_max_a"] > 64 * 35e-6 * 0.9


USER_AMP = """* a user's op-amp: the transistor design with its ports in another order, under another name
{models}
.subckt myamp out vdd vss minus plus
xcore plus minus out vdd vss amc_cmos_2stage
.ends myamp
.end
"""


@pytest.mark.slow
def test_a_user_subcircuit_runs_end_to_end_and_its_deck_is_self_contained(tmp_path):
    lib = tmp_path / "myamp.lib"
    lib.write_text(USER_AMP.format(models=opamp_models.TRANSISTOR_LIBRARY.read_text()))
    h, g = _system(4, seed=1)
    np.save(tmp_path / "H.npy", h)
    np.save(tmp_path / "g.npy", g)
    cfg = tmp_path / "circuit.yaml"
    cfg.write_text(yaml.safe_dump({"preset": "rram", "device": {"levels": None},
                                   "opamp": {"subckt": str(lib), "name": "myamp", "supply_v": 2.5,
                                             "pins": ["out", "vcc", "vee", "inm", "inp"]}}))
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "amc.cli", "solve", "--config", str(cfg), "--matrix",
                          str(tmp_path / "H.npy"), "--rhs", str(tmp_path / "g.npy"), "--json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    x = np.array(record["x"])
    exact = np.linalg.solve(h, g)
    # continuous cells: the error left is the measured finite gain of the loaded amplifier, well under 1 %
    assert np.linalg.norm(x - exact) / np.linalg.norm(exact) < 1e-2
    deck_path = tmp_path / "inv.cir"
    run = subprocess.run([sys.executable, "-m", "amc.cli", "netlist", "--config", str(cfg), "--matrix",
                          str(tmp_path / "H.npy"), "--rhs", str(tmp_path / "g.npy"), "-o", str(deck_path)],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    deck = deck_path.read_text()
    assert ".include" not in deck and ".subckt myamp" in deck and "xamp_0 oa_0 vcc vee row_0 0 myamp" in deck
    # the deck runs alone, from another directory, and gives the same outputs
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "inv.cir").write_text(deck)
    ng = subprocess.run(["ngspice", "-b", "inv.cir"], capture_output=True, text=True, cwd=other)
    assert ng.returncode == 0
    assert "v(out_0)" in ng.stdout.lower() or "out_0" in ng.stdout.lower()


def test_characterise_recovers_a_miller_macromodel_and_its_bandwidth_does_not_drop_under_load():
    known = OpAmpConfig(name="miller", model="macromodel", gain=2e4, gbw_hz=10e6, pole2_hz=60e6, v_sat=2.0,
                        rout_ohm=4e3, output_stage_gm_s=5e-3, i_source_max_a=20e-3, i_sink_max_a=3e-3,
                        slew_v_per_s=6e6, supply_v=2.5, quiescent_current_a=1e-3)
    f = characterise(known)
    for measured, value in ((f.dc_gain, 2e4), (f.rout_ohm, 4e3), (f.output_stage_gm_s, 5e-3),
                            (f.i_source_max_a, 20e-3), (f.i_sink_max_a, 3e-3), (f.slew_v_per_s, 6e6),
                            (f.gbw_hz, 10e6), (f.v_sat, 2.0)):
        assert measured == pytest.approx(value, rel=0.05)
    # the shunt macromodel with the same figures has a flat output impedance: no Miller stage is seen
    shunt = characterise(dataclasses.replace(known, output_stage_gm_s=None))
    assert shunt.output_stage_gm_s is None
    # a 1 kohm load: the Miller amplifier keeps its unity-gain frequency (gm1/2 pi Cc), the shunt one loses
    # RL / (RL + Rout) = 1/5 of its gain-bandwidth
    def loaded_ugf(amp: OpAmpConfig) -> float:
        deck = "\n".join([opamp_models.macromodel_text(amp), "vcc vcc 0 DC 2.5", "vee vee 0 DC -2.5",
                          "vin inp 0 DC 0 AC 1", "lservo out inm 1e12", "cservo inm 0 1e12", "rl out 0 1e3",
                          opamp_models.instance("xa", dict(inp="inp", inm="inm", out="out", vcc="vcc", vee="vee"),
                                                amp), ".ac dec 40 1 1e10", ".end"])
        ng = session()
        try:
            ng.load(deck)
            raw = ng.run_ac(["frequency", "out"])
        finally:
            ng.clean()
        mag = np.abs(raw["out"])
        return float(raw["frequency"].real[np.argmax(mag < 1.0)])
    miller_ugf, shunt_ugf = loaded_ugf(known), loaded_ugf(dataclasses.replace(known, output_stage_gm_s=None))
    assert miller_ugf > 0.7 * f.unity_gain_hz
    assert shunt_ugf < 0.35 * miller_ugf


@pytest.mark.slow
def test_the_ledger_prices_the_transistor_op_amp_as_ngspice_simulates_it():
    """Priced = simulated: the cost ledger's settle (single-pole state space with the measured GBW, gain and
    quiescent current, delivered current from the rails) against ngspice's .tran of the transistor-level circuit
    (8 levels, line and cell capacitance)."""
    from amc.cost.ledger import settle_of_matrix
    from amc.cost.presets import HardwareCostModel
    hw = HardwareCostModel.preset("rram-cmos")
    h, _ = _system(4, seed=4)
    g = np.ones(4)
    simulated = AnalogSolver(hw.circuit).solve(h, g, transient=True)
    priced = settle_of_matrix(h, hw, g)
    assert priced.time_s == pytest.approx(float(simulated.settling_time_s), rel=0.1)
    assert priced.energy_j == pytest.approx(float(simulated.energy_j), rel=0.1)
    # the energy is dominated by the quiescent current that buys the output stage: 2n amplifiers x 2.17 mA x 5 V
    quiescent = 2 * 4 * 2 * hw.circuit.opamp.supply_v * hw.circuit.opamp.quiescent_current_a * priced.time_s
    assert 0.8 < quiescent / priced.energy_j <= 1.0


@pytest.mark.slow
def test_characterise_cli_measures_a_user_file_through_its_pin_order(tmp_path):
    lib = tmp_path / "myamp.lib"
    lib.write_text(USER_AMP.format(models=opamp_models.TRANSISTOR_LIBRARY.read_text()))
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "amc.cli", "characterise", "opamp", str(lib), "--name", "myamp", "--supply", "2.5"]
    run = subprocess.run(cmd + ["--pins", "out,vcc,vee,inm,inp", "--json"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)
    # the same circuit as the transistor preset, reached through another port order
    assert figures["dc_gain"] == pytest.approx(OPAMP_PRESETS["cmos-2stage"]["gain"], rel=1e-3)
    assert figures["i_sink_max_a"] == pytest.approx(OPAMP_PRESETS["cmos-2stage"]["i_sink_max_a"], rel=1e-3)
    # bad input: one line, exit code 2
    for bad in (["--pins", "out,vcc,vee,inm"], ["--pins", "out,vcc,vee,inm,inp", "--name", "nosuch"]):
        run = subprocess.run(cmd + bad, capture_output=True, text=True, env=env)
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and run.stderr.startswith("error:"), run.stderr
