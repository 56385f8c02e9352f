"""`amc netlist`, `amc solve`, `amc readback`, `amc characterise`: the circuit core from a shell."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import yaml

from amc.config import DEFAULT_PRESET, PRESETS, CircuitConfig
from amc.errors import AccuracyWarning, AmcError, ConfigError, InputError
from amc.hw.mapping import validate_matrix, validate_rhs
from amc.matrix_io import load_array
from amc.hw.inv_array import InvArray
from amc.methods.config import METHOD_NAMES, PRESETS as METHOD_PRESETS, MethodConfig, MVMSection, method_keys
from amc.methods import MethodSolver, method_config


def _config_from_args(args) -> CircuitConfig:
    if getattr(args, "config", None):
        config = CircuitConfig.from_yaml(args.config)
    else:
        config = CircuitConfig.preset(args.preset or DEFAULT_PRESET)
    overrides = {}
    for item in getattr(args, "overrides", None) or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} must look like key=value (e.g. --set device.levels=16)")
        try:
            overrides[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
    return config.replace(**overrides) if overrides else config


def add_circuit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--matrix", required=True, help="H as .npy, .mtx (Matrix Market), .csv or .txt")
    parser.add_argument("--rhs", required=True, help="g as .npy, .mtx, .csv or .txt: shape (n,) or (n, k)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=sorted(PRESETS), help=f"circuit preset (default {DEFAULT_PRESET})")
    source.add_argument("--config", help="circuit YAML file (see configs/circuits/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one circuit setting with a dotted key, e.g. --set device.levels=16 (repeatable)")


def netlist_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="amc netlist", description="Write the ngspice deck of the INV circuit for H x = g.")
    add_circuit_arguments(parser)
    parser.add_argument("--transient", action="store_true", help="emit a .tran analysis instead of .op")
    parser.add_argument("-o", "--output", required=True, help="deck file to write (.cir)")
    args = parser.parse_args(argv)
    out = Path(args.output)
    _check_writable_dir(out.parent, "-o")
    config = _config_from_args(args)
    h = validate_matrix(load_array(args.matrix, "matrix"))
    g = validate_rhs(load_array(args.rhs, "rhs"), h.shape[0])
    if g.ndim == 2 and g.shape[1] > 1:
        print(f"note: g has {g.shape[1]} columns; the deck solves the first one", file=sys.stderr)
    if args.transient and config.opamp.gbw_hz is None:
        raise ConfigError(f"--transient needs op-amps with a gain-bandwidth (opamp.gbw_hz); {config.opamp.name!r} "
                          "has none (use e.g. --preset ideal-dynamic or --set opamp.gbw_hz=16e6)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AccuracyWarning)
        array = InvArray(config).program(h)
        from amc.hw.mapping import warn_if_inaccurate
        warn_if_inaccurate(array.mapped)
    for item in caught:
        warnings.showwarning(item.message, item.category, item.filename, item.lineno)
    from amc.hw.netlist import standalone
    deck = standalone(array.deck(g, transient=args.transient))
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(deck)
        tmp.replace(out)  # never leave a half-written deck behind
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write the deck {out}: {exc.strerror}") from None
    print(f"wrote {out} (n = {array.n}, G0 = {array.mapped.g0:.4g} S); run it with: ngspice -b {out} > ngspice.out"
          + ("" if args.transient else f"; then x: amc readback {out} ngspice.out"))
    return 0


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per MethodConfig field (``--iterations``, ``--mvm-slices``, ...), values spelt as in YAML."""
    parser.add_argument("--method", default="direct",
                        help=f"a method preset ({', '.join(METHOD_PRESETS)}) or name ({', '.join(METHOD_NAMES)}); "
                             "default direct")
    for name, (f, methods) in method_keys().items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=f"method__{name}", default=None, metavar="VALUE",
                            type=_yaml_value, help=f"method.{name} ({', '.join(methods)}; default {f.default!r})")
    for f in dataclasses.fields(MVMSection):
        parser.add_argument(f"--mvm-{f.name.replace('_', '-')}", dest=f"method__mvm.{f.name}", default=None,
                            metavar="VALUE", type=_yaml_value, help=f"method.mvm.{f.name} (default {f.default!r})")


def _yaml_value(text: str):
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def method_from_args(args) -> MethodConfig:
    options = {key[len("method__"):]: value for key, value in vars(args).items()
               if key.startswith("method__") and value is not None}
    return method_config(args.method, options, source="command line")


