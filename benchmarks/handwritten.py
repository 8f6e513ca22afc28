"""Page's ResNet-9 written by hand as an ordinary ``nn.Module``: the baseline graphnet is measured against.

Submodules are named like the compiled graph's (``layer1.residual.res1.conv``), so a
``state_dict`` from ``graphnet.compile(build(resnet9.net))`` loads into it as is.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def conv_bn(c_in: int, c_out: int) -> OrderedDict[str, nn.Module]:
    """3×3 convolution (no bias), batch norm, ReLU."""
    return OrderedDict(
        conv=nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        bn=nn.BatchNorm2d(c_out),
        relu=nn.ReLU(inplace=False),
    )


class Residual(nn.Module):
    """x + res2(res1(x))."""

    def __init__(self, c: int):
        super().__init__()
        self.res1 = nn.Sequential(conv_bn(c, c))
        self.res2 = nn.Sequential(conv_bn(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res2(self.res1(x))


def layer(c_in: int, c_out: int, residual: bool) -> nn.Sequential:
    """conv_bn, 2×2 max-pool, and optionally a residual block."""
    blocks = conv_bn(c_in, c_out)
    blocks["pool"] = nn.MaxPool2d(2)
    if residual:
        blocks["residual"] = Residual(c_out)
    return nn.Sequential(blocks)


class ResNet9(nn.Module):
    def __init__(self, num_classes: int = 10, weight: float = 0.125):
        super().__init__()
        self.prep = nn.Sequential(conv_bn(3, 64))
        self.layer1 = layer(64, 128, residual=True)
        self.layer2 = layer(128, 256, residual=False)
        self.layer3 = layer(256, 512, residual=True)
        self.pool = nn.MaxPool2d(4)
        self.linear = nn.Linear(512, num_classes, bias=False)
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        x = torch.flatten(self.pool(x), 1)
        return self.linear(x) * self.weight
