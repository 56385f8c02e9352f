"""`amc netlist` and `amc solve`: the circuit core from a shell."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import yaml

from .config import DEFAULT_PRESET, PRESETS, CircuitConfig
from .errors import AccuracyWarning, AmcError, ConfigError, InputError
from .mapping import validate_matrix, validate_rhs, warn_if_inaccurate
from .matrix_io import load_array
from .netlist import build_deck
from .solver import AnalogSolver


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
    solver = AnalogSolver(config)
    d = solver._equilibration(h)
    if d is not None:
        # The deck holds what the solver programs: D H D with inputs D g (x = D y, noted in the header).
        h, g = h * d[:, None] * d[None, :], g * (d if g.ndim == 1 else d[:, None])
    mapped = solver.program(h)
    warn_if_inaccurate(mapped)
    column = g if g.ndim == 1 else g[:, 0]
    if g.ndim == 2 and g.shape[1] > 1:
        print(f"note: g has {g.shape[1]} columns; the deck solves the first one", file=sys.stderr)
    i0 = solver._initial_i0(mapped, column)
    spec = None
    if args.transient:
        from .netlist import TransientSpec
        import math
        if config.opamp.gbw_hz is None:
            raise ConfigError(f"--transient needs op-amps with a gain-bandwidth (opamp.gbw_hz); {config.opamp.name!r} "
                              "has none (use e.g. --preset ideal-dynamic or --set opamp.gbw_hz=16e6)")
        tau = 1.0 / (2 * math.pi * config.opamp.gbw_hz * solver._lambda_min)
        stop = config.simulation.tran_time_constants * tau
        spec = TransientSpec(step_s=stop / config.simulation.tran_points, stop_s=stop)
    deck = build_deck(mapped, solver._currents(column, i0), config, transient=spec,
                      g_scale=float(np.max(np.abs(column))), equilibration=d)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(deck)
        tmp.replace(out)  # never leave a half-written deck behind
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write the deck {out}: {exc.strerror}") from None
    print(f"wrote {out} (n = {mapped.n}, G0 = {mapped.g0:.4g} S, I0 = {i0:.4g} A); run it with: ngspice -b {out}")
    return 0


def solve_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="amc solve", description="Solve H x = g through the simulated circuit.")
    add_circuit_arguments(parser)
    parser.add_argument("--transient", action="store_true", help="also simulate the transient: settling time, energy "
                        "(method direct only)")
    parser.add_argument("--backend", choices=["circuit", "numpy"], default="circuit")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--method", choices=["direct", "hp-inv", "blockamc"], default="direct",
                        help="direct: one INV array; hp-inv: iterative refinement (low-precision INV + bit-sliced "
                             "MVM); blockamc: 2x2 block partitioning over arrays of --array-size")
    parser.add_argument("--array-size", type=int, default=None,
                        help="rows/columns of one array (blockamc: block size, default 32; direct/hp-inv: "
                             "refuse systems larger than this)")
    parser.add_argument("--iterations", type=int, default=10, help="hp-inv: maximum refinement iterations")
    parser.add_argument("--tol", type=float, default=None, help="hp-inv: stop at this measured relative residual")
    parser.add_argument("--refinement", choices=["pcg", "richardson"], default="pcg",
                        help="hp-inv: conjugate gradients preconditioned by the shifted, equilibrated INV array "
                             "(default; converges for any SPD H), or the paper's plain x += INV(r), which needs "
                             "rho(I - H H0^-1) < 1")
    parser.add_argument("--slices", type=int, default=8, help="hp-inv: bit slices of H in the MVM (default 8)")
    parser.add_argument("--mvm-adc-bits", type=int, default=None, help="hp-inv: MVM ADC bits (default: ideal)")
    parser.add_argument("--mvm-dac-bits", type=int, default=None, help="hp-inv: MVM DAC bits (default: ideal)")
    parser.add_argument("--mvm-slices", type=int, default=1, help="blockamc: bit slices of the coupling MVM arrays")
    args = parser.parse_args(argv)
    config = _config_from_args(args)
    h = load_array(args.matrix, "matrix")
    g = load_array(args.rhs, "rhs")
    if args.method == "direct" and args.array_size is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AccuracyWarning)
            solution = AnalogSolver(config, backend=args.backend).solve(h, g, transient=args.transient)
        for item in caught:  # on stderr as one line each, and in the JSON record
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)
        exact = np.linalg.solve(h, g)
        if args.json:
            record = solution.to_dict()
            if caught:
                record["warnings"] = [str(item.message) for item in caught]
            record["relative_error_vs_numpy"] = solution.relative_error(exact)
            record["config"] = config.name
            record["method"] = "direct"
            k = 1 if np.ndim(g) == 1 else np.shape(g)[1]
            record["operations"] = {"inv_solves": k if args.backend == "circuit" else 0,
                                    "mvm_operations": 0, "programmings": 1 if args.backend == "circuit" else 0}
            print(json.dumps(record))
        else:
            np.set_printoptions(precision=6, suppress=False, linewidth=120)
            print(config.describe())
            print("x =", solution.x)
            print(solution.summary())
            print(f"relative error vs numpy.linalg.solve: {solution.relative_error(exact):.3e}")
        return 0
    if args.transient:
        raise InputError(f"--transient is only available with --method direct (without --array-size)")
    from .methods import MethodSolver
    options: dict = {}
    if args.array_size is not None:
        options["array_size"] = args.array_size
    if args.method == "hp-inv":
        options.update(iterations=args.iterations, tol=args.tol, slices=args.slices,
                       mvm_adc_bits=args.mvm_adc_bits, mvm_dac_bits=args.mvm_dac_bits, refinement=args.refinement)
        if args.refinement == "pcg":
            options.update(shift="auto", equilibrate=True)
    elif args.method == "blockamc":
        options.update(mvm_slices=args.mvm_slices)
    solution = MethodSolver(config, method=args.method, backend=args.backend, **options).solve(h, g)
    if args.json:
        record = solution.to_dict()
        record["config"] = config.name
        print(json.dumps(record))
    else:
        np.set_printoptions(precision=6, suppress=False, linewidth=120)
        print(config.describe())
        print("x =", solution.x)
        for item in solution.history:
            print(f"  iteration {item['iteration']:2d}: residual {item['residual']:.3e}, "
                  f"equivalent bits {item['bits']:.1f}")
        print(solution.summary())
        print(f"relative error vs numpy.linalg.solve: {solution.relative_error:.3e}")
    return 0


def _check_writable_dir(directory: Path, option: str) -> None:
    directory = directory if str(directory) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{option}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"{option}: directory {directory} is not writable")


def _interrupt(signum, frame) -> None:
    # A KeyboardInterrupt raised inside one of PySpice's ngspice callbacks is swallowed by cffi (with a traceback)
    # and the solve goes on; so inside a callback, ask again shortly, once ngspice has returned to Python.
    while frame is not None:
        if "PySpice" in frame.f_code.co_filename:
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
            return
        frame = frame.f_back
    raise KeyboardInterrupt


def _install_interrupt_handler():
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return None  # not ours to change (a test runner, a notebook, an ignored SIGINT)
    return signal.signal(signal.SIGINT, _interrupt)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run(main, argv: list[str]) -> int:
    """Run a subcommand; known problems become one clear line on stderr and exit code 2, not a traceback.

    Ctrl-C exits with 130 (the shell's code for SIGINT) after one line; warnings are one line each.
    """
    previous = warnings.showwarning
    warnings.showwarning = _one_line_warning
    previous_sigint = _install_interrupt_handler()
    try:
        return main(argv)
    except AmcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # Files the user named or a directory it must write to: read-only, full disk, missing.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = previous
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)
