"""The `amc` command: one entry point dispatching to the circuit core, training and sweep workflows."""
from __future__ import annotations

import os
import sys

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
        return 130


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
    from amc.cli import netlist_main, run, solve_main
    if command == "netlist":
        return run(netlist_main, rest)
    if command == "solve":
        return run(solve_main, rest)
    if command == "readback":
        from amc.readback import readback_main
        return run(readback_main, rest)
    if command == "train":
        from training.cli import train_main
        return run(train_main, rest)
    if command == "compare":
        from workflow.compare_study import compare_main
        return run(compare_main, rest)
    if command == "cost":
        from amc.cost.cli import cost_main
        from training.config import load_config
        return run(lambda args: cost_main(args, load_training_config=load_config), rest)
    if command == "characterise":
        from amc.characterise_cli import characterise_main
        return run(characterise_main, rest)
    if command in ("sweep", "plot"):
        from workflow import sweep_cli
        return run(getattr(sweep_cli, f"{command}_main"), rest)
    print(f"amc: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
