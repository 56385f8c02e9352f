"""The `amc` command: the application shell over the circuit core, training and the sweep engine.

One module per command group (``circuit``, ``cost``, ``train``, ``compare``, ``sweep``, ``plot``), each exposing
``NAME_main(argv) -> int``; this module dispatches to them and is the one place where an error becomes a line on
stderr and an exit code. The library layering (amc/ imports neither training/ nor workflow/) has one exemption:
this package, which imports them inside the command functions only, so `amc --help` and the circuit commands
never load them.
"""
from __future__ import annotations

import difflib
import importlib
import os
import signal
import sys
import threading
import warnings

USAGE = """usage: amc COMMAND [options]

commands:
  netlist   write the ngspice deck of the inversion circuit for H x = g
  solve     solve H x = g through the simulated circuit (or numpy)
  readback  x from the output of `ngspice -b deck.cir` for a deck amc wrote
  train     train the letter CNN (configs/train/*.yaml)
  compare   epochs-to-target study of optimisers (configs/compare/*.yaml)
  sweep     run a YAML sweep study (configs/sweeps/*.yaml)
  plot      draw the figures of a results directory
  cost      time and energy of a circuit, a K-FAC training config, a network or a study, against digital
  characterise  measure an op-amp subcircuit in ngspice (amc characterise opamp FILE --name N --supply V)

`amc COMMAND --help` shows the options of one command; `amc --version` the installed version."""

# command -> (module of this package, its entry function); modules are imported only when their command runs
COMMANDS = {
    "netlist": ("circuit", "netlist_main"),
    "solve": ("circuit", "solve_main"),
    "readback": ("circuit", "readback_main"),
    "characterise": ("circuit", "characterise_main"),
    "train": ("train", "train_main"),
    "compare": ("compare", "compare_main"),
    "sweep": ("sweep", "sweep_main"),
    "plot": ("plot", "plot_main"),
    "cost": ("cost", "cost_main"),
}

EXIT_ERROR = 2          # a problem the user can fix: configuration, input, files
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed
    try:
        return installed("amc-cosim")
    except PackageNotFoundError:
        return "unknown (not installed; run `make install`)"


def main(argv: list[str] | None = None) -> int:
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:  # Ctrl-C while a command was still being imported
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _dispatch(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("MPLBACKEND", "Agg")  # a command draws into files; never open a window
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"amc {version()}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"amc: unknown command {command!r}{suggestion(command, COMMANDS)}\n\n{USAGE}", file=sys.stderr)
        return EXIT_ERROR
    module, function = COMMANDS[command]
    return run(lambda args: getattr(importlib.import_module(f"{__name__}.{module}"), function)(args), rest)


def suggestion(word: str, choices) -> str:
    """' (did you mean X?)' for the nearest of ``choices`` (difflib's ratio), else ''."""
    near = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def run(main, argv: list[str]) -> int:
    """Run a command; the one path from an error to the user: a known problem (any ``AmcError``, including the
    training layer's config, data and run errors, and files that cannot be read or written) becomes one line
    ``error: ...`` on stderr and exit code 2, never a traceback. Ctrl-C exits with 130 after one line; warnings
    are one line each. Anything else is a bug and keeps its traceback.
    """
    from amc.errors import AmcError
    previous = warnings.showwarning
    warnings.showwarning = _one_line_warning
    previous_sigint = _install_interrupt_handler()
    try:
        return main(argv)
    except AmcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RuntimeError as exc:
        # Ctrl-C while a module is being imported: Python wraps the KeyboardInterrupt raised inside a class body
        # (dataclass __set_name__) into a RuntimeError
        if isinstance(exc.__cause__, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        raise
    except OSError as exc:
        # Files the user named or a directory it must write to: read-only, full disk, missing.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.showwarning = previous
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)


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
