"""What K-FAC needs from one torch layer, whatever its type: its input rows (conv: unfolded patches), its output
gradient rows, and its gradient and update as one (out, in[+1]) matrix (bias as the last column).

Supported: ``nn.Linear`` (any leading dimensions: every row a sample position) and ``nn.Conv2d`` (any kernel, stride,
padding including ``'same'``/``'valid'``, dilation; zero padding; groups = 1), each with or without a bias.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class UnsupportedLayer(ValueError):
    """A layer K-FAC cannot precondition as it is (e.g. a grouped convolution); skip it with ``skip_layers``."""


class ModuleHelper:
    kind = "layer"
    batched_dim = 2          # input dimensions of a batched call

    def __init__(self, name: str, module: nn.Module):
        self.name, self.module = name, module

    @property
    def has_bias(self) -> bool:
        return self.module.bias is not None

    @property
    def out_dim(self) -> int:
        return int(self.module.weight.shape[0])

    @property
    def in_dim(self) -> int:
        return int(self.module.weight[0].numel())

    def samples(self, x: torch.Tensor) -> int:
        """Samples in a forward input (an unbatched input is one sample)."""
        return int(x.shape[0]) if x.dim() >= self.batched_dim else 1

    def input_rows(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, in) float64: one row per sample position."""
        raise NotImplementedError

    def output_rows(self, g: torch.Tensor) -> torch.Tensor:
        """(rows, out) float64 gradient rows w.r.t. the layer's output (pre-activation)."""
        raise NotImplementedError

    def grad_matrix(self) -> Optional[torch.Tensor]:
        """[dW db] as (out, in[+1]) in float64, or None when the layer got no gradient this step."""
        w = self.module.weight.grad
        if w is None:
            return None
        m = w.detach().reshape(self.out_dim, -1).to(torch.float64)
        if self.has_bias:
            b = self.module.bias.grad
            b = torch.zeros(self.out_dim, dtype=torch.float64, device=m.device) if b is None else \
                b.detach().to(torch.float64)
            m = torch.cat([m, b[:, None]], 1)
        return m

    def apply_update(self, update: torch.Tensor, lr: float) -> None:
        """weight -= lr * update[:, :in], bias -= lr * update[:, -1]."""
        w = self.module.weight
        w.data.add_(update[:, :self.in_dim].reshape(w.shape).to(w.dtype), alpha=-lr)
        if self.has_bias:
            b = self.module.bias
            b.data.add_(update[:, -1].to(b.dtype), alpha=-lr)


class LinearHelper(ModuleHelper):
    kind = "Linear"

    def input_rows(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach().reshape(-1, x.shape[-1]).to(torch.float64)

    def output_rows(self, g: torch.Tensor) -> torch.Tensor:
        return g.detach().reshape(-1, g.shape[-1]).to(torch.float64)


class Conv2dHelper(ModuleHelper):
    kind = "Conv2d"
    batched_dim = 4

    def __init__(self, name: str, module: nn.Conv2d):
        super().__init__(name, module)
        if module.groups != 1:
            raise UnsupportedLayer(f"layer {name!r}: grouped convolution (groups={module.groups}) is not supported; "
                                   "add it to skip_layers")
        if module.padding_mode != "zeros":
            raise UnsupportedLayer(f"layer {name!r}: padding_mode {module.padding_mode!r} is not supported (zeros "
                                   "only); add it to skip_layers")

    def _pads(self) -> tuple:
        """(left, right, top, bottom) zero padding, as F.pad takes it."""
        m = self.module
        if m.padding == "valid":
            return (0, 0, 0, 0)
        if m.padding == "same":                     # total d (k - 1), the extra pixel on the right/bottom as torch does
            tot = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size)]
            return (tot[1] // 2, tot[1] - tot[1] // 2, tot[0] // 2, tot[0] - tot[0] // 2)
        ph, pw = m.padding
        return (pw, pw, ph, ph)

    def input_rows(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        x = x.detach().to(torch.float64)
        if x.dim() == 3:                            # unbatched (C, H, W)
            x = x[None]
        x = F.pad(x, self._pads())
        cols = F.unfold(x, m.kernel_size, dilation=m.dilation, padding=0, stride=m.stride)   # (N, C k k, T)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])

    def output_rows(self, g: torch.Tensor) -> torch.Tensor:
        g = g.detach().to(torch.float64)
        if g.dim() == 3:
            g = g[None]
        return g.permute(0, 2, 3, 1).reshape(-1, g.shape[1])


HELPERS = {nn.Linear: LinearHelper, nn.Conv2d: Conv2dHelper}
LAYER_TYPES = tuple(HELPERS)


def helper_for(name: str, module: nn.Module) -> Optional[ModuleHelper]:
    """The helper of a layer K-FAC preconditions (a Linear or Conv2d, subclasses included), else None."""
    for base, cls in HELPERS.items():
        if isinstance(module, base):
            return cls(name, module)
    return None
