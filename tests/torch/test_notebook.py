"""The torch notebook and example script run top to bottom on a small EMNIST-format file written here (the real
files are never needed by a test); the committed notebook is executed, its figures inline."""
import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "03_torch_kfac.ipynb"


def write_emnist_like(folder: Path, n: int = 65, classes: int = 13, seed: int = 0) -> Path:
    """Official EMNIST letters IDX layout (gzip, magic 2051/2049, labels 1..classes), a learnable bright square."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % classes + 1).astype(np.uint8)
    images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = divmod(int(k) - 1, 4)
        images[i, 2 + 6 * r:6 + 6 * r, 2 + 6 * c:6 + 6 * c] = 255
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny-images-idx3-ubyte.gz").write_bytes(gzip.compress(struct.pack(">IIII", 2051, n, 28, 28)
                                                                     + images.tobytes()))
    (folder / "tiny-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 2049, n) + labels.tobytes()))
    return folder


@pytest.mark.slow
def test_notebook_runs_on_small_emnist_format_data(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("AMC_DATA_DIR", str(write_emnist_like(tmp_path / "data")))
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    settings = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# Settings")]
    assert len(settings) == 1
    settings[0].source = settings[0].source.replace("N_TRAIN, N_TEST = 2000, 1000", "N_TRAIN, N_TEST = 39, 26") \
        .replace("BATCH = 64", "BATCH = 16")
    assert "N_TRAIN, N_TEST = 39, 26" in settings[0].source
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert text.count("final test accuracy") == 6 and "inv_settles" in text and "ledger" in text
    rel = float(text.split("max relative difference ")[1].split()[0])
    assert rel < 1e-10
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2


def test_committed_notebook_is_executed_with_figures():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "run python notebooks/build_torch_notebook.py"
    assert sum("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", [])) == 2


@pytest.mark.slow
def test_example_script_runs_and_refuses_missing_data(tmp_path):
    env = dict(os.environ, AMC_DATA_DIR=str(write_emnist_like(tmp_path / "data")), PYTHONPATH=str(ROOT))
    script = str(ROOT / "examples" / "torch_kfac_lenet.py")
    run = subprocess.run([sys.executable, script, "--optimizers", "sgd,kfac-exact", "--n-train", "39",
                          "--n-test", "26", "--batch", "16", "--epochs", "1"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("  final test accuracy") == 4 and "| resnet | kfac-exact |" in run.stdout
    env["AMC_DATA_DIR"] = str(tmp_path / "nowhere")
    bad = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "nowhere: no such directory" in bad.stderr and "Traceback" not in bad.stderr
    worse = subprocess.run([sys.executable, script, "--models", "vgg"], env=env, capture_output=True, text=True)
    assert worse.returncode == 2 and "unknown model or optimizer vgg" in worse.stderr
