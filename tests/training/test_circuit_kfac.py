"""K-FAC with the 8-level rram circuit through HP-INV + PCG (amc/methods/hpinv.py), wired by training.solvers.make_solver."""
from pathlib import Path

import numpy as np
import pytest

from training.config import load_config
from training.optimizers import KFAC
from training.solvers import CircuitSolver, NumpySolver, make_solver
from batches import learnable_batch

ROOT = Path(__file__).resolve().parents[2]
PCG = {"method": {"preset": "hpinv-pcg", "iterations": 12, "operators": "extracted",
                  "mvm": {"response": "closed-form"}}}


def _run(model, solver, steps=3):
    params = model.init_params(0)
    x, y = learnable_batch(model, 32)
    k = KFAC(model.layers, lr=0.1, damping=1e-2, inverse_every=2, solver=solver)
    st = k.init(params)
    for _ in range(steps):
        _, g, c = model.loss_and_grads(params, x, y)
        params, st = k.step(params, g, st, model=model, cache=c)
    return params, k.stats(st)


def test_make_solver_method_schema():
    top = make_solver({"backend": "circuit", "circuit": "rram", **PCG, "max_relative_residual": 1e-2})
    assert isinstance(top, CircuitSolver) and top.linear is False and top.deterministic
    cfg = top.inner.method_config
    assert (top.inner.method, cfg.refinement, cfg.operators, cfg.iterations) == ("hp-inv", "pcg", "extracted", 12)
    assert top.max_relative_residual == 1e-2
    assert make_solver({"backend": "circuit", "circuit": "rram"}).linear is True          # one INV array: linear
    eq = make_solver({"backend": "circuit", "circuit": "rram", "method": {"name": "direct", "equilibrate": True}})
    assert eq.inner._impl.circuit.io.equilibrate
    # the newcomer's spelling (a method inside the circuit) is rejected by name, never silently dropped
    with pytest.raises(Exception, match=r"circuit.method: a solve method is not part of the circuit"):
        make_solver({"backend": "circuit", "circuit": {"preset": "rram", "method": {"name": "hp-inv"}}})
    with pytest.raises(Exception, match="refinement"):
        make_solver({"backend": "circuit", "circuit": "rram", "method": {"name": "hp-inv", "refinement": "cg2"}})
    with pytest.raises(Exception, match="unknown key 'method.iterations' for method 'direct'"):
        make_solver({"backend": "circuit", "circuit": "rram", "method": {"name": "direct", "iterations": 3}})
    with pytest.raises(ValueError, match="unknown key"):
        make_solver({"backend": "circuit", "circuit": "rram", "refinement": "pcg"})


def test_circuit_pcg_kfac_matches_exact_kfac(small_model):
    exact, _ = _run(small_model, NumpySolver())
    solver = make_solver({"backend": "circuit", "circuit": "rram", **PCG, "max_relative_residual": 1e-2})
    got, stats = _run(small_model, solver)
    st = stats["solver"]
    assert stats["fallbacks"] == 0 and st["failures"] == 0
    assert st["rel_err_max"] < 1e-3, st
    n_blocks = 2 * len(small_model.layers)                 # A and G of each layer, no max_block
    hw = solver.hardware()
    assert hw["programmings"] >= 2 * n_blocks               # inverse updates at steps 0 and 2: programmed twice
    assert hw["ngspice_runs"] > 0 and st["iterations_max"] == 12
    for key in exact:
        np.testing.assert_allclose(got[key], exact[key], rtol=0, atol=1e-4 * np.abs(exact[key]).max())


def test_direct_8_level_inv_fails_on_the_same_factors(small_model):
    # What the PCG path fixes: one 8-level INV array per factor is unstable or far off on these factors.
    solver = make_solver({"backend": "circuit", "circuit": "rram", "method": {"name": "direct", "equilibrate": True}})
    _, stats = _run(small_model, solver, steps=1)
    st = stats["solver"]
    assert st["failures"] > 0 or st["rel_err_max"] > 0.1, st


