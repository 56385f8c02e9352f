"""Write notebooks/03_torch_kfac.ipynb (AnalogKFAC on torch models, real EMNIST letters) from the cells below.

    python notebooks/build_torch_notebook.py               # write and execute (a few minutes; needs the EMNIST files)
    python notebooks/build_torch_notebook.py --no-execute  # write the cells only

tests/torch/test_notebook.py executes it top to bottom on a small EMNIST-format file it writes itself.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NAME = "03_torch_kfac.ipynb"

SETTINGS = """# Settings: small on purpose (the notebook test replaces this cell with smaller ones)
DATA_DIR = None        # EMNIST letters folder; None: $AMC_DATA_DIR, then ../shared/data/emnist-letters-am, data/emnist
N_TRAIN, N_TEST = 2000, 1000
EPOCHS = 1.0
BATCH = 64
CIRCUIT = {"backend": "circuit", "circuit": {"preset": "rram", "device": {"levels": 16, "program_sigma": 0.03}},
           "method": {"name": "direct", "equilibrate": True, "operators": "extracted", "shift": "auto"}}"""

CELLS = [
    new_markdown_cell("""# 03 - AnalogKFAC: the circuit as a second-order optimizer for any PyTorch model

`training.torch.AnalogKFAC` is a `torch.optim.Optimizer`. Hooks on every `nn.Linear` and `nn.Conv2d` collect the
Kronecker factors; every `inv_update_steps` the damped factors are programmed into (simulated) INV arrays, and every
step each layer's gradient is preconditioned by two solves through the same `Solver` protocol the NumPy loop uses:
exact, or a circuit preset with any solve method (direct, HP-INV, BlockAMC, RePAST), each solve simulated against
ngspice. Here: LeNet-5 and a small residual network (models the NumPy loop cannot run) on real EMNIST letters a-m,
with SGD-momentum, exact K-FAC and one-step circuit K-FAC (16-level TaOx cells, 3 % programming error, AD823-class
op-amps), and the hardware account of each circuit run. No EMNIST files is an error, never another data set."""),
    new_code_cell(SETTINGS),
    new_code_cell("""%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import torch

from training.torch import AnalogKFAC
from training.torch.letters import load_letters, train_epochs
from training.torch.models import LeNet5, SmallResNet

torch.set_num_threads(1)
train, test, classes = load_letters(DATA_DIR, N_TRAIN, N_TEST, seed=0)
print(f"{len(train[0])} training / {len(test[0])} test images, classes {''.join(classes)}")"""),
    new_markdown_cell("""## The loop is the usual one
