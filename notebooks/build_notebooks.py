"""Write the two walkthrough notebooks from the cell sources below, executed, with their figures embedded.

    python notebooks/build_notebooks.py             # write and execute (about two minutes)
    python notebooks/build_notebooks.py --no-execute  # write the cells only (outputs empty)

Edit the cells here rather than in the .ipynb files, so the notebooks stay reviewable as plain text.
tests/workflow/test_notebooks.py executes both, top to bottom, with nbclient, and checks the figures are inline.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

CIRCUIT = [
    new_markdown_cell("""# 01 - The INV circuit, step by step

Closed-loop analog matrix inversion (Sun et al., PNAS 2019): an n x n crosspoint array of RRAM conductances sits
in the feedback loop of n op-amps; injecting currents I = I0 g into the row lines makes the op-amp outputs settle
at V = -(G0 H)^-1 I, so x = H^-1 g is read off the outputs. This notebook walks through one solve with the
`amc` circuit core: the netlist ngspice runs, the operating point, the transient waveforms (settling time and
energy), and what the non-idealities (conductance levels, op-amp gain, programming error, wire resistance) do
to the answer. Settings are small so it runs in under a minute."""),
    new_code_cell("""# Settings: small on purpose (the notebook test runs this top to bottom)
N = 8                 # matrix size
CONDITION = 10.0      # condition number of the SPD test matrix
PRESET = "rram"       # 0.5-35 uS TaOx cells, AD823-class op-amps (see amc.config.PRESETS)"""),
    new_code_cell("""%matplotlib inline
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from amc import AnalogSolver, CircuitConfig
from workflow.matrices import make_problem, validate_matrix_spec

config = CircuitConfig.preset(PRESET).replace(**{"device.levels": None})  # continuous cells first
print(config)
H, g = make_problem(validate_matrix_spec({"n": N, "kind": "spd", "condition": CONDITION, "seed": 0}, "notebook"))
x_exact = np.linalg.solve(H, g)
print("H eigenvalues:", np.round(np.linalg.eigvalsh(H), 3))"""),
    new_markdown_cell("""## The netlist
The solver maps H onto a differential pair of arrays (G+ - G- = G0 H), picks the input scale I0 so no output
leaves the op-amp swing, and writes an ngspice deck with named nodes (`row_i`, `out_j`, `nout_j`) and the mapping
in its header. The same deck runs stand-alone with `ngspice -b`."""),
    new_code_cell("""solver = AnalogSolver(config)
op = solver.solve(H, g)
deck = op.netlist
lines = deck.splitlines()
print(f"{len(lines)} lines; the first 30:")
print("\\n".join(lines[:30]))
deck_path = Path(tempfile.mkdtemp()) / "inv.cir"
deck_path.write_text(deck)
print("...\\nwritten to", deck_path)"""),
    new_markdown_cell("""## Operating point (.op)
x is read from the op-amp outputs: x = -V(out) G0 max|g| / I0."""),
    new_code_cell("""print(op.summary())
print(f"relative error vs numpy: {op.error_against(x_exact):.2e}")
print(f"lambda_min of the mapped loop matrix: {op.lambda_min:.3f}, G0 = {op.g0_s:.3e} S")
for j in range(min(N, 8)):
    print(f"x[{j}]  circuit {op.x[j]: .6f}   numpy {x_exact[j]: .6f}")"""),
    new_markdown_cell("""## Transient (.tran): settling time and energy
With single-pole op-amps (GBW 16 MHz) the loop settles in a time ~ 1/(2 pi GBW lambda_min). The settling time is
the first instant after which every output stays within 0.1% of its final value; the energy is the supply power
integrated up to it."""),
    new_code_cell("""tran = solver.solve(H, g, transient=True)
print(tran.summary())
wave = tran.waveforms[0]
fig, ax = plt.subplots(figsize=(6.4, 4))
for row in wave["outputs"]:
    ax.plot(np.asarray(wave["time"]) * 1e6, row, lw=0.8)
ax.axvline(float(tran.settling_time_s) * 1e6, color="k", ls=":", label="settling time")
ax.set_xlabel("time (µs)"); ax.set_ylabel("op-amp output V(out_j) (V)"); ax.legend()
ax.set_title(f"n = {N}, preset {PRESET} (continuous cells): outputs settle in "
             f"{float(tran.settling_time_s) * 1e6:.3g} µs", fontsize=10)
plt.show()"""),
    new_markdown_cell("""## Non-idealities
Each knob is a dotted key of the configuration. Quantised conductances (levels), finite op-amp gain, programming
error and wire resistance each leave their mark on the solution error. The same study at scale is a sweep:
`configs/sweeps/precision_levels_gain.yaml`, `device_variation_mc.yaml`, `ir_drop.yaml`."""),
    new_code_cell("""def error(**overrides):
    cfg = CircuitConfig.preset(PRESET).replace(**overrides)
    try:
        return AnalogSolver(cfg).solve(H, g).error_against(x_exact)
    except Exception as exc:  # e.g. too few levels to map H: a result too
        return f"fails ({type(exc).__name__})"

rows = []
for levels in (4, 8, 16, 64, None):
    rows.append(("device.levels", levels, error(**{"device.levels": levels})))
for gain in (1e3, 1e4, 1e5):
    rows.append(("opamp.gain", gain, error(**{"device.levels": None, "opamp.gain": gain})))
for sigma in (0.01, 0.05):
    rows.append(("device.program_sigma", sigma, error(**{"device.levels": None, "device.program_sigma": sigma})))
for ohm in (1.0, 5.0):
    rows.append(("wires (row = col ohm)", ohm, error(**{"device.levels": None, "wires.row_ohm": ohm, "wires.col_ohm": ohm})))
for key, value, err in rows:
    print(f"{key:24s} {str(value):>8s}   relative error {err if isinstance(err, str) else f'{err:.2e}'}")"""),
    new_markdown_cell("""## The same as a sweep
A sweep runs such a grid in worker processes, appends every point's metrics to `records.jsonl` the moment it
finishes (a rerun resumes), and draws the figures. Here in-process (`executor="serial"`) on a tiny grid."""),
    new_code_cell("""from workflow.engine import run_sweep
from workflow.spec import build_sweep

sweep = build_sweep({"name": "notebook", "base": {"circuit": PRESET, "matrix": {"n": N, "condition": CONDITION}},
                     "grid": {"device.levels": [8, 64, None], "opamp.gain": [1e3, 1e5]}}, source="notebook")
out = Path(tempfile.mkdtemp()) / "sweep"
report = run_sweep(sweep, out, executor="serial", progress=False)
print(report.summary())
print((out / "records.csv").read_text().splitlines()[0])
for path in report.figures:
    if path.suffix == ".png":
        display(Image(filename=str(path)))"""),
]

