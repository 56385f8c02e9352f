"""A fully connected network on real EMNIST letters a–m whose weight matrices live on tiles.

Model: 784 → hidden (ReLU) → … → classes, softmax cross-entropy, digital biases (as aihwkit's "digital bias").
Every weight matrix is one algorithm's tile(s) (training/analog/algorithms.py); forward y = W x and backward δ = Wᵀ d
go through the tiles' periphery (amc/tiles/tile.py), the update is the layer's outer products Σ_b d_b x_bᵀ / B.
Digital SGD is the same network with float64 weights and exact matmuls.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from amc.config import CircuitConfig
from amc.cost.tiles import TileCostModel
from amc.errors import ConfigError

from .build import WriteAccount, make_algorithm


def _data(cfg: Mapping[str, Any], seed: int):
    from training.data import find_emnist_dir, load_emnist_dir, stratified_split
    net = cfg["network"]
    directory = find_emnist_dir(net["data_dir"])
    if directory is None:
        raise ConfigError("the emnist problem needs the EMNIST letters a-m files (analog.network.data_dir, "
                          "$AMC_DATA_DIR or ../shared/data/emnist-letters-am)")
    data = load_emnist_dir(directory)
    train, test = stratified_split(data.y, int(net["n_train"]), int(net["n_test"]), seed=0)
    x = data.x.reshape(len(data.y), -1).astype(float)
    return x[train], data.y[train], x[test], data.y[test], data.n_classes, data.name


class _DigitalLayer:
    def __init__(self, algorithm):
        self.algorithm = algorithm

    def forward(self, x):
        return self.algorithm.weights @ x

    def backward(self, d):
        return self.algorithm.weights.T @ d


class _TileLayer:
    """Reads through the tile that holds the layer's weights (C for Tiki-Taka: γ = 0)."""

    def __init__(self, algorithm):
        self.algorithm = algorithm
        self.tile = getattr(algorithm, "tile", None) or algorithm.c

    def forward(self, x):
        return self.tile.forward(x)

    def backward(self, d):
        return self.tile.backward(d)


def run(cfg: Mapping[str, Any], circuit: CircuitConfig, seed: int = 0) -> dict:
    t0 = time.perf_counter()
    net = cfg["network"]
    xtr, ytr, xte, yte, n_classes, name = _data(cfg, seed)
    sizes = [xtr.shape[1]] + [int(h) for h in net["hidden"]] + [n_classes]
    rng = np.random.default_rng(seed)
    account = WriteAccount()
    algorithms, layers, biases = [], [], []
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = np.sqrt(6.0 / (fan_in + fan_out))        # Glorot-uniform start, inside every preset's range
        w0 = rng.uniform(-bound, bound, (fan_out, fan_in))
        algorithm = make_algorithm((fan_out, fan_in), cfg, circuit, np.random.default_rng(seed * 1000 + k + 1), account)
        _program(algorithm, w0)
        algorithms.append(algorithm)
        layers.append(_DigitalLayer(algorithm) if cfg["algorithm"] == "digital-sgd" else _TileLayer(algorithm))
        biases.append(np.zeros((fan_out, 1)))
    lr, batch = float(cfg["lr"]), int(net["batch_size"])
    steps_per_epoch = len(ytr) // batch
    eval_every = max(1, steps_per_epoch // int(net["evals_per_epoch"]))
    curve_epoch, curve_acc = [], []
    for epoch in range(int(net["epochs"])):
        order = rng.permutation(len(ytr))
        for s in range(steps_per_epoch):
            idx = order[s * batch:(s + 1) * batch]
            acts = [xtr[idx].T]
            for k, layer in enumerate(layers):
                z = layer.forward(acts[-1]) + biases[k]
                acts.append(np.maximum(z, 0.0) if k < len(layers) - 1 else z)
            p = np.exp(acts[-1] - acts[-1].max(axis=0))
            p /= p.sum(axis=0)
            d = p
            d[ytr[idx], np.arange(len(idx))] -= 1.0
            d /= len(idx)
            for k in reversed(range(len(layers))):
                below = layers[k].backward(d) * (acts[k] > 0) if k > 0 else None
                biases[k] -= lr * d.sum(axis=1, keepdims=True)
                _update(algorithms[k], d, acts[k], lr)
                d = below
            if (s + 1) % eval_every == 0:
                curve_epoch.append(epoch + (s + 1) / steps_per_epoch)
                curve_acc.append(_accuracy(layers, biases, xte, yte))
    counts = sum((a.counts for a in algorithms), start=algorithms[0].counts.__class__())
    metrics = {"algorithm": cfg["algorithm"], "lr": lr, "data": name, "epochs": int(net["epochs"]),
               "final_test_accuracy": curve_acc[-1] if curve_acc else None,
               "best_test_accuracy": max(curve_acc) if curve_acc else None,
               "curve_epoch": curve_epoch, "curve_test_accuracy": curve_acc, "update": cfg["update"],
               "device": str(cfg["device"]), "run_time_s": time.perf_counter() - t0}
    metrics.update({f"ops_{k}": v for k, v in counts.to_dict().items()})
    if cfg["algorithm"] != "digital-sgd":   # each layer's tiles priced at their own size, then summed
        model = TileCostModel()
        prices = [model.price(a.counts, fan_out, fan_in, int(cfg["bit_length"]))
                  for a, fan_in, fan_out in zip(algorithms, sizes[:-1], sizes[1:])]
        metrics.update({f"cost_{k}": sum(p[k] for p in prices) for k in prices[0]})
    return metrics


def _program(algorithm, w0: np.ndarray) -> None:
    """The starting weights: digital copy, or the (slow) tile's devices set to them (a one-off programming)."""
    if hasattr(algorithm, "w"):
        algorithm.w = w0.copy()
        return
    array = (getattr(algorithm, "tile", None) or algorithm.c).array
    array.w = array.cells.clip(w0 + array.reference)
    array.counts.add(programmings=1, cells_programmed=w0.size)


def _update(algorithm, d: np.ndarray, x: np.ndarray, lr: float) -> None:
    if hasattr(algorithm, "step"):
        algorithm.step(d, x, lr)
    else:
        algorithm.step_matrix(d @ x.T, lr)


def _accuracy(layers, biases, x, y) -> float:
    a = x.T
    for k, layer in enumerate(layers):
        z = layer.forward(a) + biases[k]
        a = np.maximum(z, 0.0) if k < len(layers) - 1 else z
    return float(np.mean(np.argmax(a, axis=0) == y))
