"""A layered CNN in pure NumPy: conv stages (conv k x k -> ReLU -> max-pool p x p) then fully connected layers.

``LayeredCNN.cnn4`` is the cost ledger's larger-task stand-in (amc/cost/workloads.py ``cnn4``), trained here:

    conv1 5x5, 1 -> 32   28 -> 24, max-pool 2 -> 12      A 1*25 + 1 = 26,    G 32
    conv2 5x5, 32 -> 64  12 ->  8, max-pool 2 ->  4      A 32*25 + 1 = 801,  G 64
    fc1   64*4*4 = 1024 -> 128, ReLU                     A 1025,             G 128
    fc2   128 -> n_classes (13 for EMNIST a-m)           A 129,              G 13

It keeps ``ConvNet``'s conventions so K-FAC sees every layer alike: weights are (out, in) matrices, conv weights in
im2col patch order (c_in, ky, kx), the first fc layer reads the last pooled map channel-major (index c*P*P + i*P + j).
Activations run channels-last (N, H, W, C) between stages, so one ``sliding_window_view`` gives every stage's patches
in that order. ``cache.inputs[layer]``: conv: patches (N, T, C_in*k*k); fc: inputs (N, in). ``backward`` returns the
parameter gradients and every layer's pre-activation gradients (conv (N, T, C); fc (N, out)). The losses, the
model-sampled K-FAC backward pass, evaluation and the (PyTorch-default) initialisation are ``ConvNet``'s own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .model import INITS, ConvNet, LayerSpec


@dataclass(frozen=True)
class ConvStage:
    out_channels: int
    kernel: int
    pool: int


@dataclass
class LayeredCache:
    x: np.ndarray
    inputs: dict = field(default_factory=dict)
    pre: dict = field(default_factory=dict)        # layer -> pre-activation (conv (N, T, C), hidden fc (N, out))
    pool_arg: dict = field(default_factory=dict)   # conv layer -> argmax inside each pool window (N, P, P, C)
    logits: np.ndarray = None


class LayeredCNN(ConvNet):
    """Conv stages then fully connected layers (ReLU between all, none after the last)."""

    def __init__(self, n_classes: int = 13, image_size: int = 28, in_channels: int = 1,
                 stages: Sequence[ConvStage] = (), hidden: Sequence[int] = (), dtype=np.float32, init: str = "torch"):
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if not stages:
            raise ValueError("a LayeredCNN needs at least one conv stage")
        self.n_classes, self.image_size, self.in_channels = n_classes, image_size, in_channels
        self.stages, self.hidden = tuple(stages), tuple(hidden)
        self.dtype, self.init = np.dtype(dtype), init
        layers, self.maps = [], []          # maps: (conv output side, pooled side) per stage
        side, c_in = image_size, in_channels
        for i, s in enumerate(self.stages, 1):
            conv_out = side - s.kernel + 1
            if conv_out <= 0 or conv_out % s.pool:
                raise ValueError(f"conv{i}: output {conv_out}x{conv_out} (input {side}, kernel {s.kernel}) must be a "
                                 f"positive multiple of the pool size {s.pool}")
            k2 = c_in * s.kernel ** 2
            layers.append(LayerSpec(f"conv{i}", "conv", f"conv{i}.W", f"conv{i}.b", k2, s.out_channels,
                                    (s.kernel ** 2,) * c_in))
            self.maps.append((conv_out, conv_out // s.pool))
            side, c_in = conv_out // s.pool, s.out_channels
        dims = [c_in * side * side, *self.hidden, n_classes]
        for j in range(len(dims) - 1):
            groups = (side * side,) * c_in if j == 0 else (dims[j],)   # first fc: one group per channel
            layers.append(LayerSpec(f"fc{j + 1}", "linear", f"fc{j + 1}.W", f"fc{j + 1}.b", dims[j], dims[j + 1],
                                    groups))
        self.layers = tuple(layers)
        self.n_conv = len(self.stages)

    @classmethod
    def cnn4(cls, n_classes: int = 13, image_size: int = 28, dtype=np.float32, init: str = "torch") -> "LayeredCNN":
        """The ledger's 4-layer CNN: conv 5x5 1->32, pool 2, conv 5x5 32->64, pool 2, fc 1024->128, fc 128->K."""
        return cls(n_classes, image_size, 1, (ConvStage(32, 5, 2), ConvStage(64, 5, 2)), (128,), dtype, init)

    def __repr__(self) -> str:
        parts = [f"conv {s.kernel}x{s.kernel} {l.in_dim // s.kernel ** 2}->{s.out_channels}, ReLU, max-pool {s.pool}"
                 for s, l in zip(self.stages, self.layers)]
        parts += [f"linear {l.in_dim}->{l.out_dim}" for l in self.layers[self.n_conv:]]
        return (f"LayeredCNN({'; '.join(parts)}; {self.n_params} parameters, {self.dtype}, {self.init} init)")

    # ---- pieces ------------------------------------------------------------------------------------------------
    @staticmethod
    def _patches(h: np.ndarray, k: int) -> np.ndarray:
        """(N, H, W, C) -> (N, Ho*Wo, C*k*k) in (c, ky, kx) order; valid convolution, stride 1."""
        win = sliding_window_view(h, (k, k), axis=(1, 2))          # (N, Ho, Wo, C, k, k)
        n, ho, wo = win.shape[:3]
        return np.ascontiguousarray(win).reshape(n, ho * wo, -1)

    @staticmethod
    def _unpatch(dp: np.ndarray, k: int, side: int, c: int) -> np.ndarray:
        """Adjoint of ``_patches``: (N, Ho*Wo, C*k*k) -> (N, side, side, C), overlapping windows summed."""
        n, ho = len(dp), side - k + 1
        dp = dp.reshape(n, ho, ho, c, k, k)
        dx = np.zeros((n, side, side, c), dtype=dp.dtype)
        for ky in range(k):
            for kx in range(k):
                dx[:, ky:ky + ho, kx:kx + ho, :] += dp[..., ky, kx]
        return dx

    # ---- forward / backward ------------------------------------------------------------------------------------
    def forward(self, params: dict, x: np.ndarray) -> tuple[np.ndarray, LayeredCache]:
        x = np.asarray(x, dtype=self.dtype)
        n = len(x)
        cache = LayeredCache(x=x)
        h = x[..., None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 2, 3, 1))   # channels-last
        for s, l, (co, P) in zip(self.stages, self.layers, self.maps):
            patches = self._patches(h, s.kernel)                              # (N, T, C_in k k)
            pre = patches @ params[l.weight].T + params[l.bias]                # (N, T, C)
            act = np.maximum(pre, 0)
            p, c = s.pool, s.out_channels
            win = act.reshape(n, P, p, P, p, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, P, P, c, p * p)
            arg = win.argmax(-1)                                               # (N, P, P, C)
            h = np.take_along_axis(win, arg[..., None], -1)[..., 0]            # (N, P, P, C)
            cache.inputs[l.name], cache.pre[l.name], cache.pool_arg[l.name] = patches, pre, arg
        a = np.ascontiguousarray(h.transpose(0, 3, 1, 2)).reshape(n, -1)       # channel-major features
        fcs = self.layers[self.n_conv:]
        for j, l in enumerate(fcs):
            cache.inputs[l.name] = a
            z = a @ params[l.weight].T + params[l.bias]
            if j < len(fcs) - 1:
                cache.pre[l.name] = z
                a = np.maximum(z, 0)
            else:
                cache.logits = z
        return cache.logits, cache

    def backward(self, params: dict, cache: LayeredCache, dlogits: np.ndarray) -> tuple[dict, dict]:
        """Backpropagate ``dlogits`` (N, K). Returns (param grads, pre-activation grads per layer)."""
        d = np.asarray(dlogits, dtype=self.dtype)
        n = len(d)
        grads, out = {}, {}
        fcs = self.layers[self.n_conv:]
        for j in range(len(fcs) - 1, -1, -1):
            l = fcs[j]
            if j < len(fcs) - 1:
                d = d * (cache.pre[l.name] > 0)
            out[l.name] = d
            grads[l.weight], grads[l.bias] = d.T @ cache.inputs[l.name], d.sum(0)
            d = d @ params[l.weight]                                           # gradient w.r.t. the layer's input
        c_last, P_last = self.stages[-1].out_channels, self.maps[-1][1]
        dh = d.reshape(n, c_last, P_last, P_last).transpose(0, 2, 3, 1)        # (N, P, P, C)
        for i in range(self.n_conv - 1, -1, -1):
            s, l, (co, P) = self.stages[i], self.layers[i], self.maps[i]
            p, c = s.pool, s.out_channels
            dwin = np.zeros((n, P, P, c, p * p), dtype=self.dtype)
            np.put_along_axis(dwin, cache.pool_arg[l.name][..., None], dh[..., None], -1)
            dact = dwin.reshape(n, P, P, c, p, p).transpose(0, 1, 4, 2, 5, 3).reshape(n, co * co, c)
            dpre = dact * (cache.pre[l.name] > 0)
            patches = cache.inputs[l.name]
            out[l.name] = dpre
            grads[l.weight] = dpre.reshape(-1, c).T @ patches.reshape(-1, patches.shape[-1])
            grads[l.bias] = dpre.sum((0, 1))
            if i > 0:
                c_in = self.stages[i - 1].out_channels
                dh = self._unpatch(dpre @ params[l.weight], s.kernel, self.maps[i - 1][1], c_in)
        return grads, out