def solve_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="amc solve", description="Solve H x = g through the simulated circuit.")
    add_circuit_arguments(parser)
    parser.add_argument("--transient", action="store_true", help="also simulate the transient: settling time, energy "
                        "(method direct only)")
    parser.add_argument("--backend", choices=["circuit", "numpy"], default="circuit")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds-since-programming", type=float, default=None, metavar="SECONDS",
                        help="drift clock: read the array this long after programming (needs device.drift_nu > 0 "
                             "and --operators extracted)")
    add_method_arguments(parser)
    args = parser.parse_args(argv)
    config = _config_from_args(args)
    method = method_from_args(args)
    h = load_array(args.matrix, "matrix")
    g = load_array(args.rhs, "rhs")
    if args.transient and method.name != "direct":
        raise InputError(f"--transient is only available with method direct, not {method.name!r}")
    _check_backend_method(args, method)
    drift_clock = _drift_clock(args, config, method)
    # One path for every method: the CLI hands the method fields to the same solver the Python API builds
    # (amc.solve_system), so --shift, --equilibrate, --operators ... act here exactly as they do there.
    solver = MethodSolver(config, method=method, backend=args.backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AccuracyWarning)
        solution = solver.solve(h, g, seconds_since_programming=drift_clock, transient=args.transient)
        if args.backend == "circuit" and method.name == "direct":
            from amc.hw.mapping import warn_if_inaccurate
            warn_if_inaccurate(solver.program(h).state.mapped)     # the held handle: no new write
    for item in caught:  # on stderr as one line each, and in the JSON record
        warnings.showwarning(item.message, item.category, item.filename, item.lineno)
    if args.json:
        record = solution.to_dict()
        record["config"] = config.name
        record["method_config"] = method.to_dict()
        if caught:
            record["warnings"] = [str(item.message) for item in caught]
        if args.backend == "circuit":
            record["cost"] = _direct_cost(h, g, config) if method.name == "direct" else \
                _method_cost(h, solution, config, method)
        print(json.dumps(record))
    else:
        np.set_printoptions(precision=6, suppress=False, linewidth=120)
        print(config.describe())
        print(repr(method))
        print("x =", solution.x)
        for item in solution.history:
            print(f"  iteration {item['iteration']:2d}: residual {item['residual']:.3e}, "
                  f"equivalent bits {item['bits']:.1f}")
        print(solution.summary())
        print(f"relative error vs numpy.linalg.solve: {solution.relative_error:.3e}")
    return 0


def _check_backend_method(args, method: MethodConfig) -> None:
    """--backend numpy is numpy.linalg.solve: a method other than direct, or any method field, would be a label
    on an answer that method did not produce."""
    if args.backend != "numpy":
        return
    fields_set = sorted(key[len("method__"):] for key, value in vars(args).items()
                        if key.startswith("method__") and value is not None)
    if method.name != "direct" or fields_set:
        what = f"--method {args.method}" if method.name != "direct" else "--" + fields_set[0].replace("_", "-")
        raise ConfigError(f"--backend numpy solves exactly with numpy.linalg.solve: {what} would not be applied; "
                          "drop it or use --backend circuit")


def _drift_clock(args, config: CircuitConfig, method: MethodConfig) -> float:
    """The read time for drift: refused where it would do nothing, required where drift is on."""
    seconds = args.seconds_since_programming
    drift = config.device.drift_nu > 0
    if seconds is not None and not (np.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"--seconds-since-programming must be a non-negative number, got {seconds!r}")
    if seconds is not None and not drift:
        raise ConfigError("--seconds-since-programming needs conductance drift: set device.drift_nu > 0")
    if drift and (seconds is None or seconds <= config.device.drift_t0_s):
        raise ConfigError(f"device.drift_nu = {config.device.drift_nu:g} acts only on reads later than "
                          f"device.drift_t0_s = {config.device.drift_t0_s:g} s after programming: give "
                          "--seconds-since-programming SECONDS (with --operators extracted)")
    return float(seconds or 0.0)


