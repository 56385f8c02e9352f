import numpy as np
import pytest

from training.model import ConvNet
from training.optimizers import KFAC, SGD, Adam, SolverStop, block_sizes
from training.solvers import CircuitSolver, NumpySolver, SolverFailure, make_solver
from batches import learnable_batch


@pytest.mark.parametrize("make", [lambda m: SGD(0.05, momentum=0.9), lambda m: Adam(0.03),
                                  lambda m: KFAC(m.layers, lr=0.05, damping=1e-2, inverse_every=2),
                                  lambda m: KFAC(m.layers, lr=0.05, momentum=0.5, kl_clip=1e-3, max_block=5)])
def test_optimiser_lowers_loss(small_model, make):
    opt = make(small_model)
    x, y = learnable_batch(small_model, 16)
    params = small_model.init_params(0)
    state = opt.init(params)
    loss0 = small_model.loss_and_grads(params, x, y)[0]
    for _ in range(15):
        loss, grads, cache = small_model.loss_and_grads(params, x, y)
        params, state = opt.step(params, grads, state, model=small_model, cache=cache)
    assert small_model.loss_and_grads(params, x, y)[0] < 0.7 * loss0


def _dense_reference(kfac, model, params, x, y, blockdiag=False):
    """K-FAC's first update computed densely: factors from scratch, (A_d (x) G_d)^-1 vec(dW)."""
    loss, grads, cache = model.loss_and_grads(params, x, y)
    rng = np.random.default_rng([kfac.seed, 0, 1])
    logits = cache.logits
    p = model.softmax(logits)
    u = rng.random((len(p), 1))
    ys = (p.cumsum(1) < u).sum(1)
    d = p.copy()
    d[np.arange(len(ys)), ys] -= 1
    _, out = model.backward(params, cache, d)
    lam = kfac.damping
    ref = {}
    for l in model.layers:
        a = cache.inputs[l.name]
        n = a.shape[0]
        a = np.concatenate([a.reshape(-1, a.shape[-1]), np.ones((a.reshape(-1, a.shape[-1]).shape[0], 1))], 1)
        A = np.einsum("ti,tj->ij", a, a) / a.shape[0]
        g = out[l.name].reshape(-1, l.out_dim)
        G = np.einsum("ti,tj->ij", g, g) / n
        pi = np.sqrt((np.trace(A) / len(A)) / (np.trace(G) / len(G))) if kfac.pi_correction else 1.0
        if blockdiag:
            for M, blocks in ((A, kfac.kfac_layers[l.name].a_blocks), (G, kfac.kfac_layers[l.name].g_blocks)):
                mask = np.zeros_like(M, dtype=bool)
                for s in blocks:
                    mask[s, s] = True
                M[~mask] = 0
        Ad = A + pi * np.sqrt(lam) * np.eye(len(A))
        Gd = G + np.sqrt(lam) / pi * np.eye(len(G))
        dW = np.concatenate([grads[l.weight], grads[l.bias][:, None]], 1)
        F = np.kron(Ad, Gd)                        # column-major vec: vec(G^-1 dW A^-1) = (A^-1 (x) G^-1) vec(dW)
        v = np.linalg.solve(F, dW.ravel(order="F")).reshape(dW.shape, order="F")
        ref[l.name] = v
    return ref, grads, cache


@pytest.mark.parametrize("pi_correction", [True, False])
def test_kfac_matches_dense_kronecker(small_model, pi_correction):
    kfac = KFAC(small_model.layers, lr=0.1, damping=3e-2, pi_correction=pi_correction, seed=5)
    params = small_model.init_params(2)
    x, y = learnable_batch(small_model, seed=1)
    ref, grads, cache = _dense_reference(kfac, small_model, params, x, y)
    new, state = kfac.step(params, grads, kfac.init(params), model=small_model, cache=cache)
    for l in small_model.layers:
        upd = np.concatenate([params[l.weight] - new[l.weight], (params[l.bias] - new[l.bias])[:, None]], 1) / 0.1
        np.testing.assert_allclose(upd, ref[l.name], rtol=1e-8, atol=1e-12)
        assert not np.allclose(upd, np.concatenate([grads[l.weight], grads[l.bias][:, None]], 1))


