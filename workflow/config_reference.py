"""The reference of every config key, generated from the dataclasses themselves: key, type, default, unit, meaning.

    python -m workflow.config_reference > docs/config-reference.md

The meaning is the comment written beside (or just above) the field in its dataclass, so the reference cannot drift
from the code: tests/test_config_reference.py regenerates it and compares with the committed file.
"""
from __future__ import annotations

import dataclasses
import inspect
import io
import re
import sys
import tokenize
import typing
from typing import Any

# Units follow from the SI naming convention of the configs (amc/config.py: "every physical quantity is in SI").
UNITS = (("_ohm", "Ω"), ("_hz", "Hz"), ("_v_per_s", "V/s"), ("_gm_s", "S"), ("_s", "s"), ("_a", "A"), ("_v", "V"),
         ("_j", "J"), ("_w", "W"), ("_f", "F"))
NAMED_UNITS = {"g_min": "S", "g_max": "S", "v_sat": "V", "target_swing": "fraction of the swing",
               "linear_fraction": "fraction of v_sat", "program_sigma": "relative (0.03 = 3 %)",
               "read_noise_sigma": "relative (0.03 = 3 %)", "stuck_rate": "fraction of cells",
               "adc_full_scale_fraction": "fraction of v_sat", "dac_bits": "bits", "adc_bits": "bits",
               "bits_per_slice": "bits", "gain": "V/V", "lr": "", "epochs": "epochs"}


# Meanings of the fields whose dataclass carries no comment (keyed by the reference's dotted key).
MEANINGS = {
    "name": "a name for records and figure titles (circuit: kept with '(modified: ...)' when a preset is changed)",
    "device.g_min": "lowest programmable conductance of a cell", "device.g_max": "highest programmable conductance",
    "device.drift_nu_sigma": "spread of the per-cell drift exponent nu (see drift_nu)",
    "device.drift_t0_s": "reference time of the drift law: no drift for reads before t0 after programming",
    "device.seed": "seed of the device draws (programming error, stuck cells, read noise, drift exponents)",
    "opamp.name": "the op-amp's name (a preset: ideal, ad823, opa690, cmos-ic)",
    "opamp.gain": "DC open-loop gain A0 (at least 1)", "opamp.offset_v": "input offset voltage",
    "opamp.supply_v": "symmetric supply rails (+-supply_v)",
    "opamp.quiescent_current_a": "quiescent supply current per amplifier (for supply power and energy)",
    "inverter.kind": "ideal (exact -1) or opamp (inverting amplifier built from the op-amp model)",
    "inverter.resistance_ohm": "the two equal resistors of an op-amp inverter",
    "wires.row_ohm": "wire resistance per crosspoint segment of a row line (0: no wire network)",
    "wires.col_ohm": "wire resistance per crosspoint segment of a column line (0: no wire network)",
    "io.max_rescales": "auto-ranging re-solves allowed when an output saturates",
    "io.dac_bits": "input DAC resolution (null: ideal)", "io.adc_bits": "output ADC resolution (null: ideal)",
    "simulation.tran_points": "time points of a .tran analysis",
    "shift_margin": "shift auto: the symmetric part of the programmed matrix must keep lambda_min >= margin; "
                    "verify: the lambda_min read through the array (Lanczos settles)",
    "mvm.dac_bits": "input DAC resolution of the MVM arrays (null: ideal)",
    "data.n_train": "training images", "data.n_test": "test images",
    "model.channels": "convolution output channels", "model.kernel": "convolution kernel size (pixels)",
    "model.pool": "max-pool window (must divide the convolution output)", "optimizer.lr": "learning rate",
    "train.epochs": "epochs to train (fractions allowed)", "train.batch_size": "images per step",
    "opamp.pole2_hz": "macromodel: second pole (null: none)",
    "opamp.rout_ohm": "macromodel: open-loop output resistance",
    "opamp.i_source_max_a": "macromodel: output current limit when sourcing (null: unlimited)",
    "opamp.i_sink_max_a": "macromodel: output current limit when sinking (null: unlimited)",
    "opamp.slew_v_per_s": "macromodel: slew-rate limit (null: none)",
    "opamp.input_capacitance_f": "macromodel: capacitance at the inputs",
    "opamp.subckt": "model subckt: the user's subcircuit file (run `amc characterise` on it)",
    "opamp.pins": "model subckt: the subcircuit's ports by role, in its port order (each of amc.config.PIN_ROLES once)",
    "wires.col_cap_f": "column-line capacitance per crosspoint segment (transient decks only)",
    "wires.cell_cap_f": "capacitance across each cell (transient decks only)",
    "train.evals_per_epoch": "test evaluations per epoch (the learning curve's points)",
    "train.out_dir": "where the run's log and checkpoint go ({name}: the config's name)",
    "train.checkpoint": "write a checkpoint at every evaluation", "train.max_steps": "stop after this many steps",
}


