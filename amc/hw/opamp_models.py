"""The op-amp behind every amplifier of a deck, at one of four levels (``opamp.model``).

- ``behavioural``: amc/data/amc_opamps.lib's single-pole model with a soft voltage limiter (the decks of earlier
  versions, unchanged).
- ``macromodel``: a datasheet-level model written here from the config's figures: a transconductance stage whose
  current is clamped (slew rate SR = I_max / C1) into R1 || C1 (DC gain A0, dominant pole GBW / A0), a second pole,
  the soft swing limiter, and a Norton output stage (open-loop output resistance Rout, hard output-current limits
  for sourcing and sinking), so the output under load is A0 RL / (RL + Rout) and the swing shrinks with the load
  current by I Rout. Input capacitance from each input to ground; quiescent current between the rails and the
  delivered output current drawn from the rail it comes from.
- ``transistor``: the CMOS two-stage op-amp of amc/data/amc_cmos_opamp.lib (cited model cards).
- ``subckt``: the user's own subcircuit (``opamp.subckt`` file, ``opamp.name``, ``opamp.pins`` the roles of its ports
  in order), inlined into every deck so the deck stays self-contained.

For ``transistor`` and ``subckt`` the figures the rest of amc needs (gain, bandwidth, swing, output resistance,
current limits, slew, quiescent current) are measured in ngspice by amc.hw.characterise (``resolved``).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
from pathlib import Path

from amc.config import PIN_ROLES, CircuitConfig, OpAmpConfig
from amc.errors import ConfigError

TRANSISTOR_LIBRARY = Path(__file__).resolve().parent.parent / "data" / "amc_cmos_opamp.lib"
TRANSISTOR_SUBCKT = "amc_cmos_2stage"
MACRO_SUBCKT = "amc_opamp_macro"
# Internal transconductance of the macromodel's input stage: it only sets internal node impedances (R1 = A0 / GM,
# C1 = GM / (2 pi GBW)); the terminal behaviour does not depend on it.
_GM = 1e-3
_UNLIMITED = 1e30
# Miller macromodel: the fraction of the swing over which the output current limit falls to zero at the rail.
RAIL_BAND = 0.05


def _fmt(value: float) -> str:
    return f"{value:.17g}"


def is_behavioural(opamp: OpAmpConfig) -> bool:
    return opamp.model == "behavioural"


def subckt_name(opamp: OpAmpConfig) -> str:
    return {"macromodel": MACRO_SUBCKT, "transistor": TRANSISTOR_SUBCKT}.get(opamp.model, opamp.name)


def macromodel_text(o: OpAmpConfig) -> str:
    """The macromodel subcircuit with this config's figures written in (ports inp inm out vcc vee)."""
    if o.output_stage_gm_s is not None:
        return miller_macromodel_text(o)
    if o.gbw_hz is None:
        raise ConfigError(f"op-amp {o.name!r}: the macromodel needs a gain-bandwidth (opamp.gbw_hz)")
    c1 = _GM / (2 * math.pi * o.gbw_hz)
    r1 = o.gain / _GM
    i_slew, vsat, isrc, isnk = _limits(o)
    lines = [
        f"* {MACRO_SUBCKT}: {o.name} (amc/hw/opamp_models.py): A0 {o.gain:g}, GBW {o.gbw_hz:g} Hz, "
        f"pole2 {o.pole2_hz if o.pole2_hz is not None else 'none'}, Rout {o.rout_ohm:g} ohm, Isource/Isink "
        f"{o.i_source_max_a}/{o.i_sink_max_a} A, slew {o.slew_v_per_s} V/s, swing {o.v_sat} V, Cin "
        f"{o.input_capacitance_f:g} F, Iq {o.quiescent_current_a:g} A",
    ] + _input_port_lines(o)
    lines += [
        "* input stage: gm (v+ - v-) clamped at +-ISLEW into R1 || C1 (A0 = GM R1, GBW = GM / 2 pi C1, SR = ISLEW / C1)",
        f"bgm 0 n1 I = min(max({_fmt(_GM)} * v(inp_os, inm), {_fmt(-i_slew)}), {_fmt(i_slew)})",
        f"r1 n1 0 {_fmt(r1)}",
        f"c1 n1 0 {_fmt(c1)}",
    ]
    node = "n1"
    if o.pole2_hz is not None:
        lines += ["* second pole", "e2 n2a 0 n1 0 1", "r2 n2a n2 1", f"c2 n2 0 {_fmt(1 / (2 * math.pi * o.pole2_hz))}"]
        node = "n2"
    lines += [
        "* swing limiter (no-load swing VSAT), then a Norton output stage: (vint - vout) / ROUT clamped to the limits",
        f"blim vint 0 V = v({node}) / pwr(1 + pwr(abs(v({node})) / {_fmt(vsat)}, {_fmt(o.saturation_sharpness)}), "
        f"{_fmt(1 / o.saturation_sharpness)})",
        f"bout 0 outi I = min(max((v(vint) - v(out)) / {_fmt(o.rout_ohm)}, {_fmt(-isnk)}), {_fmt(isrc)})",
        "vsense outi out DC 0",
        "* supply: quiescent current between the rails, the output current from the rail that delivers it",
        "bsrc vcc 0 I = max(i(vsense), 0)",
        "bsnk 0 vee I = max(-i(vsense), 0)",
        f"iq vcc vee DC {_fmt(o.quiescent_current_a)}",
        f".ends {MACRO_SUBCKT}",
    ]
    return "\n".join(lines)