def test_kfac_block_diagonal_matches_dense_blockdiag(small_model):
    kfac = KFAC(small_model.layers, lr=0.1, damping=1e-2, max_block=5, seed=1)
    assert [s.stop - s.start for s in kfac.kfac_layers["fc"].a_blocks] == [4, 4, 5]      # per conv channel, bias in the last
    assert [s.stop - s.start for s in kfac.kfac_layers["fc"].g_blocks] == [3, 3]
    assert [s.stop - s.start for s in kfac.kfac_layers["conv"].a_blocks] == [5] * 5 + [1]
    params = small_model.init_params(3)
    x, y = learnable_batch(small_model, seed=2)
    ref, grads, cache = _dense_reference(kfac, small_model, params, x, y, blockdiag=True)
    ref_full, *_ = _dense_reference(kfac, small_model, params, x, y, blockdiag=False)
    new, _ = kfac.step(params, grads, kfac.init(params), model=small_model, cache=cache)
    upd = np.concatenate([params["fc.W"] - new["fc.W"], (params["fc.b"] - new["fc.b"])[:, None]], 1) / 0.1
    np.testing.assert_allclose(upd, ref["fc"], rtol=1e-8, atol=1e-12)
    assert not np.allclose(upd, ref_full["fc"], rtol=1e-3)      # the split really changes the update


def test_block_sizes_rule():
    assert block_sizes((36,) * 8, True, 64) == [36] * 7 + [37]
    assert block_sizes((36,) * 8, True, 128) == [108, 108, 73]
    assert block_sizes((36,) * 8, True, None) == [289]
    assert block_sizes((36,) * 8, True, 36) == [36] * 8 + [1]
    assert block_sizes((26,), False, 16) == [13, 13]
    assert sum(block_sizes((100, 7), True, 30)) == 108 and max(block_sizes((100, 7), True, 30)) <= 30


def test_linear_response_equals_per_step_solves(small_model):
    params = small_model.init_params(0)
    x, y = learnable_batch(small_model, 16)
    outs = []
    for lr_mode in (False, True):
        k = KFAC(small_model.layers, lr=0.1, linear_response=lr_mode, max_block=5, inverse_every=3)
        p, st = params, k.init(params)
        for _ in range(4):
            _, g, c = small_model.loss_and_grads(p, x, y)
            p, st = k.step(p, g, st, model=small_model, cache=c)
        outs.append(p)
    for key in params:
        np.testing.assert_allclose(outs[0][key], outs[1][key], rtol=1e-9, atol=1e-12)


class _Result:
    def __init__(self, x, saturated=False):
        self.x, self.relative_residual = x, 1e-3
        self.saturated = np.full(x.shape, saturated)
        self.energy_j, self.settling_time_s = np.array([2e-9]), np.array([1e-7])


class FakeCircuit:
    """Exact solves with a small perturbation; every ``fail_every``-th call reports saturation."""

    linear = True

    def __init__(self, fail_every=0, noise=False, scale=1.0):
        self.calls, self.fail_every, self.deterministic, self.scale = 0, fail_every, not noise, scale

    def solve(self, H, B):
        self.calls += 1
        sat = bool(self.fail_every) and self.calls % self.fail_every == 0
        return _Result(np.linalg.solve(H, B) * self.scale, saturated=sat)


