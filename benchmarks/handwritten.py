"""Page's ResNet-9 and airbench94 written by hand as ordinary ``nn.Module``s: the baselines graphnet is measured against.

Submodules are named like the compiled graphs' (``layer1.residual.res1.conv``,
``block2.norm1``), so a ``state_dict`` from ``graphnet.compile(build(resnet9.net))`` or
``graphnet.compile(build(airbench94.net))`` loads into them as is.
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


def airbench_block(c_in: int, c_out: int) -> nn.Sequential:
    """conv → max-pool 2 → BN → GELU → conv → BN → GELU, with airbench94's BN settings."""
    def norm() -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(c_out, eps=1e-12, momentum=0.4)
        bn.weight.requires_grad_(False)
        return bn

    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), pool=nn.MaxPool2d(2), norm1=norm(), act1=nn.GELU(),
        conv2=nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), norm2=norm(), act2=nn.GELU()))


class Airbench94(nn.Module):
    """airbench94.py's network: frozen 2×2 whitening conv (24 channels), three blocks, max-pool 3, linear ÷9."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.block1, self.block2, self.block3 = airbench_block(24, 64), airbench_block(64, 256), airbench_block(256, 256)
        self.pool = nn.MaxPool2d(3)
        self.linear = nn.Linear(256, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(nn.functional.gelu(self.whiten(x)))))
        return self.linear(torch.flatten(self.pool(x), 1)) / 9
