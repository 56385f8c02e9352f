"""Wu et al. (NeurIPS 2024)'s least-squares problem (their S2-dynamic-verification setting).

f(W) = ½·mean((A w + b - y)²) over 100 samples, A 100×40 with N(0,1)/2 entries, x* = 0.3·N(0,1), y = A x*, a bias b
(their model is torch.nn.Linear(40, 1), so 41 weights on a 1×41 tile), W₀ = 0, gradient plus N(0, σ²) noise per
entry, K iterations, error = mean f over the last ``tail_fraction`` of them. f* = 0 (y is realisable).
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from amc.config import CircuitConfig
from amc.cost.tiles import TileCostModel

from .build import WriteAccount, device_of, make_algorithm

N_SAMPLES, N_INPUTS = 100, 40


def problem(seed: int, bias: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((N_SAMPLES, N_INPUTS)) / 2
    x_true = 0.3 * rng.standard_normal(N_INPUTS)
    y = a @ x_true
    features = np.hstack([a, np.ones((N_SAMPLES, 1))]) if bias else a
    w_true = np.append(x_true, 0.0) if bias else x_true
    return features, y, w_true


def run(cfg: Mapping[str, Any], circuit: CircuitConfig, seed: int = 0, curve_points: int = 200) -> dict:
    t0 = time.perf_counter()
    x, y, w_true = problem(int(cfg["problem_seed"]), bool(cfg["bias"]))
    lr = float(cfg["lr"])
    iterations = int(cfg["iterations"]) if cfg["iterations"] is not None else int(round(300.0 / lr))
    rng = np.random.default_rng(seed)
    account = WriteAccount()
    algorithm = make_algorithm((1, x.shape[1]), cfg, circuit, np.random.default_rng(seed + 1_000_003), account)
    sigma = float(cfg["noise_sigma"])
    precondition, inv_error, inv_ops = _preconditioner(x, cfg, circuit)
    xt = x.T / N_SAMPLES
    losses = np.empty(iterations)
    noise = rng.standard_normal((iterations, x.shape[1])) * sigma if iterations * x.shape[1] <= 5e7 else None
    for k in range(iterations):
        w = algorithm.weights[0]
        r = x @ w - y
        losses[k] = 0.5 * float(r @ r) / N_SAMPLES
        g = xt @ r + (noise[k] if noise is not None else sigma * rng.standard_normal(x.shape[1]))
        algorithm.step_matrix((g if precondition is None else precondition @ g)[None, :], lr)
    tail = max(1, int(round(cfg["tail_fraction"] * iterations)))
    w = algorithm.weights[0]
    device = device_of(cfg)
    counts = algorithm.counts.to_dict()
    every = max(1, iterations // curve_points)
    metrics = {
        "algorithm": cfg["algorithm"], "tau": device.tau if cfg["algorithm"] != "digital-sgd" else cfg["tau"],
        "lr": lr, "loss_tail": float(np.mean(losses[-tail:])),
        "loss_tail_per_input": float(np.mean(losses[-tail:])) / N_INPUTS,   # the official script's plotted scale
        "loss_final": float(losses[-1]), "iterations": iterations, "update": cfg["update"],
        "weight_error": float(np.linalg.norm(w - w_true)),
        "saturation_max": float(np.max(np.abs(w)) / device.tau),
        "wire_ohm": float(cfg["write"]["wire_ohm"]), "write_scheme": cfg["write"]["scheme"],
        "calibration": cfg["write"]["calibration"],
        # under their sweep keys too, so figures split curves by them even where a point leaves them at the default
        "analog.write.scheme": cfg["write"]["scheme"], "analog.write.calibration": cfg["write"]["calibration"],
        "write_amplitude_min": account.amplitude_min, "write_amplitude_mean": account.amplitude_mean,
        "symmetric_point_shift_max": account.sp_shift_max, "write_ngspice_runs": account.ngspice_runs,
        "run_time_s": time.perf_counter() - t0,
        "curve_iteration": list(range(0, iterations, every)), "curve_loss": losses[::every].tolist(),
    }
    metrics["precondition"] = cfg["precondition"]
    if precondition is not None:
        metrics["preconditioner_relative_error"] = inv_error
        counts["inv_settles"] = counts.get("inv_settles", 0) + iterations    # one INV settle per step's direction
        for key, value in inv_ops.items():
            if key != "inv_settles":
                counts[key] = counts.get(key, 0) + value
    metrics.update({f"ops_{k}": v for k, v in counts.items()})
    if cfg["algorithm"] != "digital-sgd":
        price = TileCostModel().price(algorithm.counts, 1, x.shape[1], int(cfg["bit_length"]))
        metrics.update({f"cost_{k}": v for k, v in price.items()})
    return metrics


def _preconditioner(x: np.ndarray, cfg: Mapping[str, Any], circuit: CircuitConfig):
    """K-FAC for this one-layer model with a squared loss: F = XᵀX/N (the input factor; the output factor is 1),
    damped by λ. ``kfac-circuit`` programs F + λI into an INV array of the point's circuit and measures its
    response to the unit currents once (the matrix engine, held to ngspice's .op); every step's direction is then
    one settle of that programmed array, applied here through the measured response. ``kfac-exact`` is the
    float64 inverse (the control that separates the circuit's error from the preconditioning)."""
    mode = cfg["precondition"]
    if mode == "none":
        return None, None, {}
    h = x.T @ x / x.shape[0] + float(cfg["damping"]) * np.eye(x.shape[1])
    exact = np.linalg.inv(h)
    if mode == "kfac-exact":
        return exact, 0.0, {}
    from amc.solver import AnalogSolver
    solution = AnalogSolver(circuit).solve(h, np.eye(x.shape[1]))
    measured = np.asarray(solution.x)
    error = float(np.linalg.norm(measured - exact) / np.linalg.norm(exact))
    return measured, error, solution.operations.to_dict()
