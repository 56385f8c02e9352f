"""Analog SGD's biased stationary point and Tiki-Taka's exact convergence (Wu et al., NeurIPS 2024)."""
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from amc.config import CircuitConfig
from amc.errors import ConfigError
from amc.tiles.array import PulsedArray
from amc.tiles.devices import DeviceModel
from amc.tiles.tile import WeightTile
from training.analog.algorithms import AnalogSGD
from training.analog.config import validate
from training.analog.least_squares import run


def _mean_abs_normal(mu: float, sigma: float) -> float:
    return sigma * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * sigma * sigma)) + mu * math.erf(mu / (sigma * math.sqrt(2)))


def test_analog_sgd_stalls_at_the_analytic_biased_point():
    """f(w) = ½(w - w*)², noisy gradient g = w - w* + σξ, soft bounds on [-τ, τ]: E[Δw] = 0 where
    (w - w*) + (w/τ)·E|w - w* + σξ| = 0 -- not at w*. 4,000 independent cells run in parallel."""
    tau, w_star, sigma, lr = 1.0, 0.5, 1.0, 0.004
    root = brentq(lambda w: (w - w_star) + w / tau * _mean_abs_normal(w - w_star, sigma), -tau, tau)
    device = DeviceModel("soft-bounds", dw_min=1e-4, w_max=tau, w_min=-tau)
    rng = np.random.default_rng(0)
    array = PulsedArray(device, (1, 4000), rng, update="mean-field")
    sgd = AnalogSGD(WeightTile(array, CircuitConfig.preset("ideal"), ideal_reads=True))
    samples = []
    for k in range(5000):
        g = sgd.weights - w_star + sigma * rng.standard_normal((1, 4000))
        sgd.step_matrix(g, lr)
        if k >= 2000:
            samples.append(sgd.weights.mean())
    measured = float(np.mean(samples))
    assert root == pytest.approx(0.282, abs=0.01)          # far from w* = 0.5: the bias is the point
    assert measured == pytest.approx(root, abs=0.01)


@pytest.mark.slow
def test_tiki_taka_error_falls_like_the_learning_rate_and_beats_analog_sgd():
    """The least-squares problem (K = 300/α, error = mean f over the last 20 %): log-log slope of Tiki-Taka's
    error over α = 0.01 ... 0.001 in 0.7-1.3; analog SGD's floor stays above it at α = 0.001."""
    circuit = CircuitConfig.preset("ideal")
    errors = {lr: run(validate({"algorithm": "tiki-taka", "lr": lr, "tau": 1.0}), circuit)["loss_tail"]
              for lr in (0.01, 0.001)}
    slope = math.log(errors[0.01] / errors[0.001]) / math.log(10)
    assert 0.7 <= slope <= 1.3, errors
    analog = run(validate({"algorithm": "analog-sgd", "lr": 0.01, "tau": 1.0, "iterations": 30000}), circuit)
    assert analog["loss_tail"] > 5 * errors[0.001]


def test_least_squares_run_counts_pulses_and_reads():
    cfg = validate({"algorithm": "tiki-taka", "lr": 0.03, "tau": 1.0, "iterations": 50, "update": "pulsed",
                    "bit_length": 31})
    metrics = run(cfg, CircuitConfig.preset("ideal"))
    assert metrics["ops_mvm_reads"] == 50 * 41                 # one one-hot read per column per transfer
    assert metrics["ops_dac_conversions"] == 50 * 41 * 41 and metrics["ops_adc_conversions"] == 50 * 41
    assert metrics["ops_cell_pulses"] > 0 and metrics["cost_energy_j"] > 0
    assert metrics["ops_update_cycles"] == 50 + 50 * 41        # A: one cycle a step; C: one per column


def test_bad_analog_sections_are_refused():
    with pytest.raises(ConfigError, match="unknown key 'analog.lrr'"):
        validate({"lrr": 0.1})
    with pytest.raises(ConfigError, match="no effect on digital-sgd"):
        validate({"algorithm": "digital-sgd", "tau": 1.0})
    with pytest.raises(ConfigError, match="applies to c-ttv2 only"):
        validate({"algorithm": "tiki-taka", "tiki_taka": {"chop_every": 3}})
    with pytest.raises(ConfigError, match="analog.algorithm must be one of"):
        validate({"algorithm": "adam"})


def test_chopped_ttv2_with_pulses_learns_and_counts_its_buffered_transfers():
    cfg = validate({"algorithm": "c-ttv2", "lr": 0.03, "tau": 1.0, "iterations": 1500, "update": "pulsed",
                    "bit_length": 31, "tiki_taka": {"chop_every": 30}})
    metrics = run(cfg, CircuitConfig.preset("ideal"))
    assert metrics["loss_final"] < 0.5 * 0.66       # f(W0 = 0) = 0.66 for this problem
    assert metrics["ops_driver_pulses"] > metrics["ops_cell_pulses"] > 0


def test_kfac_direction_from_an_inv_array_matches_the_exact_inverse_and_counts_settles():
    circuit = CircuitConfig.preset("rram").replace(**{"device.levels": None})
    metrics = run(validate({"algorithm": "tiki-taka", "lr": 0.01, "tau": 1.0, "iterations": 20,
                            "precondition": "kfac-circuit", "damping": 0.01}), circuit)
    assert metrics["preconditioner_relative_error"] < 1e-3          # A0 = 1e5 op-amps, continuous cells
    assert metrics["ops_inv_settles"] == 20 and metrics["ops_ngspice_runs"] >= 1
    with pytest.raises(ConfigError, match="damping has no effect"):
        validate({"damping": 0.1})