def _direct_cost(h, g, config) -> dict:
    """Ledger cost of this solve on the integrated periphery (amc.cost): one programming of the 2n^2 cells, one settle,
    n DAC and n ADC conversions per column; {"error": ...} when the circuit has no dynamics to price."""
    from amc.cost import HardwareCostModel, direct_solve_cost
    try:
        hw = HardwareCostModel.for_circuit(config)
        return {"hardware_model": hw.describe(), **direct_solve_cost(h, g, hw).to_dict()}
    except AmcError as exc:
        return {"hardware_model": f"the cost ledger (amc.cost) on circuit {config.name!r}", "error": str(exc)}


def _method_cost(h, solution, config, method) -> dict:
    """Ledger cost of a multi-array solve from its operation counts; one INV settle is priced on the loop of H
    itself (the arrays hold its equilibrated, shifted blocks: an approximation, stated in the record)."""
    from amc.cost import HardwareCostModel, cost_of, settle_of_matrix
    try:
        hw = HardwareCostModel.for_circuit(config)
        n = min(h.shape[0], method.array_size or h.shape[0])
        settle = settle_of_matrix(h[:n, :n], hw) if solution.operations.inv_settles else None
        cost = {"hardware_model": hw.describe(), **cost_of(solution.operations, hw, n=n, settle=settle).to_dict()}
        cost["note"] = "INV settle priced on the loop of H's leading block, not the shifted matrix the arrays hold"
        return cost
    except AmcError as exc:
        return {"hardware_model": f"the cost ledger (amc.cost) on circuit {config.name!r}", "error": str(exc)}


def _check_writable_dir(directory: Path, option: str) -> None:
    directory = directory if str(directory) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{option}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"{option}: directory {directory} is not writable")


def readback_main(argv: list[str]) -> int:
    from amc.readback import readback
    p = argparse.ArgumentParser(prog="amc readback", description="x from the output of `ngspice -b deck.cir` "
                                "(e.g. ngspice -b deck.cir > ngspice.out; amc readback deck.cir ngspice.out).")
    p.add_argument("deck", help="the deck amc wrote (.cir)")
    p.add_argument("output", help="what ngspice -b printed ('-' for standard input)")
    p.add_argument("--json", action="store_true", help="print {\"x\": [...]}")
    args = p.parse_args(argv)
    deck = _read(args.deck, "deck")
    output = sys.stdin.read() if args.output == "-" else _read(args.output, "ngspice output")
    x = readback(deck, output)
    if args.json:
        print(json.dumps({"x": x.tolist()}))
    else:
        np.set_printoptions(precision=9, linewidth=120)
        print("x =", x)
    return 0


def _read(path: str, what: str) -> str:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p} is a directory")
    if not p.is_file():
        raise InputError(f"{what} not found: {p}")
    try:
        return p.read_text(errors="replace")
    except OSError as exc:
        raise InputError(f"{what} {p}: cannot read ({exc.strerror})") from None


def characterise_main(argv: list[str]) -> int:
    """`amc characterise opamp FILE --name NAME --pins inp,inm,out,vcc,vee --supply V [--json]`."""
    from amc.config import PIN_ROLES, OpAmpConfig
    parser = argparse.ArgumentParser(prog="amc characterise",
                                     description="Measure an op-amp subcircuit in ngspice: DC gain, unity-gain "
                                                 "frequency, phase margin, output resistance, maximum output current, "
                                                 "slew rate, swing, quiescent current (each with how it was measured).")
    parser.add_argument("what", choices=["opamp"], help="what to characterise (an op-amp subcircuit)")
    parser.add_argument("file", help="the SPICE file holding the .subckt (its .model cards too)")
    parser.add_argument("--name", required=True, help="the subcircuit's name")
    parser.add_argument("--pins", default=",".join(PIN_ROLES),
                        help=f"the roles of the subcircuit's ports in order (default {','.join(PIN_ROLES)})")
    parser.add_argument("--supply", type=float, required=True, help="rails at +-SUPPLY volts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    from amc.hw.characterise import characterise
    pins = [p.strip() for p in args.pins.split(",")]
    if not args.supply > 0:
        raise InputError(f"--supply must be a positive voltage, got {args.supply!r}")
    try:
        opamp = OpAmpConfig(name=args.name, model="subckt", subckt=args.file, pins=pins, supply_v=args.supply,
                            v_sat=None)
        opamp.validate("opamp")
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("opamp.pins", "--pins").replace("opamp.subckt", "FILE")) from None
    figures = characterise(opamp)
    if args.json:
        print(json.dumps(figures.to_dict()))
    else:
        print(figures.report())
    return 0
