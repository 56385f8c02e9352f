"""The hooks: unfolded conv patches, factors against BackPACK (KFLR) and a plain-autograd reference, skip_layers,
Fisher modes, schedules and bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.config import ConfigError
from training.torch import AnalogKFAC
from training.torch.modules import Conv2dHelper, UnsupportedLayer


@pytest.mark.parametrize("kw", [dict(stride=1, padding=0), dict(stride=2, padding=1), dict(stride=(2, 1), padding=(0, 2)),
                                dict(stride=1, padding="same", dilation=2), dict(stride=1, padding="same"),
                                dict(stride=3, padding="valid", bias=False), dict(kernel_size=4, padding="same")])
def test_unfolded_patches_reproduce_the_convolution(kw):
    """rows @ W^T + b is the conv's output at every position: the patch order, stride, padding (also 'same' with an
    even kernel, asymmetric) and dilation of the A rows are the layer's own."""
    torch.manual_seed(0)
    kw = dict(kernel_size=3, **kw) if "kernel_size" not in kw else kw
    conv = nn.Conv2d(3, 4, **kw).double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    helper = Conv2dHelper("c", conv)
    rows = helper.input_rows(x)
    out = conv(x)
    expect = out.permute(0, 2, 3, 1).reshape(-1, 4)
    got = rows @ conv.weight.reshape(4, -1).T + (conv.bias if conv.bias is not None else 0)
    assert rows.shape == (expect.shape[0], 3 * conv.kernel_size[0] * conv.kernel_size[1])
    torch.testing.assert_close(got, expect, rtol=1e-12, atol=1e-12)


def grouped_model():
    return nn.Sequential(nn.Conv2d(2, 4, 3, groups=2))


def test_grouped_conv_is_refused_by_name():
    with pytest.raises(UnsupportedLayer, match="'0'.*groups=2.*skip_layers"):
        AnalogKFAC(grouped_model())
    AnalogKFAC(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.Flatten(), nn.Linear(4, 2)), skip_layers=["0"])


def mixed_model():
    """Conv with bias, stride 2, padding 1; conv without bias; linear without bias; linear with bias."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 2, bias=False),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 5, bias=False), nn.Tanh(),
                         nn.Linear(5, 6)).double()


def expected_fisher_factors(model, x):
    """The exact expected-Fisher factors through AnalogKFAC's empirical hooks: one weighted backward per class c,
    loss mean_n p_nc^(1/2) CE(x_n, c), so sum_c G(c) = E_{y~p}[G] (KFLR). Statistics from several forwards in one
    step are averaged, hence the factor C on G."""
    opt = AnalogKFAC(model, fisher="empirical")
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    C = p.shape[1]
    for c in range(C):
        loss = (p[:, c].sqrt() * F.cross_entropy(model(x), torch.full((len(x),), c), reduction="none")).mean()
        loss.backward()
    opt._update_factors()
    opt.remove_hooks()
    return {n: (opt.factors(n)["A"], opt.factors(n)["G"] * C) for n in opt.layers}


def test_factors_agree_with_backpack_kflr():
    """BackPACK 1.7.1 (KFLR, the exact GGN's Kronecker factors) computes the same A for Linear and Conv2d layers
    (with and without bias, stride and padding; BackPACK's conv A sums over the T output positions where ours
    averages, Grosse & Martens' KFC convention) and the same G for the Linear layers, to round-off."""
    backpack = pytest.importorskip("backpack", reason="test-only: pip install --no-deps backpack-for-pytorch==1.7.1")
    from backpack.extensions import KFLR
    model = mixed_model()
    x = torch.randn(7, 2, 8, 8, dtype=torch.float64)
    ours = expected_fisher_factors(model, x)
    bp_model = backpack.extend(mixed_model())
    loss = backpack.extend(nn.CrossEntropyLoss())(bp_model(x), torch.randint(0, 6, (7,)))
    with backpack.backpack(KFLR()):
        loss.backward()
    positions = {"0": 16, "2": 9}
    for name, module in bp_model.named_modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            continue
        G_bp, A_bp = (t.numpy() for t in module.weight.kflr)
        A, G = ours[name]
        n = A_bp.shape[0]
        assert A.shape[0] == n + (module.bias is not None)
        np.testing.assert_allclose(A[:n, :n] * positions.get(name, 1), A_bp, rtol=1e-12, atol=1e-14)
        if isinstance(module, nn.Linear):
            np.testing.assert_allclose(G, G_bp, rtol=1e-10, atol=1e-14)
    assert sorted(ours) == ["0", "2", "5", "7"]


def test_conv_g_agrees_with_plain_autograd():
    """Conv G (sum over positions, mean over samples of the pre-activation gradients' outer products) against
    gradients read off a hand-written forward with retain_grad (no hooks), for the sampled-label Fisher pass."""
    model = mixed_model()
    x = torch.randn(5, 2, 8, 8, dtype=torch.float64)
    opt = AnalogKFAC(model, seed=7)
    logits = model(x)                   # the hooks run the sampled pass here
    opt._update_factors()
    # The same labels: the optimizer's draw at step 0 (rng [seed, 0, 1] on the model's probabilities).
    probs = torch.softmax(logits.detach(), 1).numpy()
    u = np.random.default_rng([7, 0, 1]).random((5, 1))
    labels = (probs.cumsum(1) < u).sum(1).clip(0, 5)
    pre = []
    h = x
    for module in model:
        h = module(h)
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            h.retain_grad()
            pre.append(h)
    F.cross_entropy(h, torch.as_tensor(labels), reduction="sum").backward()
    for name, z in zip(opt.layers, pre):
        g = z.grad.numpy()
        g = g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1]) if g.ndim == 4 else g
        np.testing.assert_allclose(opt.factors(name)["G"], g.T @ g / 5, rtol=1e-11, atol=1e-15)


