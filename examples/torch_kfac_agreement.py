"""How closely AnalogKFAC agrees with the NumPy loop's K-FAC, and its factors with BackPACK's (float64).

    python examples/torch_kfac_agreement.py

1. The reference CNN (conv 5x5 1->8, max-pool 4, linear 288->13; the NumPy loop's model) with the same weights,
   batches and hyper-parameters (lr 0.03, damping 1e-2, factor decay 0.95, inverses every 2 steps, momentum 0.9,
   KL clip 1e-3, weight decay 1e-4), five steps: the largest relative difference of each step's update.
2. The Kronecker factors of a model with Conv2d (stride 2, padding 1, bias; no bias) and Linear (bias; no bias)
   layers against BackPACK's KFLR (the exact expected Fisher), when backpack-for-pytorch is installed.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from training.model import ConvNet  # noqa: E402
from training.optimizers import KFAC  # noqa: E402
from training.torch import AnalogKFAC  # noqa: E402
from training.torch.models import ReferenceCNN, load_numpy_params  # noqa: E402

HP = dict(lr=0.03, damping=1e-2, momentum=0.9, kl_clip=1e-3, weight_decay=1e-4)


def numpy_agreement(steps: int = 5) -> list:
    net = ConvNet(n_classes=13, channels=8, kernel=5, pool=4, dtype=np.float64)
    params = net.init_params(0)
    kfac = KFAC(net.layers, ema=0.95, factor_every=1, inverse_every=2, seed=3, **HP)
    state = kfac.init(params)
    model = load_numpy_params(ReferenceCNN(13).double(), params)
    opt = AnalogKFAC(model, factor_decay=0.95, factor_update_steps=1, inv_update_steps=2, seed=3, **HP)
    rng = np.random.default_rng(0)
    worst = []
    for _ in range(steps):
        x, y = rng.random((32, 28, 28)), rng.integers(0, 13, 32)
        before = {k: v.copy() for k, v in params.items()}
        _, grads, cache = net.loss_and_grads(params, x, y)
        params, state = kfac.step(params, grads, state, model=net, cache=cache)
        opt.zero_grad()
        F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
        diffs = []
        for key, p in params.items():
            layer, kind = key.split(".")
            t = getattr(getattr(model, layer), "weight" if kind == "W" else "bias").detach().numpy().reshape(p.shape)
            d_np, d_t = p - before[key], t - before[key]
            diffs.append(np.abs(d_np - d_t).max() / np.abs(d_np).max())
        worst.append(max(diffs))
    return worst


def mixed_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 2, bias=False),
                         nn.ReLU(), nn.Flatten(), nn.Linear(36, 5, bias=False), nn.Tanh(), nn.Linear(5, 6)).double()


def backpack_agreement():
    try:
        import backpack
        from backpack.extensions import KFLR
    except ImportError:
        return None
    model, x = mixed_model(), torch.randn(7, 2, 8, 8, dtype=torch.float64)
    opt = AnalogKFAC(model, fisher="empirical")
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    for c in range(p.shape[1]):          # sum_c p_c-weighted losses: the expected Fisher through the hooks
        (p[:, c].sqrt() * F.cross_entropy(model(x), torch.full((7,), c), reduction="none")).mean().backward()
    opt._update_factors()
    bp = backpack.extend(mixed_model())
    loss = backpack.extend(nn.CrossEntropyLoss())(bp(x), torch.randint(0, 6, (7,)))
    with backpack.backpack(KFLR()):
        loss.backward()
    rows, positions = [], {"0": 16, "2": 9}      # BackPACK's conv A sums over output positions; ours averages
    for name, module in bp.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            G_bp, A_bp = (t.numpy() for t in module.weight.kflr)
            f = opt.factors(name)
            n = A_bp.shape[0]
            a = np.abs(f["A"][:n, :n] * positions.get(name, 1) - A_bp).max() / np.abs(A_bp).max()
            g = np.abs(f["G"] * p.shape[1] - G_bp).max() / np.abs(G_bp).max() \
                if isinstance(module, nn.Linear) else None
            rows.append((name, type(module).__name__, module.bias is not None, a, g))
    return rows


def main() -> int:
    worst = numpy_agreement()
    print("AnalogKFAC against the NumPy K-FAC, reference CNN, float64: largest relative update difference per step")
    print("  " + ", ".join(f"{w:.1e}" for w in worst))
    rows = backpack_agreement()
    if rows is None:
        print("BackPACK not installed: factor comparison skipped")
        return 0
    print("Kronecker factors against BackPACK 1.7.1 KFLR (largest relative difference)")
    for name, kind, bias, a, g in rows:
        gs = "n/a (BackPACK's conv G sums positions before the outer product)" if g is None else f"{g:.1e}"
        print(f"  layer {name} {kind}{' +bias' if bias else ''}: A {a:.1e}, G {gs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
