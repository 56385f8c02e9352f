"""Transient behaviour: settling time law (Sun et al., IEEE TED 2020), energy, unstable loops."""
import math

import numpy as np
import pytest

from amc import AnalogSolver, CircuitConfig, UnstableCircuitError
from workflow.matrices import random_spd

GBW = 16e6


def _settle(n, lam_min, seed):
    h = random_spd(n, seed=seed, lam_min=lam_min)
    g = np.random.default_rng(seed + 1).standard_normal(n)
    solution = AnalogSolver("ideal-dynamic").solve(h, g, transient=True)
    assert solution.settled
    assert solution.error_against(np.linalg.solve(h, g)) < 1e-4
    return solution


@pytest.mark.slow
def test_settling_time_follows_one_over_lambda_min_and_not_n():
    """t_settle * lambda_min(loop) = ln(1/tol) / (2 pi GBW) within 15%, over a 20x range of lambda_min and n = 8..32."""
    tol = CircuitConfig.preset("ideal-dynamic").simulation.settle_tol
    law = math.log(1 / tol) / (2 * math.pi * GBW)
    products, lambdas = [], []
    for n, lam_values in ((8, (0.01, 0.05, 0.2)), (16, (0.01, 0.2)), (32, (0.05,))):
        for lam in lam_values:
            s = _settle(n, lam, seed=n)
            products.append(s.settling_time_s * s.lambda_min)
            lambdas.append(s.lambda_min)
    products = np.array(products)
    assert max(lambdas) / min(lambdas) > 20
    assert np.all(np.abs(products / law - 1) < 0.15), products / law
    # the settling time itself spans the same range as 1/lambda_min
    assert products.max() / products.min() < 1.3


def test_energy_is_power_integrated_over_the_settling_window():
    s = _settle(8, 0.2, seed=3)
    power = s.waveforms[0]["power"]
    time = s.waveforms[0]["time"]
    assert s.energy_j > 0
    # between min and max power times the settling window
    assert power.min() * s.settling_time_s * 0.99 <= s.energy_j <= power.max() * s.settling_time_s * 1.01


def test_transient_and_operating_point_agree():
    h = random_spd(12, seed=11, lam_min=0.3)
    g = np.random.default_rng(12).standard_normal(12)
    config = CircuitConfig.preset("rram").replace(**{"inverter.kind": "ideal"})
    op = AnalogSolver(config).solve(h, g)
    tran = AnalogSolver(config).solve(h, g, transient=True)
    assert np.linalg.norm(op.x - tran.x) / np.linalg.norm(op.x) < 1e-3


def test_unstable_matrix_is_refused_before_simulation():
    h = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
    with pytest.raises(UnstableCircuitError, match="unstable"):
        AnalogSolver("ideal").solve(h, np.array([1.0, 0.5]))


def test_unstable_circuit_diverges_to_the_rails_in_transient():
    """The DC .op reports an equilibrium, but the loop runs away: .tran must show the outputs at the swing limit."""
    h = np.array([[1.0, 2.0], [2.0, 1.0]])
    g = np.array([1.0, 0.5])
    config = CircuitConfig.preset("rram").replace(**{"device.levels": None, "inverter.kind": "ideal",
                                                     "simulation.check_stability": False})
    op = AnalogSolver(config).solve(h, g)
    assert op.error_against(np.linalg.solve(h, g)) < 1e-3  # the (unreachable) equilibrium
    tran = AnalogSolver(config).solve(h, g, transient=True)
    final = tran.waveforms[0]["outputs"][:, -1]
    assert np.all(np.abs(final) > 0.9 * config.opamp.v_sat)
    assert tran.saturated_any
    assert tran.error_against(np.linalg.solve(h, g)) > 0.5
