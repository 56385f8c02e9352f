"""The `amc` command as one package (amc/cli/): every command answers --help, an error in any command group takes
the one path to a single line and exit code 2, an unknown command is answered with the nearest one, and
`amc cost training` reads a training config through the loader `amc train` uses."""
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from amc.cli import COMMANDS, main
from amc.config import CircuitConfig
from amc.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
COST_COMMANDS = ["circuit", "training", "network", "solve", "study", "breakeven"]


def amc(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(rc, err):
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("argv", [[c] for c in COMMANDS if c != "cost"] + [["cost", c] for c in COST_COMMANDS])
def test_every_command_answers_help(capsys, argv):
    with pytest.raises(SystemExit) as stop:     # argparse's --help exits 0 after printing
        main([*argv, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: amc {' '.join(argv)}")


def test_top_level_and_cost_help(capsys):
    for argv in ([], ["--help"], ["cost"], ["cost", "--help"]):
        rc, out, _ = amc(capsys, *argv)
        assert rc == 0 and out.startswith("usage: amc" if argv[:1] != ["cost"] else "`amc cost`"), out[:80]
    rc, out, _ = amc(capsys, "--version")
    assert rc == 0 and out.startswith("amc ")


# one bad input per command group; each is refused by a different layer (amc, training, workflow)
BAD_INPUT = {
    "circuit": (["netlist", "--matrix", "{tmp}/missing.npy", "--rhs", "{tmp}/missing.npy", "-o", "{tmp}/x.cir"],
                "missing.npy"),
    "readback": (["readback", "{tmp}/none.cir", "{tmp}/none.out"], "deck not found"),
    "cost": (["cost", "circuit", "--n", "0", "--lambda-min", "0.1"], "--n must be a positive integer"),
    "train": (["train", "{tmp}/bad.yaml"], "optimizer.lr"),
    "compare": (["compare", "{tmp}/none.yaml"], "none.yaml"),
    "sweep": (["sweep", "{tmp}/none.yaml"], "none.yaml"),
    "plot": (["plot", "{tmp}/no-results"], "results directory not found"),
}


@pytest.mark.parametrize("group", sorted(BAD_INPUT))
def test_bad_input_in_each_group_is_one_line_and_rc_2(capsys, tmp_path, group):
    (tmp_path / "bad.yaml").write_text("optimizer: {lr: -1}\n")
    argv, says = BAD_INPUT[group]
    rc, out, err = amc(capsys, *[a.format(tmp=tmp_path) for a in argv])
    one_line_error(rc, err)
    assert says in err, err
    assert not (tmp_path / "x.cir").exists()


def _training_errors():
    from training.config import ConfigError
    from training.data import DataError
    from training.loop import TrainingError
    return [ConfigError("configs/x.yaml: optimizer.lr must be > 0"), DataError("no EMNIST under /nowhere"),
            TrainingError("non-finite loss at step 3")]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_one_error_path_serves_every_command(capsys, monkeypatch, command):
    """The exit code comes from the dispatcher, not from each command: whatever a command raises, a user error
    (amc's, training's, a file) is one line and 2, Ctrl-C 130, a bug keeps its traceback."""
    module, function = COMMANDS[command]
    target = importlib.import_module(f"amc.cli.{module}")
    for exc in [InputError("bad matrix"), *_training_errors(), PermissionError(13, "Permission denied", "/ro/x")]:
        monkeypatch.setattr(target, function, lambda argv, exc=exc: (_ for _ in ()).throw(exc))
        rc, out, err = amc(capsys, command, "anything")
        one_line_error(rc, err)
        assert str(exc) in err or "/ro/x: Permission denied" in err, err
    monkeypatch.setattr(target, function, lambda argv: (_ for _ in ()).throw(KeyboardInterrupt()))
    rc, out, err = amc(capsys, command)
    assert rc == 130 and err == "interrupted\n"
    monkeypatch.setattr(target, function, lambda argv: (_ for _ in ()).throw(ZeroDivisionError("a bug")))
    with pytest.raises(ZeroDivisionError):
        main([command])


@pytest.mark.parametrize("typed, meant", [("slove", "solve"), ("nelist", "netlist"), ("cots", "cost"),
                                          ("characterize", "characterise"), ("trian", "train")])
def test_unknown_command_suggests_the_nearest(capsys, typed, meant):
    rc, out, err = amc(capsys, typed)
    assert rc == 2 and out == ""
    assert err.splitlines()[0] == f"amc: unknown command {typed!r} (did you mean {meant!r}?)"


def test_unknown_command_without_a_near_one(capsys):
    rc, _, err = amc(capsys, "xyzzy")
    assert rc == 2 and err.splitlines()[0] == "amc: unknown command 'xyzzy'" and "usage: amc" in err
    rc, _, err = amc(capsys, "cost", "stdy")
    one_line_error(rc, err)
    assert "unknown cost command 'stdy' (did you mean 'study'?)" in err


def test_python_dash_m_amc_cli(tmp_path):
    run = subprocess.run([sys.executable, "-m", "amc.cli", "solv"], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 2 and "did you mean 'solve'?" in run.stderr


def test_cost_training_refuses_what_train_refuses(capsys, tmp_path):
    """One parser: the same bad training config gets the same one-line refusal from both commands."""
    config = yaml.safe_load((ROOT / "configs/train/synthetic-kfac.yaml").read_text())
    config["optimizer"]["inverse_evry"] = 5
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    refusals = []
    for argv in (["train", path], ["cost", "training", path, "--repeats", "1"]):
        rc, _, err = amc(capsys, *argv)
        one_line_error(rc, err)
        refusals.append(err)
    assert refusals[0] == refusals[1] and "inverse_evry" in refusals[0]


def test_cost_training_prices_the_circuit_a_yaml_path_names(capsys, tmp_path):
    """optimizer.solver.circuit as a circuit YAML path (as `amc train` accepts it) is priced as that circuit."""
    config = yaml.safe_load((ROOT / "configs/train/emnist-am-kfac-circuit.yaml").read_text())
    circuit_file = ROOT / "configs/circuits/rram-ic.yaml"
    config["optimizer"]["solver"]["circuit"] = str(circuit_file)
    path = tmp_path / "yaml-circuit.yaml"
    path.write_text(yaml.safe_dump(config))
    rc, out, err = amc(capsys, "cost", "training", path, "--channels", "7", "--pool", "8", "--repeats", "1", "--json")
    assert rc == 0, err
    record = json.loads(out)
    circuit = CircuitConfig.from_yaml(circuit_file)
    assert record["circuit"].startswith(f"circuit from the run ({circuit.name}, {circuit.device.levels} levels)")
