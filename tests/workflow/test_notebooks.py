"""Both notebooks run top to bottom (nbclient, kernel python3) on their small built-in settings."""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_circuit_walkthrough.ipynb", "02_training_with_circuit.ipynb"])
def test_notebook_runs(name, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "relative error" in text or "final test accuracy" in text
    # Figures show inline (no forced Agg backend), so they are embedded in the executed notebook.
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2


@pytest.mark.parametrize("name", ["01_circuit_walkthrough.ipynb", "02_training_with_circuit.ipynb"])
def test_committed_notebooks_are_executed_with_their_figures(name):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "run python notebooks/build_notebooks.py"
    assert any("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", []))
