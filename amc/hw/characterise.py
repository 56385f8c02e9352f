"""Measure an op-amp subcircuit in ngspice: the figures amc needs, each with how it was measured.

Every measurement is an ngspice analysis of a small deck around the amplifier (``ports`` inp inm out vcc vee, rails
+-supply_v):

- open-loop AC (a DC servo, 1e12 H from the output to the inverting input and 1e12 F from there to ground, holds the
  operating point while the loop is open above ~1e-13 Hz): DC gain at 1 mHz, dominant pole where the gain is 3 dB
  down, gain-bandwidth = A0 x f_p1, unity-gain frequency and phase margin, second pole from the phase at unity gain;
- open-loop output resistance: the same servo, 1 A AC injected into the output, |v(out)| at 1 mHz;
- output swing: .op with the inputs overdriven by +-0.2 V, no load;
- maximum output current: .op with the output held at 0 V by a 0 V source and the inputs overdriven by +-0.2 V;
- slew rate: a unity-gain follower stepped between +-0.4 of the swing, the steepest output slope (.tran);
- quiescent current: the follower at 0 V, no load, the mean of the two rail currents (.op).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from amc.config import OpAmpConfig
from amc.errors import InputError, SimulationError
from amc.hw import opamp_models
from amc.hw.runner import session

OVERDRIVE_V = 0.2
SERVO = "lservo out inm 1e12\ncservo inm 0 1e12"
AC_CARD = ".ac dec 40 1e-3 1e11"


@dataclass
class OpAmpFigures:
    """What ``amc characterise`` measured (SI units); ``methods`` says how, per figure."""

    name: str
    supply_v: float
    dc_gain: float
    gbw_hz: float
    dominant_pole_hz: float
    unity_gain_hz: float
    phase_margin_deg: float
    pole2_hz: Optional[float]
    rout_ohm: float
    output_stage_gm_s: Optional[float]
    i_source_max_a: float
    i_sink_max_a: float
    slew_rise_v_per_s: float
    slew_fall_v_per_s: float
    swing_pos_v: float
    swing_neg_v: float
    quiescent_current_a: float
    methods: dict = field(default_factory=dict)

    @property
    def slew_v_per_s(self) -> float:
        return min(self.slew_rise_v_per_s, self.slew_fall_v_per_s)

    @property
    def v_sat(self) -> float:
        """The symmetric swing (never beyond the rails: an ideal-source subcircuit may 'swing' further)."""
        return min(self.swing_pos_v, -self.swing_neg_v, self.supply_v)

    def opamp_fields(self) -> dict:
        """The OpAmpConfig fields these figures set (the rest of amc reads them: stability, ranging, ledger)."""
        return dict(gain=self.dc_gain, gbw_hz=self.gbw_hz, pole2_hz=self.pole2_hz, rout_ohm=self.rout_ohm,
                    output_stage_gm_s=self.output_stage_gm_s,
                    i_source_max_a=self.i_source_max_a, i_sink_max_a=self.i_sink_max_a,
                    slew_v_per_s=self.slew_v_per_s, v_sat=self.v_sat, quiescent_current_a=self.quiescent_current_a)

    def fitted_macromodel(self, name: Optional[str] = None) -> OpAmpConfig:
        """The datasheet-level macromodel with these figures (what large arrays use in place of the circuit)."""
        return OpAmpConfig(name=name or f"{self.name}-macro", model="macromodel", supply_v=self.supply_v,
                           offset_v=0.0, **self.opamp_fields())

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["slew_v_per_s"], d["v_sat"] = self.slew_v_per_s, self.v_sat
        return d

    def report(self) -> str:
        m = self.methods
        rows = [
            ("DC gain", f"{self.dc_gain:.5g} V/V ({20 * math.log10(self.dc_gain):.2f} dB)", m["dc_gain"]),
            ("dominant pole", f"{self.dominant_pole_hz:.5g} Hz", m["dominant_pole_hz"]),
            ("gain-bandwidth", f"{self.gbw_hz / 1e6:.5g} MHz", m["gbw_hz"]),
            ("unity-gain frequency", f"{self.unity_gain_hz / 1e6:.5g} MHz", m["unity_gain_hz"]),
            ("phase margin", f"{self.phase_margin_deg:.2f} deg", m["phase_margin_deg"]),
            ("second pole", "none seen" if self.pole2_hz is None else f"{self.pole2_hz / 1e6:.5g} MHz", m["pole2_hz"]),
            ("output resistance", f"{self.rout_ohm:.5g} ohm", m["rout_ohm"]),
            ("output stage (Miller)", "not seen (|Zout| flat)" if self.output_stage_gm_s is None else
             f"gm2 {self.output_stage_gm_s * 1e3:.5g} mS", m["output_stage_gm_s"]),
            ("max output current", f"source {self.i_source_max_a * 1e3:.5g} mA, sink {self.i_sink_max_a * 1e3:.5g} mA",
             m["i_max"]),
            ("slew rate", f"rise {self.slew_rise_v_per_s / 1e6:.5g} V/us, fall {self.slew_fall_v_per_s / 1e6:.5g} V/us",
             m["slew"]),
            ("output swing", f"{self.swing_neg_v:.5g} V .. {self.swing_pos_v:.5g} V", m["swing"]),
            ("quiescent current", f"{self.quiescent_current_a * 1e6:.5g} uA", m["quiescent_current_a"]),
        ]
        width = max(len(r[0]) for r in rows)
        head = f"op-amp {self.name} on +-{self.supply_v:g} V (measured in ngspice)"
        return "\n".join([head] + [f"  {a:<{width}}  {b:<38} [{c}]" for a, b, c in rows])


def _deck(opamp: OpAmpConfig, body: list[str], analysis: str) -> str:
    v = opamp.supply_v
    return "\n".join([f"* amc characterise: {opamp.name}", opamp_models.library_text(opamp),
                      f"vcc vcc 0 DC {v!r}", f"vee vee 0 DC {-v!r}", *body, analysis, ".end"]) + "\n"


def _amp(opamp: OpAmpConfig, inp: str = "inp", inm: str = "inm", out: str = "out") -> str:
    return opamp_models.instance("xdut", dict(inp=inp, inm=inm, out=out, vcc="vcc", vee="vee"), opamp)


def _run(deck: str, vectors: list[str], ac: bool = False) -> dict:
    ng = session()
    try:
        ng.load(deck)
        return ng.run_ac(vectors) if ac else ng.run(vectors)
    finally:
        ng.clean()


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> Optional[float]:
    """First x (log-interpolated) where y falls through ``level``."""
    below = np.nonzero(y <= level)[0]
    if below.size == 0 or below[0] == 0:
        return None
    k = below[0]
    lx0, lx1 = math.log(x[k - 1]), math.log(x[k])
    y0, y1 = y[k - 1], y[k]
    return math.exp(lx0 + (lx1 - lx0) * (y0 - level) / (y0 - y1))


def characterise(opamp: OpAmpConfig) -> OpAmpFigures:
    """Measure ``opamp`` (any model but the behavioural library's) in ngspice."""
    if opamp_models.is_behavioural(opamp):
        raise InputError("characterise a subcircuit, a macromodel or the transistor op-amp (model: behavioural has "
                         "no subcircuit of its own)")
    v = opamp.supply_v
    # open-loop gain and phase
    raw = _run(_deck(opamp, ["vin inp 0 DC 0 AC 1", SERVO, _amp(opamp)], AC_CARD), ["frequency", "out"], ac=True)
    f = raw["frequency"].real
    a = raw["out"]
    mag = np.abs(a)
    phase = np.degrees(np.unwrap(np.angle(a)))
    a0 = float(mag[0])
    if not a0 > 1:
        raise SimulationError(f"op-amp {opamp.name}: open-loop DC gain {a0:.3g} is not above 1 (check the pin order "
                              f"{opamp.pins or 'inp inm out vcc vee'} and the supply)")
    fp1 = _crossing(f, mag, a0 / math.sqrt(2))
    ugf = _crossing(f, mag, 1.0)
    if fp1 is None or ugf is None:
        raise SimulationError(f"op-amp {opamp.name}: no dominant pole or unity-gain crossing below 100 GHz")
    ph_u = float(np.interp(math.log(ugf), np.log(f), phase))
    pm = 180.0 + ph_u
    lag_beyond_p1 = -ph_u - math.degrees(math.atan(ugf / fp1))
    pole2 = ugf / math.tan(math.radians(lag_beyond_p1)) if lag_beyond_p1 > 0.5 else None
    # open-loop output resistance
    raw = _run(_deck(opamp, ["vin inp 0 DC 0", SERVO, _amp(opamp), "iinj 0 out DC 0 AC 1"], AC_CARD),
               ["frequency", "out"], ac=True)
    rout = float(abs(raw["out"][0]))
    # Above the dominant pole a Miller-compensated output stage closes a local loop through Cc: |Zout| falls from
    # Rout to ~1/gm2. A fall by more than 3x marks the Miller topology and measures gm2 (Rout || 1/gm2 = |Zout|).
    z_mid = float(abs(np.interp(math.log(ugf / 10), np.log(raw["frequency"].real), np.abs(raw["out"]))))
    gm2 = 1.0 / z_mid - 1.0 / rout if rout > 3 * z_mid else None
    # swing (no load) and maximum output current (output held at 0 V), inputs overdriven both ways
    swing, imax = {}, {}
    for sign in (+1, -1):
        drive = [f"vp inp 0 DC {sign * OVERDRIVE_V / 2!r}", f"vm inm 0 DC {-sign * OVERDRIVE_V / 2!r}"]
        r = _run(_deck(opamp, drive + [_amp(opamp), "rload out 0 1e12"], ".op"), ["out"])
        swing[sign] = float(r["out"][-1])
        r = _run(_deck(opamp, drive + [_amp(opamp), "vshort out 0 DC 0"], ".op"), ["vshort#branch"])
        imax[sign] = abs(float(r["vshort#branch"][-1]))
    # quiescent current: follower at 0 V, no load
    r = _run(_deck(opamp, ["vin inp 0 DC 0", _amp(opamp, inm="out")], ".op"), ["vcc#branch", "vee#branch"])
    iq = 0.5 * (abs(float(r["vcc#branch"][-1])) + abs(float(r["vee#branch"][-1])))
    rise, fall, slew_how = _slew(opamp, 0.4 * min(swing[1], -swing[-1]), ugf)
    methods = {
        "dc_gain": "AC, open loop with a DC servo (1e12 H / 1e12 F), |v(out)/v(in)| at 1 mHz, no load",
        "dominant_pole_hz": "AC, where the open-loop gain is 3 dB below the DC gain",
        "gbw_hz": "DC gain x dominant pole (the single-pole gain-bandwidth)",
        "unity_gain_hz": "AC, where the open-loop gain crosses 1",
        "phase_margin_deg": "AC, 180 deg + open-loop phase at the unity-gain frequency",
        "pole2_hz": "fitted: the phase lag at unity gain beyond the dominant pole's, as one more pole",
        "rout_ohm": "AC, open loop with the servo, 1 A injected into the output, |v(out)| at 1 mHz",
        "output_stage_gm_s": "same AC run: 1/|Zout| - 1/Rout at a tenth of the unity-gain frequency, when |Zout| "
                             "has fallen below Rout/3 there (the Miller loop through Cc)",
        "i_max": f"DC (.op), output held at 0 V by a 0 V source, inputs overdriven by +-{OVERDRIVE_V:g} V",
        "slew": slew_how,
        "swing": f"DC (.op), inputs overdriven by +-{OVERDRIVE_V:g} V, no load",
        "quiescent_current_a": "DC (.op), unity-gain follower at 0 V, no load, mean of the two rail currents",
    }
    return OpAmpFigures(name=opamp.name, supply_v=v, dc_gain=a0, gbw_hz=a0 * fp1, dominant_pole_hz=fp1,
                        unity_gain_hz=ugf, phase_margin_deg=pm, pole2_hz=pole2, rout_ohm=rout, output_stage_gm_s=gm2,
                        i_source_max_a=imax[1], i_sink_max_a=imax[-1], slew_rise_v_per_s=rise,
                        slew_fall_v_per_s=fall, swing_pos_v=swing[1], swing_neg_v=swing[-1],
                        quiescent_current_a=iq, methods=methods)


def _slew(opamp: OpAmpConfig, amplitude: float, ugf: float) -> tuple[float, float, str]:
    """Steepest rising and falling output slopes of a follower stepped between -amplitude and +amplitude."""
    edge = 1e-3 / ugf
    hold = 200.0 / (2 * math.pi * ugf)
    for _ in range(6):
        stop = 2 * hold + 2 * edge
        step = stop / 20000
        body = [f"vin inp 0 DC {-amplitude!r} PULSE({-amplitude!r} {amplitude!r} 0 {edge!r} {edge!r} {hold!r} "
                f"{2 * (hold + edge)!r})", _amp(opamp, inm="out")]
        r = _run(_deck(opamp, body, f".tran {step!r} {stop!r} 0 {step!r}"), ["time", "out"])
        t, y = r["time"], r["out"]
        first = t <= hold + edge
        # both edges must reach 90 % of the step inside the window, else the window was too short
        if y[first][-1] > 0.9 * amplitude and y[-1] < -0.9 * amplitude:
            # 20 %-80 % of each edge: the slewing part, past any capacitive feed-through at the input edge
            lo, hi = -0.6 * amplitude, 0.6 * amplitude
            up = _time_through(t[first], y[first], hi) - _time_through(t[first], y[first], lo)
            down = _time_through(t[~first], -y[~first], hi) - _time_through(t[~first], -y[~first], lo)
            return (1.2 * amplitude / up, 1.2 * amplitude / down,
                    f".tran, unity-gain follower stepped -{amplitude:.3g} V -> +{amplitude:.3g} V -> back "
                    f"(0.4 of the swing), 20 %-80 % slope of each edge")
        hold *= 4
    raise SimulationError(f"op-amp {opamp.name}: the follower did not reach its step within {hold:.3g} s")


def _time_through(t: np.ndarray, y: np.ndarray, level: float) -> float:
    """First time y rises through ``level`` (linear interpolation)."""
    k = int(np.argmax(y >= level))
    if y[k] < level or k == 0:
        raise SimulationError(f"the follower output never crossed {level:.3g} V")
    return float(t[k - 1] + (t[k] - t[k - 1]) * (level - y[k - 1]) / (y[k] - y[k - 1]))


@functools.lru_cache(maxsize=16)
def _characterise_cached(digest: str, opamp: OpAmpConfig) -> OpAmpFigures:
    return characterise(opamp)


def characterise_config(opamp: OpAmpConfig) -> OpAmpFigures:
    """characterise(), once per circuit (file text, name, pins, supply) in this process."""
    plain = dataclasses.replace(opamp, pins=tuple(opamp.pins) if opamp.pins is not None else None)
    return _characterise_cached(opamp_models.library_digest(opamp), plain)
