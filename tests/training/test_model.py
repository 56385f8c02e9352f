import numpy as np
import pytest

from training.model import ConvNet


def _numeric_grad(model, params, x, y, key, eps=1e-6):
    num = np.zeros_like(params[key])
    for i in np.ndindex(params[key].shape):
        q = {k: v.copy() for k, v in params.items()}
        q[key][i] += eps
        lp = model.cross_entropy(model.forward(q, x)[0], y)
        q[key][i] -= 2 * eps
        lm = model.cross_entropy(model.forward(q, x)[0], y)
        num[i] = (lp - lm) / (2 * eps)
    return num


@pytest.mark.parametrize("key", ["conv.W", "conv.b", "fc.W", "fc.b"])
def test_gradient_check(small_model, key):
    rng = np.random.default_rng(3)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in small_model.init_params(1).items()}
    x, y = rng.random((5, 12, 12)), rng.integers(0, 6, 5)
    _, grads, _ = small_model.loss_and_grads(params, x, y)
    num = _numeric_grad(small_model, params, x, y, key)
    assert np.abs(grads[key]).max() > 1e-4          # a non-trivial gradient
    np.testing.assert_allclose(grads[key], num, rtol=1e-5, atol=1e-8)


def test_layer_inputs_and_output_grads_reconstruct_weight_grads(small_model):
    rng = np.random.default_rng(0)
    params = small_model.init_params(0)
    x, y = rng.random((4, 12, 12)), rng.integers(0, 6, 4)
    logits, cache = small_model.forward(params, x)
    d = small_model.softmax(logits)
    d[np.arange(4), y] -= 1
    grads, out = small_model.backward(params, cache, d / 4)
    a, g = cache.inputs["conv"], out["conv"]
    assert a.shape == (4, 64, 25) and g.shape == (4, 64, 3)
    np.testing.assert_allclose(np.einsum("ntc,nti->ci", g, a), grads["conv.W"], rtol=1e-12)
    np.testing.assert_allclose(out["fc"].T @ cache.inputs["fc"], grads["fc.W"], rtol=1e-12)
    # im2col patch (n, t=(i,j), (ky,kx)) is x[n, i+ky, j+kx]
    np.testing.assert_array_equal(a[1, 8 * 2 + 3].reshape(5, 5), x[1, 2:7, 3:8])


def test_float32_default_and_shapes():
    m = ConvNet(n_classes=13)
    p = m.init_params(0)
    assert p["conv.W"].shape == (8, 25) and p["fc.W"].shape == (13, 288)
    logits, cache = m.forward(p, np.zeros((2, 28, 28)))
    assert logits.dtype == np.float32 and cache.inputs["fc"].shape == (2, 288)
    assert [l.in_groups for l in m.layers] == [(25,), (36,) * 8]


def test_sampled_output_grads_are_per_sample(small_model):
    params = small_model.init_params(0)
    x = np.random.default_rng(1).random((3, 12, 12))
    logits, cache = small_model.forward(params, x)
    out = small_model.sampled_output_grads(params, cache, np.random.default_rng(0))
    p = small_model.softmax(logits)
    diff = p - out["fc"]                        # one-hot of the sampled labels
    assert np.allclose(diff.sum(1), 1) and np.allclose(np.sort(diff, 1)[:, :-1], 0)


def test_default_init_is_pytorch_default():
    """PyTorch's nn.Conv2d / nn.Linear default (kaiming_uniform a=sqrt(5)): weights and biases
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the prototype used it."""
    m = ConvNet(n_classes=13)
    assert m.init == "torch"
    p = m.init_params(0)
    for w, b, fan_in in (("conv.W", "conv.b", 25), ("fc.W", "fc.b", 288)):
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(p[w]).max() <= bound and np.abs(p[w]).max() > 0.95 * bound
        assert np.abs(p[b]).max() <= bound and np.all(p[b] != 0)
        assert abs(p[w].std() - bound / np.sqrt(3)) < 0.1 * bound      # uniform, not normal
    he = ConvNet(n_classes=13, init="he").init_params(0)
    assert np.all(he["fc.b"] == 0) and np.abs(he["conv.W"]).max() > 1 / np.sqrt(25)
    with pytest.raises(ValueError, match="init"):
        ConvNet(init="xavier")


def test_init_matches_torch_bounds_when_available():
    torch = pytest.importorskip("torch")
    conv, fc = torch.nn.Conv2d(1, 8, 5), torch.nn.Linear(288, 13)
    p = ConvNet(n_classes=13).init_params(0)
    for mod, w, b in ((conv, "conv.W", "conv.b"), (fc, "fc.W", "fc.b")):
        tb = float(mod.weight.detach().abs().max())
        assert abs(np.abs(p[w]).max() - tb) < 0.05 * tb
        assert float(mod.bias.detach().abs().max()) <= np.abs(p[w]).max() * 1.06