`AnalogKFAC(model, solver=...)` takes the same `solver:` mapping as a training config (or a `Solver` object);
`max_block=64` makes every factor block fit one 64 x 64 array (the published chip's size), `kl_clip` is
kfac-pytorch's default. The labels K-FAC's G factor needs are sampled from the model inside its forward hook."""),
    new_code_cell("""def run(model_cls, optimizer, seed=0):
    torch.manual_seed(seed)
    model = model_cls(n_classes=len(classes))
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    else:
        opt = AnalogKFAC(model, solver=CIRCUIT if optimizer == "kfac-circuit" else None, lr=0.03, damping=1e-2,
                         kl_clip=1e-3, inv_update_steps=10, max_block=64, seed=seed)
    history = train_epochs(model, opt, train, test, epochs=EPOCHS, batch=BATCH, seed=seed, log=None,
                           evaluate_every=max(1, int(len(train[0]) / BATCH / 4)))
    history["hardware"] = opt.hardware() if isinstance(opt, AnalogKFAC) else None
    print(f"{model_cls.__name__:12s} {optimizer:13s} final test accuracy {history['test_accuracy'][-1]:.3f} "
          f"({history['seconds']:.1f} s)")
    return history

runs = {(m.__name__, o): run(m, o) for m in (LeNet5, SmallResNet) for o in ("sgd", "kfac-exact", "kfac-circuit")}"""),
    new_code_cell("""fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, name in zip(axes, ("LeNet5", "SmallResNet")):
    for (m, o), h in runs.items():
        if m == name:
            ax.plot(h["epoch"], h["test_accuracy"], "o-", label=o)
    ax.set_title(f"{name}, EMNIST letters a-m ({len(train[0])} training images)")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("test accuracy")
axes[0].legend()
plt.tight_layout()
plt.show()"""),
    new_markdown_cell("""## What the arrays did
Each circuit run's hardware account: the same record the NumPy loop writes into its metrics (programmings, INV
settles, conversions, real ngspice runs, digital flops, every fallback with its reason, the analog error before any
refinement, and the cost ledger's time and energy for the analog work)."""),
    new_code_cell("""keys = ["programmings", "cells_programmed", "inv_settles", "mvm_reads", "conversions", "ngspice_runs",
        "digital_flops", "fallbacks", "solves", "analog_error_mean"]
for (m, o), h in runs.items():
    hw = h["hardware"]
    if hw is None:
        continue
    print(f"{m} / {o}:")
    for k in keys:
        v = hw[k]
        print(f"  {k:18s} {v:.3g}" if isinstance(v, float) else f"  {k:18s} {v}")
    cost = hw.get("cost", {})
    if "energy_j" in cost:
        print(f"  ledger             {cost['time_s'] * 1e3:.3g} ms, {cost['energy_j'] * 1e3:.3g} mJ (analog work, whole run)")
    print(f"  fallback reasons   {hw['fallback_reasons'] or 'none'}")"""),
    new_code_cell("""fig, ax = plt.subplots(figsize=(7, 3.5))
names = [f"{m}\\n{o}" for (m, o), h in runs.items() if h["hardware"]]
err = [h["hardware"]["analog_error_mean"] or 0 for h in runs.values() if h["hardware"]]
ax.bar(names, err, color="tab:orange")
ax.set_ylabel("analog error before refinement (mean)")
ax.set_title("one-step INV, 16 levels, 3 % programming error")
plt.tight_layout()
plt.show()"""),
    new_markdown_cell("""## Same update as the NumPy loop
On the reference CNN with the same weights, batch and hyper-parameters, `AnalogKFAC`'s update equals the NumPy
loop's K-FAC (`training.optimizers.KFAC`) to round-off in float64 (`tests/torch/test_agreement.py` holds it to 1e-10
over five steps with momentum, KL clipping, weight decay and two inverse updates)."""),
    new_code_cell("""import torch.nn.functional as F
from training.model import ConvNet
from training.optimizers import KFAC
from training.torch.models import ReferenceCNN, load_numpy_params

net = ConvNet(n_classes=13, dtype=np.float64)
params = net.init_params(0)
kfac = KFAC(net.layers, lr=0.03, damping=1e-2, seed=0)
state = kfac.init(params)
ref = load_numpy_params(ReferenceCNN(13).double(), params)
opt = AnalogKFAC(ref, lr=0.03, damping=1e-2, seed=0)
x, y = train[0][:64, 0].double(), train[1][:64]
_, grads, cache = net.loss_and_grads(params, x.numpy(), y.numpy())
new, _ = kfac.step(params, grads, state, model=net, cache=cache)
F.cross_entropy(ref(x), y).backward()
opt.step()
d_numpy = new["fc.W"] - params["fc.W"]
d_torch = ref.fc.weight.detach().numpy() - params["fc.W"]
print(f"fc update, torch against NumPy: max relative difference {np.abs(d_torch - d_numpy).max() / np.abs(d_numpy).max():.1e}")"""),
]


def build(execute: bool = True) -> Path:
    nb = new_notebook(cells=CELLS, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    if execute:
        from nbclient import NotebookClient
        NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(HERE.parent)}}
                       ).execute()
    out = HERE / NAME
    nbformat.write(nb, out)
    return out


if __name__ == "__main__":
    print(build(execute="--no-execute" not in sys.argv))