TRAINING = [
    new_markdown_cell("""# 02 - Training with the circuit in the loop

K-FAC preconditions each layer's gradient with the inverses of two Kronecker factors (A = E[a a^T], G = E[g g^T],
damped). Here every factor solve is one settle of a programmed INV array (method `direct`, the published one-step
dataflow; `amc.build_solver` behind `training.solvers`): each inverse update programs the damped factors into
their arrays, and every step's solves are settles of those arrays. We train the small letter CNN on the embedded
synthetic letters next to exact (numpy) K-FAC and SGD-momentum, and look at what the arrays did.
Settings are tiny so the notebook runs in about a minute; `make sim` runs a larger version."""),
    new_code_cell("""# Settings: small on purpose
N_CLASSES, N_TRAIN, N_TEST = 6, 300, 120
EPOCHS = 1.0
CIRCUIT = {"preset": "rram", "device": {"levels": None}}   # continuous cells, AD823-class op-amps"""),
    new_code_cell("""%matplotlib inline
import tempfile

import matplotlib.pyplot as plt
from IPython.display import Image, display

from training.config import config_from_dict
from training.loop import train

def run(label, optimizer):
    cfg = config_from_dict({
        "name": label,
        "data": {"source": "synthetic-letters", "n_classes": N_CLASSES, "n_train": N_TRAIN, "n_test": N_TEST},
        "optimizer": optimizer,
        "train": {"epochs": EPOCHS, "evals_per_epoch": 4, "progress": False, "checkpoint": False, "resume": False},
    })
    return train(cfg, out_dir=tempfile.mkdtemp(prefix=f"nb-{label}-"))

kfac = {"name": "kfac", "lr": 0.03, "damping": 1e-2, "inverse_every": 10, "max_block": 16}
ONE_STEP = {"name": "direct", "equilibrate": True, "operators": "extracted"}   # a settle per right-hand side
results = {
    "kfac-circuit": run("kfac-circuit", {**kfac, "solver": {"backend": "circuit", "circuit": CIRCUIT,
                                                            "method": ONE_STEP}}),
    "kfac-exact": run("kfac-exact", {**kfac, "solver": {"backend": "numpy"}}),
    "sgd-momentum": run("sgd-momentum", {"name": "sgd", "lr": 0.03, "momentum": 0.9}),
}
for label, r in results.items():
    print(f"{label:14s} final test accuracy {r.final['test_acc']:.3f} after {r.steps} steps")"""),
    new_markdown_cell("""## Learning curves"""),
    new_code_cell("""fig, ax = plt.subplots(figsize=(6.4, 4))
drawn = {}
for label, r in results.items():
    acc = [100 * h["test_acc"] for h in r.history]
    same = [other for other, seen in drawn.items() if seen == acc]   # say so, never hide one curve under another
    ax.plot([h["epoch"] for h in r.history], acc, marker="o", ls="--" if same else "-",
            label=label + (f" (identical to {same[0]})" if same else ""))
    drawn[label] = acc
ax.set_ylim(0, 100)   # the whole accuracy scale: a difference of one test image is not a slope
ax.set_xlabel("epoch"); ax.set_ylabel("test accuracy (%)"); ax.legend()
ax.set_title(f"synthetic letters ({N_CLASSES} classes, {N_TRAIN} training images), circuit preset rram, "
             "continuous cells", fontsize=9)
plt.show()"""),
    new_markdown_cell("""## What the arrays did
Every metrics record of a circuit-backed run carries a `hardware` account: INV settles, MVM reads, programmings
and cells written, conversions, real ngspice runs, the digital flops beside the arrays, the error of the analog
answer before any refinement, every fallback (an exact solve standing in for a failed analog one) with its reason,
and the cost ledger's time and energy."""),
    new_code_cell("""from training.report import hardware_line
hardware = results["kfac-circuit"].final["hardware"]
print(hardware_line(hardware))
for key in ("inv_settles", "programmings", "cells_programmed", "ngspice_runs", "analog_error_mean", "fallbacks"):
    print(f"{key:18s} {hardware[key]}")
print("ledger cost of the analog work:", hardware.get("cost"))"""),
    new_markdown_cell("""## A device-variation study as a sweep
`configs/sweeps/training_variation.yaml` runs the same comparison over programming error and seeds in worker
processes; here a two-point version in-process."""),
    new_code_cell("""from pathlib import Path
from workflow.engine import run_sweep
from workflow.spec import build_sweep

sweep = build_sweep({
    "name": "nb_training", "kind": "training",
    "base": {"circuit": CIRCUIT, "training": {
        "target_accuracy": 0.3,
        "data": {"source": "synthetic-letters", "n_classes": N_CLASSES, "n_train": N_TRAIN, "n_test": N_TEST},
        "optimizer": {**kfac, "solver": {"backend": "circuit", "method": ONE_STEP}},
        "train": {"epochs": 0.5, "evals_per_epoch": 2}}},
    "grid": {"device.program_sigma": [0.0, 0.1]}}, source="notebook")
out = Path(tempfile.mkdtemp()) / "sweep"
report = run_sweep(sweep, out, executor="serial", progress=False)
print(report.summary())
for path in report.figures:
    if path.suffix == ".png":
        display(Image(filename=str(path)))"""),
]


def write(cells, name: str, execute: bool = True) -> Path:
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    if execute:
        import tempfile
        import nbclient
        with tempfile.TemporaryDirectory() as tmp:
            nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                    resources={"metadata": {"path": tmp}}).execute()
    path = HERE / name
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    import sys
    execute = "--no-execute" not in sys.argv[1:]
    print(write(CIRCUIT, "01_circuit_walkthrough.ipynb", execute))
    print(write(TRAINING, "02_training_with_circuit.ipynb", execute))
