"""Page's DAWNBench ResNet-9 baseline ("How to train your ResNet", cifar10-fast).

prep conv 64; layer1 conv 128 + max-pool + residual of two conv blocks; layer2 256;
layer3 512 + residual; global max-pool (Page's max-pool 4 on 32×32 images: any size works);
flatten; linear 10 without bias; scale 0.125. 6,573,120 parameters at width 1.
"""

from graphnet.ops import adaptive_max_pool, add, batch_norm, conv, flatten, identity, linear, max_pool, mul, relu


def conv_bn(c_in: int, c_out: int) -> dict:
    return {"conv": conv(c_in, c_out), "bn": batch_norm(c_out), "relu": relu()}


def residual(c: int) -> dict:
    return {"in": identity(), "res1": conv_bn(c, c), "res2": conv_bn(c, c), "add": add(inputs=["in", "res2/relu"])}


def build(width_mult: float = 1.0, num_classes: int = 10, in_channels: int = 3) -> dict:
    """The network for images of ``in_channels`` channels; ``width_mult`` scales every layer's
    channels (64, 128, 256, 512)."""
    c = {k: max(1, round(v * width_mult)) for k, v in {"prep": 64, "layer1": 128, "layer2": 256, "layer3": 512}.items()}
    return {
        "prep": conv_bn(in_channels, c["prep"]),
        "layer1": {**conv_bn(c["prep"], c["layer1"]), "pool": max_pool(2), "residual": residual(c["layer1"])},
        "layer2": {**conv_bn(c["layer1"], c["layer2"]), "pool": max_pool(2)},
        "layer3": {**conv_bn(c["layer2"], c["layer3"]), "pool": max_pool(2), "residual": residual(c["layer3"])},
        "pool": adaptive_max_pool(1),
        "flatten": flatten(),
        "linear": linear(c["layer3"], num_classes, bias=False),
        "logits": mul(0.125),
    }


net = build()