def unit(name: str) -> str:
    if name in NAMED_UNITS:
        return NAMED_UNITS[name]
    for suffix, symbol in UNITS:
        if name.endswith(suffix):
            return symbol
    return ""


def comments(cls) -> dict[str, str]:
    """Field name -> the comment beside it, or the comment lines just above it, in the class source."""
    source = inspect.getsource(cls)
    out: dict[str, str] = {}
    pending: list[str] = []
    lines = source.splitlines()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    inline = {t.start[0]: t.string.lstrip("# ").strip() for t in tokens if t.type == tokenize.COMMENT
              and lines[t.start[0] - 1].strip() != t.string.strip()}
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# ").strip())
            continue
        field = re.match(r"\s{4}(\w+)\s*:\s*[^=]+(=|$)", line)
        if field and not stripped.startswith(("def ", "return", "@")) and line.startswith("    ") \
                and not line.startswith("        "):
            text = " ".join(pending + ([inline[number]] if number in inline else []))
            out[field.group(1)] = text
        if not stripped.startswith("#"):
            pending = []
    return out


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = typing.get_args(tp)
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is list:
        return "list"
    if tp is Any:
        return "any"
    if dataclasses.is_dataclass(tp):
        return "section"
    return getattr(tp, "__name__", str(tp))


def default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(value):
            return "(section)"
    else:
        return "(required)"
    return "null" if value is None else repr(value)


def rows(cls, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    meaning = comments(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            continue
        text = meaning.get(f.name, "") or MEANINGS.get(f"{prefix}{f.name}", "")
        out.append(f"| `{prefix}{f.name}` | {type_name(tp)} | `{default_text(f)}` | {unit(f.name)} | "
                   f"{text.replace('|', chr(92) + '|')} |")
    return out


def table(title: str, intro: str, sections: list[tuple[Any, str]]) -> list[str]:
    lines = [f"## {title}", "", intro, "", "| key | type | default | unit | meaning |", "|---|---|---|---|---|"]
    for cls, prefix in sections:
        lines += rows(cls, prefix)
    return lines + [""]


def reference() -> str:
    from amc.config import SECTIONS, CircuitConfig
    from amc.methods.config import VARIANTS
    from training import config as tc

    circuit = [(CircuitConfig, "")] + [(cls, f"{name}.") for name, cls in SECTIONS.items()]
    lines = ["# Configuration reference", "",
             "Generated from the dataclasses by `python -m workflow.config_reference > docs/config-reference.md`; "
             "do not edit by hand. Every key is checked when a config is read: an unknown key is an error that names "
             "it (with a suggestion for a near miss), a value of the wrong type or out of range is refused by name. "
             "Units are SI. Presets (`amc.config.PRESETS`, `amc.methods.config.PRESETS`) set several keys at once; "
             "the defaults below are those of the dataclasses.", ""]
    lines += table("Circuit (`--config circuit.yaml`, `--set KEY=VALUE`, sweep keys `circuit.KEY` or `KEY`)",
                   "A circuit YAML may start from `preset: NAME` and give `opamp: NAME` for an op-amp preset.",
                   circuit)
    for name, cls in VARIANTS.items():
        sections = [(cls, "")] + [(f.type if not isinstance(f.type, str) else typing.get_type_hints(cls)[f.name],
                                   f"{f.name}.") for f in dataclasses.fields(cls) if f.name == "mvm"]
        lines += table(f"Method `{name}` (`{cls.__name__}`; `--method {name}`, one flag per key: `--iterations`, "
                       "`--mvm-slices`, ...; YAML `method:`)",
                       f"{(cls.__doc__ or '').split(chr(10))[0]} A key not listed here is an unknown key for "
                       f"method `{name}`.", sections)
    lines += table("Training (`amc train CONFIG.yaml`, `--set KEY=VALUE`)",
                   "`optimizer.solver.circuit` and `optimizer.solver.method` take the circuit and method specs above.",
                   [(tc.Config, ""), (tc.DataConfig, "data."), (tc.ModelConfig, "model."),
                    (tc.OptimizerConfig, "optimizer."), (tc.SolverConfig, "optimizer.solver."),
                    (tc.TrainConfig, "train.")])
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