def test_linear_response_is_refused_for_a_nonlinear_solver():
    """K-FAC must not replace a CG-refined (nonlinear in B) circuit solve by an extracted linear response."""
    from training.optimizers import KFAC
    from training.model import ConvNet

    class Nonlinear:
        deterministic = True
        linear = False

        def solve(self, H, B):
            return np.linalg.solve(H, B)

    model = ConvNet(n_classes=3, image_size=12)
    kfac = KFAC(model.layers, lr=0.01, solver=Nonlinear(), linear_response=True)
    assert not kfac.linear_response
    assert KFAC(model.layers, lr=0.01, solver=type("Lin", (Nonlinear,), {"linear": True})(), linear_response=True).linear_response


def test_layers_hold_their_programmed_blocks_and_drift_counts_from_their_first_solve(small_model):
    """Each K-FAC layer holds one handle per damped block between inverse updates; a read through it comes
    (step - step of its first solve) * seconds_per_step after programming, restarting at every inverse update."""
    from training.solvers import CircuitSolver, FactorHandle

    class Recording:                       # a drifting solver that records the read times it is given
        deterministic, linear = False, True

        def __init__(self):
            self.reads = []

        def solve(self, H, B, seconds_since_programming=0.0):
            self.reads.append(seconds_since_programming)
            return np.linalg.solve(H, B)

    inner = Recording()
    kfac = KFAC(small_model.layers, lr=0.05, inverse_every=3, solver=CircuitSolver(inner, seconds_per_step=10.0))
    params = small_model.init_params(0)
    x, y = learnable_batch(small_model, 24)
    state = kfac.init(params)
    held = []
    for _ in range(5):
        _, g, c = small_model.loss_and_grads(params, x, y)
        params, state = kfac.step(params, g, state, model=small_model, cache=c)
        held.append({name: dict(layer.handles) for name, layer in kfac.kfac_layers.items()})
    per_step = sum(len(l.a_blocks) + len(l.g_blocks) for l in kfac.kfac_layers.values())
    since_update = [0, 1, 2, 0, 1]                          # inverse updates at steps 0 and 3
    assert inner.reads == [10.0 * t for t in since_update for _ in range(per_step)]
    for name, layer in kfac.kfac_layers.items():
        assert set(held[0][name]) == {("A", s.start) for s in layer.a_blocks} | {("G", s.start) for s in layer.g_blocks}
        assert all(isinstance(h, FactorHandle) for h in held[0][name].values())
        assert all(held[2][name][k] is held[0][name][k] for k in held[0][name])       # held between updates
        assert all(held[3][name][k] is not held[2][name][k] for k in held[0][name])   # new factors, new handles
        for (key, start), h in held[4][name].items():
            block = next(s for s in (layer.a_blocks if key == "A" else layer.g_blocks) if s.start == start)
            assert np.array_equal(h.h, state["layers"][name][key + "d"][block, block]) and h.step == 3


def test_the_solver_config_is_parsed_once_and_never_answered_stale():
    """validate() parses circuit and method once; make_solver builds from those objects (not the spelling again);
    a field changed after validation is parsed afresh instead of answered with the old object."""
    from amc.methods import BlockAMCConfig, DirectConfig
    from training.config import SolverConfig
    from training.solvers import make_solver
    cfg = SolverConfig(backend="circuit", circuit="ideal",
                       method={"preset": "blockamc", "array_size": 4, "operators": "extracted"})
    cfg.validate("optimizer.solver")
    circuit, method = cfg.typed()
    assert isinstance(method, BlockAMCConfig) and method.array_size == 4
    solver = make_solver(cfg)
    assert solver.inner.method_config is method and solver.inner.config is circuit
    cfg.method = "direct"
    assert cfg.typed() is None
    assert isinstance(make_solver(cfg).inner.method_config, DirectConfig)