def _input_port_lines(o: OpAmpConfig) -> list[str]:
    """The subcircuit line, the input offset source and the input capacitances both topologies share."""
    lines = [f".subckt {MACRO_SUBCKT} inp inm out vcc vee", f"vos inp inp_os DC {_fmt(o.offset_v)}"]
    if o.input_capacitance_f > 0:
        lines += [f"cinp inp 0 {_fmt(o.input_capacitance_f)}", f"cinm inm 0 {_fmt(o.input_capacitance_f)}"]
    return lines


def _limits(o: OpAmpConfig) -> tuple[float, float, float, float]:
    c = _GM / (2 * math.pi * o.gbw_hz)
    i_slew = _UNLIMITED if o.slew_v_per_s is None else o.slew_v_per_s * c
    vsat = _UNLIMITED if o.v_sat is None else o.v_sat
    isrc = _UNLIMITED if o.i_source_max_a is None else o.i_source_max_a
    isnk = _UNLIMITED if o.i_sink_max_a is None else o.i_sink_max_a
    return i_slew, vsat, isrc, isnk


def miller_macromodel_text(o: OpAmpConfig) -> str:
    """The Miller two-stage macromodel: input transconductance GM (current clamped at +-ISLEW) into R1 at node n1,
    an inverting output stage of transconductance gm2 = A2 / Rout (-A2 v(n1) behind Rout, current clamped, the
    clamps closing at the swing limit), and the compensation capacitor Cc (with a nulling resistor 1/gm2) from n1 to the output.
    DC gain GM R1 A2 = A0 unloaded, A0 RL / (RL + Rout) loaded; unity-gain frequency GM / (2 pi Cc) whatever the
    resistive load; slew ISLEW / Cc; second pole gm2 / C2 from a capacitance C2 at the output stage."""
    if o.gbw_hz is None:
        raise ConfigError(f"op-amp {o.name!r}: the macromodel needs a gain-bandwidth (opamp.gbw_hz)")
    gm2 = o.output_stage_gm_s
    a2 = gm2 * o.rout_ohm
    cc = _GM / (2 * math.pi * o.gbw_hz)
    r1 = o.gain / (_GM * a2)
    i_slew, vsat, isrc, isnk = _limits(o)
    lines = [
        f"* {MACRO_SUBCKT}: {o.name} (amc/hw/opamp_models.py, Miller two-stage): A0 {o.gain:g}, GBW {o.gbw_hz:g} Hz, "
        f"pole2 {o.pole2_hz if o.pole2_hz is not None else 'none'}, Rout {o.rout_ohm:g} ohm, output stage "
        f"{gm2:g} S, Isource/Isink {o.i_source_max_a}/{o.i_sink_max_a} A, slew {o.slew_v_per_s} V/s, swing "
        f"{o.v_sat} V, Cin {o.input_capacitance_f:g} F, Iq {o.quiescent_current_a:g} A",
    ] + _input_port_lines(o)
    lines += [
        "* input stage: -gm (v+ - v-) clamped at +-ISLEW into R1; Cc (with Rz = 1/gm2) from n1 to the output stage",
        f"bgm n1 0 I = min(max({_fmt(_GM)} * v(inp_os, inm), {_fmt(-i_slew)}), {_fmt(i_slew)})",
        f"r1 n1 0 {_fmt(r1)}",
        f"rz n1 nz {_fmt(1 / gm2)}",
        f"cc nz outi {_fmt(cc)}",
        "* output stage: (-A2 v(n1) - v(out)) / Rout, clamped to the current limits; each limit collapses over the",
        "* last 5 % of the swing (the output device leaving saturation), so the unloaded output stops at +-VSAT",
        f"bout 0 outi I = min(max((-{_fmt(a2)} * v(n1) - v(out)) / {_fmt(o.rout_ohm)}, "
        f"{_fmt(-isnk)} * min(1, max(0, ({_fmt(vsat)} + v(out)) / {_fmt(RAIL_BAND * vsat)}))), "
        f"{_fmt(isrc)} * min(1, max(0, ({_fmt(vsat)} - v(out)) / {_fmt(RAIL_BAND * vsat)})))",
    ]
    if o.pole2_hz is not None:
        lines.append(f"c2 outi 0 {_fmt(gm2 / (2 * math.pi * o.pole2_hz))}")
    lines += [
        "vsense outi out DC 0",
        "bsrc vcc 0 I = max(i(vsense), 0)",
        "bsnk 0 vee I = max(-i(vsense), 0)",
        f"iq vcc vee DC {_fmt(o.quiescent_current_a)}",
        f".ends {MACRO_SUBCKT}",
    ]
    return "\n".join(lines)