def test_circuit_adapter_records_stats():
    s = CircuitSolver(FakeCircuit(scale=1.01), check_every=1)
    H = np.eye(3) * 2
    x = s.solve(H, np.ones((3, 2)))
    np.testing.assert_allclose(x, 0.505)
    st = s.stats()
    assert st["solves"] == 1 and st["rhs_columns"] == 2 and abs(st["rel_err_mean"] - 0.01) < 1e-9
    assert st["energy_j_total"] == pytest.approx(2e-9) and st["settling_s_max"] == pytest.approx(1e-7)
    s2 = CircuitSolver(FakeCircuit(fail_every=1))
    with pytest.raises(SolverFailure, match="saturated"):
        s2.solve(H, np.ones(3))
    assert s2.stats()["saturation_events"] == 1 and s2.stats()["failures"] == 1


def _run(model, solver, policy, steps=4, **kw):
    params = model.init_params(0)
    x, y = learnable_batch(model, 16)
    k = KFAC(model.layers, lr=0.1, on_circuit_failure=policy, solver=solver, inverse_every=2, **kw)
    st = k.init(params)
    for _ in range(steps):
        _, g, c = model.loss_and_grads(params, x, y)
        params, st = k.step(params, g, st, model=model, cache=c)
    return params, k.stats(st)


def test_fallback_policy_counts_failures(small_model):
    exact, _ = _run(small_model, NumpySolver(), "fallback")
    fake = FakeCircuit(fail_every=3)
    got, stats = _run(small_model, CircuitSolver(fake), "fallback")
    n_solves = 4 * 2 * 2                       # steps x layers x (A, G)
    assert fake.calls == n_solves
    assert stats["fallbacks"] == n_solves // 3 == stats["solver"]["failures"]
    for key in exact:                          # the fake is exact otherwise, and the fallbacks are exact
        np.testing.assert_allclose(got[key], exact[key], rtol=1e-10, atol=1e-12)


def test_stop_policy_raises_with_step(small_model):
    with pytest.raises(SolverStop, match=r"step 1: .*saturated"):
        _run(small_model, CircuitSolver(FakeCircuit(fail_every=5)), "stop")


def test_linear_response_disabled_for_noisy_solver(small_model):
    k = KFAC(small_model.layers, linear_response=True, solver=CircuitSolver(FakeCircuit(noise=True)))
    assert not k.linear_response and "per-solve noise" in k.describe()
    assert KFAC(small_model.layers, linear_response=True, solver=CircuitSolver(FakeCircuit())).linear_response


def test_make_solver_numpy_and_bad_backend():
    assert isinstance(make_solver({"backend": "numpy"}), NumpySolver)
    with pytest.raises(ValueError, match="unknown solver backend"):
        make_solver({"backend": "quantum"})


class _FixedFactors(KFAC):
    """K-FAC whose k-th batch factors are k * I (A) and 2k * I (G): checks the running-average schedule."""

    def batch_factors(self, params, model, cache, rng):
        self._k = getattr(self, "_k", 0) + 1
        return {l.name: (self._k * np.eye(l.in_dim + 1), 2 * self._k * np.eye(l.out_dim)) for l in self.layers}


def _factor_after(small_model, steps, **kw):
    k = _FixedFactors(small_model.layers, lr=1e-3, **kw)
    params = small_model.init_params(0)
    x, y = learnable_batch(small_model, 16)
    st = k.init(params)
    for _ in range(steps):
        _, g, c = small_model.loss_and_grads(params, x, y)
        params, st = k.step(params, g, st, model=small_model, cache=c)
    return st["layers"]["fc"]["A"][0, 0], st["layers"]["fc"]["G"][0, 0]


def test_factor_running_average_warmup(small_model):
    """Martens & Grosse: decay min(1 - 1/k, ema) -> the plain mean of the first 1/(1-ema) batches, then EMA."""
    for steps in (1, 2, 7, 20):
        a, g = _factor_after(small_model, steps, ema=0.95)
        assert a == pytest.approx(np.mean(np.arange(1, steps + 1))) and g == pytest.approx(2 * a)
    ref = np.mean(np.arange(1, 21))
    for k in range(21, 26):
        ref = 0.95 * ref + 0.05 * k
    assert _factor_after(small_model, 25, ema=0.95)[0] == pytest.approx(ref)
    # ema_warmup=False: first batch set, then a constant decay (the old behaviour)
    ref = 1.0
    for k in range(2, 8):
        ref = 0.95 * ref + 0.05 * k
    assert _factor_after(small_model, 7, ema=0.95, ema_warmup=False)[0] == pytest.approx(ref)


