"""Data flows one way (docs/DESIGN.md sec. 4): the library amc/ imports neither training/ nor workflow/; training/
does not import workflow/ (a study on the sweep engine is workflow's). One exemption: amc/cli/, the application
shell of the `amc` command, which imports training/ and workflow/ inside its command functions only (never at
module level), so `amc --help` and the circuit commands do not load them."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELL = ROOT / "amc" / "cli"


def imported_packages(path: Path, top_level_only: bool = False) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def offenders(package: str, forbidden: set, exempt: Path | None = None) -> dict:
    return {str(p.relative_to(ROOT)): sorted(imported_packages(p) & forbidden)
            for p in sorted((ROOT / package).rglob("*.py"))
            if imported_packages(p) & forbidden and not (exempt and exempt in p.parents)}


@pytest.mark.parametrize("package,forbidden,exempt", [("amc", {"training", "workflow"}, SHELL),
                                                      ("training", {"workflow"}, None)])
def test_lower_layers_do_not_import_higher_ones(package, forbidden, exempt):
    assert not offenders(package, forbidden, exempt)


def test_the_exemption_is_the_cli_package_alone(tmp_path, monkeypatch):
    """The check still fails for any other amc module: a planted import in amc/ outside amc/cli is caught."""
    fake = tmp_path / "amc"
    (fake / "cli").mkdir(parents=True)
    (fake / "cli" / "train.py").write_text("def f():\n    from training.config import load_config\n")
    (fake / "cost").mkdir()
    (fake / "cost" / "sneaky.py").write_text("def f():\n    import workflow.engine\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert offenders("amc", {"training", "workflow"}, fake / "cli") == {"amc/cost/sneaky.py": ["workflow"]}


def test_the_cli_package_imports_higher_layers_only_inside_functions():
    top = {str(p.relative_to(ROOT)): sorted(imported_packages(p, top_level_only=True) & {"training", "workflow"})
           for p in sorted(SHELL.glob("*.py"))}
    assert sorted(top) and not {k: v for k, v in top.items() if v}, top


def test_help_and_a_circuit_command_load_neither_training_nor_workflow(tmp_path):
    code = ("import sys\nfrom amc.cli import main\nassert main(['--help']) == 0\n"
            "rc = main(['netlist', '--matrix', 'missing.npy', '--rhs', 'missing.npy', '-o', 'x.cir'])\n"
            "assert rc == 2, rc\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'training', 'workflow'}))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]", run.stdout
