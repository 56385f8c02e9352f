"""AnalogKFAC against the NumPy loop's K-FAC (training.optimizers.KFAC) on the reference CNN, float64."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.model import ConvNet
from training.optimizers import KFAC
from training.torch import AnalogKFAC
from training.torch.models import ReferenceCNN, load_numpy_params


def pair(seed=3, **hp):
    """The reference CNN (conv 5x5 1->8, max-pool 4, linear 288->13) in NumPy and torch with the same weights."""
    net = ConvNet(n_classes=13, channels=8, kernel=5, pool=4, dtype=np.float64)
    params = net.init_params(0)
    kfac = KFAC(net.layers, lr=hp["lr"], damping=hp["damping"], ema=hp["decay"], factor_every=hp["factor_every"],
                inverse_every=hp["inverse_every"], momentum=hp["momentum"], kl_clip=hp["kl_clip"],
                weight_decay=hp["weight_decay"], seed=seed)
    model = load_numpy_params(ReferenceCNN(13).double(), params)
    opt = AnalogKFAC(model, lr=hp["lr"], damping=hp["damping"], factor_decay=hp["decay"],
                     factor_update_steps=hp["factor_every"], inv_update_steps=hp["inverse_every"],
                     momentum=hp["momentum"], kl_clip=hp["kl_clip"], weight_decay=hp["weight_decay"], seed=seed)
    return net, params, kfac, kfac.init(params), model, opt


def torch_params(model):
    return {"conv.W": model.conv.weight.detach().numpy().reshape(8, 25), "conv.b": model.conv.bias.detach().numpy(),
            "fc.W": model.fc.weight.detach().numpy(), "fc.b": model.fc.bias.detach().numpy()}


def run_both(net, params, kfac, state, model, opt, batches):
    """Step both optimizers on the same batches; the largest relative difference of each step's update."""
    worst, losses = 0.0, []
    for x, y in batches:
        before = {k: v.copy() for k, v in params.items()}
        loss, grads, cache = net.loss_and_grads(params, x, y)
        params, state = kfac.step(params, grads, state, model=net, cache=cache)
        opt.zero_grad()
        t_loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        t_loss.backward()
        opt.step()
        losses.append((loss, t_loss.item()))
        tp = torch_params(model)
        for k in params:
            d_np, d_t = params[k] - before[k], tp[k] - before[k]
            worst = max(worst, float(np.abs(d_np - d_t).max() / np.abs(d_np).max()))
    return worst, losses, params, state


HP = dict(lr=0.03, damping=1e-2, decay=0.95, factor_every=1, inverse_every=2, momentum=0.9, kl_clip=1e-3,
          weight_decay=1e-4)


def test_update_equals_numpy_kfac_to_1e10():
    """Five steps exercising the factor EMA warm-up, two inverse updates, KL clipping, momentum and weight decay:
    every step's update (all four parameter tensors) equals the NumPy loop's to 1e-10 relative."""
    net, params, kfac, state, model, opt = pair(**HP)
    rng = np.random.default_rng(0)
    batches = [(rng.random((32, 28, 28)), rng.integers(0, 13, 32)) for _ in range(5)]
    worst, losses, params, state = run_both(net, params, kfac, state, model, opt, batches)
    assert worst < 1e-10
    assert state["inverse_updates"] == opt.inverse_updates == 3 and opt.factor_updates == 5
    assert state["last_nu"] == pytest.approx(opt.last_nu, rel=1e-10) and opt.last_nu < 1.0   # the clip acted
    for name in ("conv", "fc"):
        for key in ("A", "G", "Ad", "Gd"):
            np.testing.assert_allclose(opt.factors(name)[key], state["layers"][name][key], rtol=1e-12, atol=1e-14)
    assert opt.factors("fc")["A"].shape == (289, 289)
    assert type(opt.layers["fc"]) is type(kfac.kfac_layers["fc"])      # one per-layer K-FAC for both fronts


def test_short_training_run_matches():
    """Thirty steps on a learnable batch stream (one class-specific bright pixel): the two runs' losses agree to
    1e-9 at every step, and the run learns (loss falls by more than half)."""
    hp = dict(HP, kl_clip=None, momentum=0.0, weight_decay=0.0, inverse_every=10)
    net, params, kfac, state, model, opt = pair(**hp)
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(30):
        y = rng.integers(0, 13, 32)
        x = rng.random((32, 28, 28)) * 0.5
        x[np.arange(32), 2 + y, 2 + y] += 3.0
        batches.append((x, y))
    worst, losses, params, _ = run_both(net, params, kfac, state, model, opt, batches)
    losses = np.array(losses)
    assert np.abs(losses[:, 0] - losses[:, 1]).max() < 1e-9
    assert worst < 1e-9
    assert losses[-5:, 0].mean() < 0.5 * losses[:5, 0].mean()
    for k, v in torch_params(model).items():
        np.testing.assert_allclose(v, params[k], rtol=1e-9, atol=1e-12)
