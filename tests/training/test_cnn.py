"""The layered CNN (training/cnn.py): gradients against finite differences, the convolution against a direct sum,
K-FAC factor shapes of the ledger's cnn4 by hand count, and the config switch (model.arch)."""
import numpy as np
import pytest

from training.cnn import ConvStage, LayeredCNN
from training.config import ConfigError, config_from_dict
from training.kfac_layer import KFACLayer
from training.model import ConvNet, build_model
from training.optimizers import KFAC


@pytest.fixture
def small():
    """float64, 12x12 inputs: conv 3x3 1->3 (10x10, pool 2 -> 5x5), conv 2x2 3->4 (4x4, pool 2 -> 2x2),
    fc 16 -> 5 -> 6."""
    return LayeredCNN(6, 12, 1, (ConvStage(3, 3, 2), ConvStage(4, 2, 2)), (5,), dtype=np.float64)


def _loss(m, p, x, y):
    return m.cross_entropy(m.forward(p, x)[0], y)


@pytest.mark.parametrize("key", ["conv1.W", "conv1.b", "conv2.W", "conv2.b", "fc1.W", "fc1.b", "fc2.W", "fc2.b"])
def test_every_gradient_entry_matches_finite_differences(small, key):
    rng = np.random.default_rng(3)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in small.init_params(1).items()}
    x, y = rng.random((4, 12, 12)), rng.integers(0, 6, 4)
    _, grads, _ = small.loss_and_grads(params, x, y)
    num = np.zeros_like(params[key])
    for i in np.ndindex(num.shape):
        q = {k: v.copy() for k, v in params.items()}
        q[key][i] += 1e-6
        lp = _loss(small, q, x, y)
        q[key][i] -= 2e-6
        num[i] = (lp - _loss(small, q, x, y)) / 2e-6
    assert np.abs(grads[key]).max() > 1e-4
    np.testing.assert_allclose(grads[key], num, rtol=1e-5, atol=1e-8)


def test_cnn4_gradients_match_finite_differences_on_sampled_entries():
    m = LayeredCNN.cnn4(dtype=np.float64)
    rng = np.random.default_rng(0)
    params = m.init_params(2)
    x, y = rng.random((3, 28, 28)), np.array([0, 7, 12])
    _, grads, _ = m.loss_and_grads(params, x, y)
    for key, v in params.items():
        g = np.abs(grads[key]).ravel()
        for flat in (int(np.argmax(g)), int(rng.integers(v.size))):   # the largest entry and a random one
            i = np.unravel_index(flat, v.shape)
            q = {k: w.copy() for k, w in params.items()}
            q[key][i] += 1e-6
            lp = _loss(m, q, x, y)
            q[key][i] -= 2e-6
            num = (lp - _loss(m, q, x, y)) / 2e-6
            assert grads[key][i] == pytest.approx(num, rel=1e-5, abs=1e-9), (key, i)


def test_conv_stages_equal_a_direct_sum_and_pool(small):
    """conv2's pre-activation from its own direct definition on conv1's pooled map (channels, then ky, kx)."""
    rng = np.random.default_rng(1)
    p = small.init_params(0)
    x = rng.random((2, 12, 12))
    _, cache = small.forward(p, x)
    W1 = p["conv1.W"].reshape(3, 3, 3)          # (c, ky, kx)
    pre1 = np.zeros((2, 10, 10, 3))
    for i in range(10):
        for j in range(10):
            pre1[:, i, j] = np.einsum("nyx,cyx->nc", x[:, i:i + 3, j:j + 3], W1) + p["conv1.b"]
    np.testing.assert_allclose(cache.pre["conv1"].reshape(2, 10, 10, 3), pre1, rtol=1e-12)
    h1 = np.maximum(pre1, 0).reshape(2, 5, 2, 5, 2, 3).max((2, 4))   # 2x2 max-pool
    W2 = p["conv2.W"].reshape(4, 3, 2, 2)       # (c_out, c_in, ky, kx)
    pre2 = np.zeros((2, 4, 4, 4))
    for i in range(4):
        for j in range(4):
            pre2[:, i, j] = np.einsum("nyxc,dcyx->nd", h1[:, i:i + 2, j:j + 2], W2) + p["conv2.b"]
    np.testing.assert_allclose(cache.pre["conv2"].reshape(2, 4, 4, 4), pre2, rtol=1e-12)
    feats = np.maximum(pre2, 0).reshape(2, 2, 2, 2, 2, 4).max((2, 4)).transpose(0, 3, 1, 2).reshape(2, 16)
    np.testing.assert_allclose(cache.inputs["fc1"], feats, rtol=1e-12)   # channel-major c*P*P + i*P + j


