"""The reference network in pure NumPy: conv k x k (C_in -> C) -> ReLU -> max-pool p x p -> linear -> softmax.

Parameters are a dict of arrays, weights stored as (out, in) matrices so K-FAC sees every layer alike:

- ``conv.W`` (C, C_in*k*k), ``conv.b`` (C,)   -- im2col patch order (c_in, ky, kx)
- ``fc.W``   (K, C*P*P),   ``fc.b``   (K,)    -- pooled features flattened channel-major: index c*P*P + (i*P + j)

``forward`` returns logits and a cache holding what K-FAC needs: ``cache.inputs[layer]`` (conv: im2col patches
(N, T, C_in*k*k) with T = output positions; fc: pooled features (N, C*P*P)). ``backward`` returns parameter
gradients and ``out_grads[layer]``: gradients w.r.t. the layer's pre-activations (conv (N, T, C); fc (N, K)).
Everything is vectorised (stride tricks + BLAS); float32 by default, float64 for gradient checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


INITS = ("torch", "he")


@dataclass(frozen=True)
class LayerSpec:
    """What K-FAC needs to know about one layer."""
    name: str
    kind: str                  # "conv" or "linear"
    weight: str                # parameter key of the (out, in) weight
    bias: str                  # parameter key of the bias
    in_dim: int                # without the homogeneous (bias) coordinate
    out_dim: int
    in_groups: tuple           # sizes of natural input groups (e.g. one per input channel) for block splitting


@dataclass
class Cache:
    x: np.ndarray
    inputs: dict = field(default_factory=dict)
    pre: Optional[np.ndarray] = None       # conv pre-activation (N, T, C)
    pool_arg: Optional[np.ndarray] = None  # argmax inside each pool window (N, P, P, C)
    logits: Optional[np.ndarray] = None


class ConvNet:
    def __init__(self, n_classes: int = 26, image_size: int = 28, in_channels: int = 1, channels: int = 8,
                 kernel: int = 5, pool: int = 4, dtype=np.float32, init: str = "torch"):
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        conv_out = image_size - kernel + 1
        if conv_out <= 0 or conv_out % pool:
            raise ValueError(f"conv output {conv_out}x{conv_out} (image {image_size}, kernel {kernel}) "
                             f"must be a positive multiple of the pool size {pool}")
        self.n_classes, self.image_size, self.in_channels = n_classes, image_size, in_channels
        self.channels, self.kernel, self.pool = channels, kernel, pool
        self.conv_out = conv_out
        self.pooled = conv_out // pool
        self.dtype = np.dtype(dtype)
        self.init = init
        k2 = in_channels * kernel * kernel
        feat = channels * self.pooled ** 2
        self.layers = (
            LayerSpec("conv", "conv", "conv.W", "conv.b", k2, channels, (k2,)),
            LayerSpec("fc", "linear", "fc.W", "fc.b", feat, n_classes, (self.pooled ** 2,) * channels),
        )

    def __repr__(self) -> str:
        return (f"ConvNet(conv {self.kernel}x{self.kernel} {self.in_channels}->{self.channels}, ReLU, "
                f"max-pool {self.pool}, linear {self.channels * self.pooled ** 2}->{self.n_classes}; "
                f"{self.n_params} parameters, {self.dtype}, {self.init} init)")

    @property
    def n_params(self) -> int:
        return sum((l.in_dim + 1) * l.out_dim for l in self.layers)

    def init_params(self, seed: int = 0) -> dict:
        """Initial parameters (``self.init``):

        - ``torch`` (default): PyTorch's default for ``nn.Conv2d`` / ``nn.Linear`` (``kaiming_uniform_`` with
          a = sqrt(5)), i.e. weights AND biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in*k*k for the
          conv layer and C*P*P for the linear layer. This is what the PyTorch prototype used.
        - ``he``: He-uniform weights U(-sqrt(6/fan_in), sqrt(6/fan_in)), zero biases.
        """
        rng = np.random.default_rng(seed)
        params = {}
        for l in self.layers:
            if self.init == "he":
                bound = np.sqrt(6.0 / l.in_dim)
                params[l.weight] = rng.uniform(-bound, bound, (l.out_dim, l.in_dim)).astype(self.dtype)
                params[l.bias] = np.zeros(l.out_dim, dtype=self.dtype)
            else:
                bound = 1.0 / np.sqrt(l.in_dim)
                params[l.weight] = rng.uniform(-bound, bound, (l.out_dim, l.in_dim)).astype(self.dtype)
                params[l.bias] = rng.uniform(-bound, bound, l.out_dim).astype(self.dtype)
        return params

    # ---- forward / backward -------------------------------------------------------------------------
    def im2col(self, x: np.ndarray) -> np.ndarray:
        """(N, C_in, H, W) or (N, H, W) -> (N, T, C_in*k*k) patches, valid convolution, stride 1."""
        if x.ndim == 3:
            x = x[:, None]
        k = self.kernel
        win = sliding_window_view(x, (k, k), axis=(2, 3))          # (N, C_in, Ho, Wo, k, k)
        n, c, ho, wo = win.shape[:4]
        return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n, ho * wo, c * k * k)

    def forward(self, params: dict, x: np.ndarray) -> tuple[np.ndarray, Cache]:
        x = np.asarray(x, dtype=self.dtype)
        n = len(x)
        cache = Cache(x=x)
        patches = self.im2col(x)                                    # (N, T, K2)
        pre = patches @ params["conv.W"].T + params["conv.b"]       # (N, T, C)
        act = np.maximum(pre, 0)
        s, p, c = self.conv_out, self.pool, self.channels
        win = act.reshape(n, self.pooled, p, self.pooled, p, c).transpose(0, 1, 3, 5, 2, 4)
        win = win.reshape(n, self.pooled, self.pooled, c, p * p)
        arg = win.argmax(-1)                                         # (N, P, P, C)
        pooled = np.take_along_axis(win, arg[..., None], -1)[..., 0]
        feats = np.ascontiguousarray(pooled.transpose(0, 3, 1, 2)).reshape(n, -1)   # channel-major
        logits = feats @ params["fc.W"].T + params["fc.b"]
        cache.inputs = {"conv": patches, "fc": feats}
        cache.pre, cache.pool_arg, cache.logits = pre, arg, logits
        return logits, cache

    def backward(self, params: dict, cache: Cache, dlogits: np.ndarray) -> tuple[dict, dict]:
        """Backpropagate ``dlogits`` (N, K). Returns (param grads, pre-activation grads per layer)."""
        dlogits = np.asarray(dlogits, dtype=self.dtype)
        n = len(dlogits)
        feats, patches = cache.inputs["fc"], cache.inputs["conv"]
        grads = {"fc.W": dlogits.T @ feats, "fc.b": dlogits.sum(0)}
        dfeats = dlogits @ params["fc.W"]                            # (N, C*P*P)
        c, P, p = self.channels, self.pooled, self.pool
        dpooled = dfeats.reshape(n, c, P, P).transpose(0, 2, 3, 1)   # (N, P, P, C)
        dwin = np.zeros((n, P, P, c, p * p), dtype=self.dtype)
        np.put_along_axis(dwin, cache.pool_arg[..., None], dpooled[..., None], -1)
        dact = dwin.reshape(n, P, P, c, p, p).transpose(0, 1, 4, 2, 5, 3).reshape(n, self.conv_out ** 2, c)
        dpre = dact * (cache.pre > 0)
        grads["conv.W"] = dpre.reshape(-1, c).T @ patches.reshape(-1, patches.shape[-1])
        grads["conv.b"] = dpre.sum((0, 1))
        return grads, {"conv": dpre, "fc": dlogits}

    # ---- losses ----------------------------------------------------------------------------------------
    @staticmethod
    def softmax(logits: np.ndarray) -> np.ndarray:
        z = logits - logits.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    @staticmethod
    def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
        z = logits - logits.max(1, keepdims=True)
        logz = np.log(np.exp(z).sum(1))
        return float(np.mean(logz - z[np.arange(len(y)), y]))

    def loss_and_grads(self, params: dict, x: np.ndarray, y: np.ndarray):
        """Mean cross-entropy, its gradients, and the cache (holding logits and layer inputs)."""
        logits, cache = self.forward(params, x)
        loss = self.cross_entropy(logits, y)
        probs = self.softmax(logits)
        d = probs.copy()
        d[np.arange(len(y)), y] -= 1
        grads, _ = self.backward(params, cache, d / len(y))
        return loss, grads, cache

    def sampled_output_grads(self, params: dict, cache: Cache, rng: np.random.Generator) -> dict:
        """Per-sample pre-activation gradients of -log p(y~|x) with y~ sampled from the model (the extra
        backward pass of K-FAC's Fisher estimate). Not divided by the batch size."""
        probs = self.softmax(cache.logits.astype(np.float64))
        u = rng.random((len(probs), 1))
        ys = (probs.cumsum(1) < u).sum(1).clip(0, probs.shape[1] - 1)
        d = probs.astype(self.dtype)
        d[np.arange(len(ys)), ys] -= 1
        return self.backward(params, cache, d)[1]

    def predict(self, params: dict, x: np.ndarray, batch: int = 1000) -> np.ndarray:
        """Logits for a whole data set, evaluated in batches."""
        return np.concatenate([self.forward(params, x[i:i + batch])[0] for i in range(0, len(x), batch)])

    def evaluate(self, params: dict, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> tuple[float, float]:
        """(mean loss, accuracy)."""
        logits = self.predict(params, x, batch)
        return self.cross_entropy(logits, y), float(np.mean(logits.argmax(1) == y))


def build_model(model_cfg, n_classes: int, image_size: int):
    """The network a ``ModelConfig`` names: ``arch: reference`` -> ``ConvNet``, ``cnn4`` -> ``LayeredCNN.cnn4``."""
    if model_cfg.arch == "cnn4":
        from .cnn import LayeredCNN
        return LayeredCNN.cnn4(n_classes=n_classes, image_size=image_size, init=model_cfg.init)
    if model_cfg.arch != "reference":
        raise ValueError(f"model.arch must be 'reference' or 'cnn4', got {model_cfg.arch!r}")
    return ConvNet(n_classes=n_classes, image_size=image_size, channels=model_cfg.channels, kernel=model_cfg.kernel,
                   pool=model_cfg.pool, init=model_cfg.init)
