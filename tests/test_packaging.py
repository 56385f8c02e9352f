"""A non-editable install, in a directory whose path has a space, solves from anywhere (the model library ships
as package data and decks never name a path into the checkout)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SOLVE = r"""
import numpy as np, amc, amc.cli
from amc import AnalogSolver
h = np.array([[2.0, -0.5, 0.1], [-0.5, 1.5, 0.2], [0.1, 0.2, 1.0]])
g = np.array([1.0, -2.0, 0.5])
x = AnalogSolver("ideal").solve(h, g).x
assert np.allclose(x, np.linalg.solve(h, g), rtol=1e-6), x
print(amc.__file__)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A non-editable install into a directory whose path has a space; (site directory, a directory elsewhere)."""
    tmp_path = tmp_path_factory.mktemp("install")
    source = tmp_path / "source copy"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("amc", "training", "workflow"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site packages"
    # --no-deps/--no-build-isolation: the dependencies and setuptools come from the running environment (quick,
    # offline); what is tested is what the wheel itself carries.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(source)], check=True, capture_output=True, cwd=tmp_path)
    elsewhere = tmp_path / "somewhere else"
    elsewhere.mkdir()
    return target, elsewhere


def _run(installed, code):
    target, elsewhere = installed
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(elsewhere)})


@pytest.mark.slow
def test_non_editable_install_in_a_path_with_a_space_solves_from_another_directory(installed):
    target, _ = installed
    assert (target / "amc" / "data" / "amc_opamps.lib").is_file()
    run = _run(installed, SOLVE)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().startswith(str(target)), run.stdout  # the installed copy, not the checkout


@pytest.mark.slow
def test_hpinv_solves_in_a_path_with_a_space(installed):
    run = _run(installed, "import numpy as np\nfrom amc import MethodSolver\n"
                          "h = np.array([[2.0, -0.5], [-0.5, 1.5]])\n"
                          "print(MethodSolver('rram', method='hp-inv', iterations=3).solve(h, np.ones(2)).relative_error)")
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.slow
def test_console_script_runs_the_cli_package(installed):
    """The installed `amc` script is amc.cli:main: it answers --help and sends a typo to the nearest command."""
    target, elsewhere = installed
    script = target / "bin" / "amc"
    assert "from amc.cli import main" in script.read_text()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(elsewhere)}
    run = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=elsewhere,
                         env=env)
    assert run.returncode == 0 and run.stdout.startswith("usage: amc COMMAND"), run.stderr[-2000:]
    run = subprocess.run([sys.executable, str(script), "sweeep"], capture_output=True, text=True, cwd=elsewhere,
                         env=env)
    assert run.returncode == 2 and "did you mean 'sweep'?" in run.stderr, run.stderr[-2000:]