def test_kl_clip_scales_before_momentum(small_model):
    """kfac-pytorch + torch SGD: the clipped natural gradient nu * V enters the momentum buffer."""
    class Identity(KFAC):
        def precondition(self, name, dW, state):
            return np.asarray(dW, dtype=np.float64)

    lr, m, kl = 0.1, 0.9, 1e-6
    k = Identity(small_model.layers, lr=lr, momentum=m, kl_clip=kl)
    params = small_model.init_params(0)
    x, y = learnable_batch(small_model, 16)
    st = k.init(params)
    p, bufs = params, None
    for _ in range(3):
        _, g, c = small_model.loss_and_grads(p, x, y)
        nu = min(1.0, np.sqrt(kl / (lr ** 2 * sum(float(np.sum(g[key] ** 2)) for key in g))))
        assert nu < 1
        bufs = {key: nu * g[key] + (m * bufs[key] if bufs else 0) for key in g}
        ref = {key: p[key] - lr * bufs[key] for key in g}
        p, st = k.step(p, g, st, model=small_model, cache=c)
        assert st["last_nu"] == pytest.approx(nu)
        for key in g:
            np.testing.assert_allclose(p[key], ref[key], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("linear_response", [False, True])
def test_kfac_with_ideal_circuit_matches_numpy_backend(small_model, linear_response):
    """backend: circuit with the ideal preset (ngspice in the loop) gives the numpy backend's K-FAC to 1e-6."""
    circuit = make_solver({"backend": "circuit", "circuit": "ideal"})
    exact, _ = _run(small_model, NumpySolver(), "stop", linear_response=linear_response, max_block=8)
    analog, stats = _run(small_model, circuit, "stop", linear_response=linear_response, max_block=8)
    assert stats.get("fallbacks", 0) == 0 and circuit.stats()["solves"] > 0
    for key in exact:
        np.testing.assert_allclose(analog[key], exact[key], rtol=1e-6, atol=1e-9)


def test_shared_momentum_and_weight_decay_follow_the_recurrence_by_hand():
    """SGD (heavy ball and Nesterov) and K-FAC's momentum are the same transformation: b <- mu b + g."""
    from training.transforms import decayed, heavy_ball
    p, g, wd, mu = np.array([1.0, -2.0]), np.array([0.5, 0.25]), 0.1, 0.9
    gd = decayed(g, p, wd)
    np.testing.assert_allclose(gd, [0.6, 0.05])
    assert decayed(g, p, wd, weight=False) is g
    d, b = heavy_ball(np.array([1.0, 1.0]), gd, mu)
    np.testing.assert_allclose(b, [1.5, 0.95])
    np.testing.assert_allclose(d, b)
    d, b = heavy_ball(np.array([1.0, 1.0]), gd, mu, nesterov=True)
    np.testing.assert_allclose(d, gd + mu * b)
    opt = SGD(lr=0.1, momentum=mu, nesterov=False, weight_decay=wd)
    params = {"fc.W": p.copy(), "fc.b": p.copy()}
    state = opt.init(params)
    for _ in range(2):
        params, state = opt.step(params, {"fc.W": g, "fc.b": g}, state)
    w, bw = p.copy(), np.zeros(2)
    for _ in range(2):                    # by hand: the weight is decayed, the bias is not
        bw = mu * bw + g + wd * w
        w = w - 0.1 * bw
    np.testing.assert_allclose(params["fc.W"], w)
    np.testing.assert_allclose(params["fc.b"], p - 0.1 * (g + (mu * g + g)))
