"""Small torch models for the examples and the agreement tests (no torchvision needed).

- ``ReferenceCNN``: the NumPy loop's network (``training.model.ConvNet``): conv k x k -> ReLU -> max-pool -> linear,
  layer names ``conv`` and ``fc``; ``load_numpy_params`` copies a NumPy parameter dict into it.
- ``LeNet5``: LeCun et al. 1998 on 28 x 28 inputs (conv 5x5 1->6 pad 2, pool, conv 5x5 6->16, pool, 120, 84, classes).
- ``SmallResNet``: a stem conv and ``blocks`` residual blocks (He et al. 2016: two 3x3 convs without bias, the
  first block of every later stage strided with a 1x1 projection shortcut), average pool to 3 x 3 (a global pool of so shallow a stack leaves the
  letters nearly indistinguishable), linear. No batch
  norm, so every weight is K-FAC's; He-normal conv init (fan-out), as the ResNet paper.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ReferenceCNN(nn.Module):
    def __init__(self, n_classes: int = 13, image_size: int = 28, in_channels: int = 1, channels: int = 8,
                 kernel: int = 5, pool: int = 4):
        super().__init__()
        pooled = (image_size - kernel + 1) // pool
        self.conv = nn.Conv2d(in_channels, channels, kernel)
        self.pool = nn.MaxPool2d(pool)
        self.fc = nn.Linear(channels * pooled * pooled, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x[:, None]
        return self.fc(torch.flatten(self.pool(F.relu(self.conv(x))), 1))


def load_numpy_params(model: ReferenceCNN, params: dict) -> ReferenceCNN:
    """Copy ``training.model.ConvNet`` parameters (conv.W (C, C_in k k) in im2col order, fc.W channel-major) in."""
    with torch.no_grad():
        for layer in ("conv", "fc"):
            module = getattr(model, layer)
            module.weight.copy_(torch.as_tensor(np.asarray(params[f"{layer}.W"])).reshape(module.weight.shape))
            module.bias.copy_(torch.as_tensor(np.asarray(params[f"{layer}.b"])))
    return model


class LeNet5(nn.Module):
    def __init__(self, n_classes: int = 13):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x[:, None]
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if (stride != 1 or c_in != c_out) \
            else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, n_classes: int = 13, width: int = 8, stages: int = 2):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, stride=2, padding=1)          # 28 -> 14
        blocks, c = [], width
        for s in range(stages):
            c_out = width * 2 ** s
            blocks.append(BasicBlock(c, c_out, stride=1 if s == 0 else 2))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c * 9, n_classes)
        for m in self.modules():       # He et al. 2015 init as in the ResNet paper (no batch norm to rescale)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x[:, None]
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 3), 1))