def test_cnn4_factor_shapes_by_hand_count():
    # 28 - 5 + 1 = 24, pool 2 -> 12; 12 - 5 + 1 = 8, pool 2 -> 4; 64 channels * 4 * 4 = 1024 features.
    m = LayeredCNN.cnn4()
    dims = {l.name: (KFACLayer(l).a_dim, KFACLayer(l).g_dim) for l in m.layers}
    assert dims == {"conv1": (1 * 25 + 1, 32), "conv2": (32 * 25 + 1, 64), "fc1": (64 * 16 + 1, 128),
                    "fc2": (128 + 1, 13)}
    assert [l.in_groups for l in m.layers] == [(25,), (25,) * 32, (16,) * 64, (128,)]
    assert m.n_params == 26 * 32 + 801 * 64 + 1025 * 128 + 129 * 13
    # the factors K-FAC accumulates from a batch have those shapes and are symmetric PSD
    params = m.init_params(0)
    x = np.random.default_rng(0).random((8, 28, 28)).astype(np.float32)
    _, _, cache = m.loss_and_grads(params, x, np.arange(8))
    opt = KFAC(m.layers)
    for name, (A, G) in opt.batch_factors(params, m, cache, np.random.default_rng(0)).items():
        assert (A.shape[0], G.shape[0]) == dims[name]
        assert np.allclose(A, A.T) and np.linalg.eigvalsh(A).min() > -1e-9
        assert A[-1, -1] == pytest.approx(1.0)   # the homogeneous (bias) coordinate


def test_model_arch_switch_and_reference_unchanged():
    ref = build_model(config_from_dict({}).model, 13, 28)
    assert type(ref) is ConvNet
    old = ConvNet(n_classes=13)                  # the reference exactly as the loop built it before model.arch
    p, q = ref.init_params(4), old.init_params(4)
    assert all(np.array_equal(p[k], q[k]) for k in q) and p.keys() == q.keys()
    x = np.random.default_rng(0).random((3, 28, 28))
    assert np.array_equal(ref.forward(p, x)[0], old.forward(q, x)[0])
    cnn = build_model(config_from_dict({"model": {"arch": "cnn4"}}).model, 13, 28)
    assert isinstance(cnn, LayeredCNN) and [l.name for l in cnn.layers] == ["conv1", "conv2", "fc1", "fc2"]


@pytest.mark.parametrize("model, match", [({"arch": "cnn5"}, "model.arch must be one of"),
                                          ({"arch": "cnn4", "channels": 16}, "model.channels: no effect")])
def test_bad_model_arch_is_one_clear_error(model, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"model": model})


def test_compare_points_name_the_arch_only_when_it_is_not_the_reference():
    """A reference study's point ids (sha1 of the spec) are those it had before model.arch existed: resumable."""
    from training.config import compare_config_from_dict
    from workflow.compare_study import _point
    base = {"optimizers": [{"label": "sgd", "optimizer": {"name": "sgd"}}]}
    ref = compare_config_from_dict(base)
    cnn = compare_config_from_dict({**base, "model": {"arch": "cnn4"}})
    p_ref = _point(ref, "final", ref.optimizers[0], 0.03, 0, None, 1.0, None, 0)
    p_cnn = _point(cnn, "final", cnn.optimizers[0], 0.03, 0, None, 1.0, None, 0)
    assert "arch" not in p_ref.spec["training"]["model"] and p_cnn.spec["training"]["model"]["arch"] == "cnn4"
    assert p_ref.id != p_cnn.id
    assert p_ref.id == "02b3d48d0b47"               # printed by main at 4bd7422, before model.arch existed