@functools.lru_cache(maxsize=32)
def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"opamp.subckt: cannot read {path}: {exc.strerror if isinstance(exc, OSError) else exc}") \
            from None


def subckt_ports(text: str, name: str, where: str) -> list[str]:
    """The port names of ``.subckt NAME`` in a library text (a clear error when it is missing)."""
    for line in _joined_lines(text):
        words = line.split()
        if len(words) >= 2 and words[0].lower() == ".subckt" and words[1].lower() == name.lower():
            ports = [w for w in words[2:] if "=" not in w and w.lower() != "params:"]
            return ports
    raise ConfigError(f"{where}: no '.subckt {name}' in the file")


def _joined_lines(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.splitlines():
        if raw.startswith("+") and lines:
            lines[-1] += " " + raw[1:]
        else:
            lines.append(raw)
    return lines


def library_text(opamp: OpAmpConfig) -> str:
    """The subcircuit text to inline for a non-behavioural op-amp."""
    if opamp.model == "macromodel":
        return macromodel_text(opamp)
    if opamp.model == "transistor":
        return TRANSISTOR_LIBRARY.read_text().strip()
    if opamp.model == "subckt":
        text = _read(str(opamp.subckt))
        ports = subckt_ports(text, opamp.name, f"opamp.subckt {opamp.subckt}")
        if len(ports) != len(PIN_ROLES):
            raise ConfigError(f"opamp.subckt {opamp.subckt}: .subckt {opamp.name} has {len(ports)} ports "
                              f"({' '.join(ports)}); opamp.pins names {len(PIN_ROLES)} ({', '.join(PIN_ROLES)})")
        # A library file may end with .end (it would end the deck here): drop it.
        body = "\n".join(line for line in text.strip().splitlines() if line.strip().lower() != ".end")
        return f"* user op-amp {opamp.name}, inlined from {opamp.subckt}\n" + body
    raise ValueError(f"no library text for the {opamp.model} model")


def instance(label: str, nodes: dict, opamp: OpAmpConfig) -> str:
    """One instance line: ``nodes`` maps each role (inp, inm, out, vcc, vee) to a deck node."""
    roles = list(opamp.pins) if opamp.model == "subckt" else list(PIN_ROLES)
    return f"{label} {' '.join(nodes[r] for r in roles)} {subckt_name(opamp)}"


def library_digest(opamp: OpAmpConfig) -> str:
    """Identifies the circuit a transistor/subckt op-amp is (its file's text, name, pins and supply)."""
    text = library_text(opamp)
    key = f"{opamp.model}|{subckt_name(opamp)}|{opamp.pins}|{opamp.supply_v!r}|{text}"
    return hashlib.sha256(key.encode()).hexdigest()


def resolved(config: CircuitConfig) -> CircuitConfig:
    """The config with a transistor/subckt op-amp's figures replaced by its ngspice characterisation (cached per
    circuit); other models are returned as they are."""
    o = config.opamp
    if o.model not in ("transistor", "subckt"):
        return config
    from amc.hw.characterise import characterise_config
    figures = characterise_config(o)
    return dataclasses.replace(config, opamp=dataclasses.replace(o, **figures.opamp_fields()))


_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.$-]*$")


def check_name(name: str, where: str) -> str:
    if not _SAFE.match(name or ""):
        raise ConfigError(f"{where}: {name!r} is not a subcircuit name")
    return name
