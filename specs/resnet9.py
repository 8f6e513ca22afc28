"""Page's DAWNBench ResNet-9 baseline: ``graphnet.zoo.resnet9``, shipped with the package."""

from graphnet.zoo.resnet9 import build, conv_bn, net, residual

__all__ = ["build", "conv_bn", "net", "residual"]