def test_skip_layers_by_name_and_class():
    """A skipped layer has no factors and takes a plain SGD step lr * grad; the others are preconditioned."""
    model = mixed_model()
    opt = AnalogKFAC(model, skip_layers=["7", "Conv2d"], lr=0.1)
    assert [h.name for h in opt.helpers] == ["5"] and opt.skipped == ["0", "2", "7"]
    assert "skipped 0, 2, 7" in repr(opt)
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    F.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():
        if n.startswith("5."):
            assert not torch.allclose(p, before[n] - 0.1 * grads[n])     # preconditioned, not SGD
        else:
            torch.testing.assert_close(p, before[n] - 0.1 * grads[n], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="'fc9' matches no Linear or Conv2d layer"):
        AnalogKFAC(mixed_model(), skip_layers=["fc9"])
    with pytest.raises(ValueError, match="no Linear or Conv2d layer to precondition"):
        AnalogKFAC(mixed_model(), skip_layers=["Conv2d", "Linear"])


def test_empirical_fisher_uses_the_loss_gradient():
    """fisher='empirical': G = sum_n d_n d_n^T / N with d = softmax - onehot(y) (the mean loss times N) for the
    last layer; nothing is recorded in eval mode or under no_grad."""
    model = mixed_model()
    opt = AnalogKFAC(model, fisher="empirical")
    x = torch.randn(6, 2, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    model.eval()
    model(x)
    with torch.no_grad():
        model.train()
        model(x)
    assert all(s.a_sum is None for s in opt._stats.values())
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    opt.step()
    d = torch.softmax(logits.detach(), 1).numpy()
    d[np.arange(6), y.numpy()] -= 1
    np.testing.assert_allclose(opt.factors("7")["G"], d.T @ d / 6, rtol=1e-12)


def test_sampled_fisher_needs_logits():
    model = nn.Sequential(nn.Linear(3, 2), nn.Flatten(0))
    AnalogKFAC(model)
    with pytest.raises(ValueError, match="logits of shape \\(batch, classes\\); got a tensor of shape \\(8,\\)"):
        model(torch.randn(4, 3))


def test_schedules_and_torch_lr_scheduler():
    """damping and lr as callables of the step; a float lr is the param group's, so torch schedulers drive it."""
    model = mixed_model()
    seen = []
    opt = AnalogKFAC(model, lr=lambda t: seen.append(t) or 0.01 * (t + 1), damping=lambda t: 0.1 / (t + 1),
                     inv_update_steps=1)
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
    assert seen == [0, 1, 2] and opt.lr_at() == pytest.approx(0.04)
    f = opt.factors("7")
    A, G = f["A"], f["G"]
    pi = np.sqrt((np.trace(A) / len(A)) / (np.trace(G) / len(G)))
    np.testing.assert_allclose(f["Ad"] - A, pi * np.sqrt(0.1 / 3) * np.eye(len(A)), atol=1e-14)
    assert A.shape == (6, 6) and opt.factors("5")["A"].shape == (36, 36)      # bias coordinate only with a bias
    model2 = mixed_model()
    opt2 = AnalogKFAC(model2, lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.1)
    F.cross_entropy(model2(x), torch.tensor([0, 1, 2, 3])).backward()
    opt2.step()
    sched.step()
    assert opt2.lr_at() == pytest.approx(0.05)


@pytest.mark.parametrize("kwargs, message", [
    (dict(damping=0.0), "damping must be > 0"),
    (dict(lr=-1.0), "lr must be >= 0"),
    (dict(factor_decay=1.0), "factor_decay must be in \\[0.0, 1.0\\)"),
    (dict(inv_update_steps=0), "inv_update_steps must be an integer >= 1"),
    (dict(fisher="true"), "fisher must be one of"),
    (dict(kl_clip=0.0), "kl_clip must be > 0"),
    (dict(skip_layers=["("]), "not a regular expression"),
    (dict(solver=42), "solver must be None"),
])
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        AnalogKFAC(mixed_model(), **kwargs)


@pytest.mark.parametrize("solver, message", [
    ({"backend": "circuit", "circuit": "rram", "methd": "direct"}, "methd"),
    ({"backend": "spice"}, "solver.backend must be one of"),
    ({"backend": "numpy", "circuit": "rram", "method": "direct"}, "no effect with backend 'numpy'"),
    ({"backend": "circuit", "circuit": "no-such-preset"}, "no-such-preset"),
])
def test_solver_mapping_is_checked_like_a_training_config(solver, message):
    with pytest.raises(ConfigError, match=message):
        AnalogKFAC(mixed_model(), solver=solver)
