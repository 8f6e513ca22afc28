"""Keller Jordan's airbench94 tricks as passes: ± patch whitening, Dirac init, BN settings, 6-view TTA.

Passes (each pure, ``Graph -> Graph``): ``whiten_input_pm``, ``dirac_init`` (a rule),
``bn_settings`` (a rule over the norms) (net) and ``tta_translate`` (eval, after ``tta_flip``). Initialisers (node attr ``init``, run by
``graphnet.initialise``): ``whitening_pm``, ``dirac`` and ``unit_std``. Ops: ``translate_views`` and
``weighted_views``.

A new trainer hint on node attrs (besides ``frozen``, ``lr_mult``, ``wd_mult``, ``init``):
``frozen_after: {param: epochs}``: the param trains for the first ``epochs`` epochs, then is
frozen (its gradient dropped after each backward: ``graphnet.train.frozen_after``).

The numbers are airbench94.py's (KellerJordan/cifar10-airbench).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from ..graph import Graph, Node
from ..ops import PositiveInt, Range, register
from .hints import register_initialiser
from .registry import PassError, no_match, register_pass, rewrite
from .rules import NORMS, any_of, bound, pat, rule
from .tta import tta_flip
from .whiten import first_input_conv, whitening

# -- initialisers ---------------------------------------------------------------------------


@register_initialiser("whitening_pm")
def whitening_pm(module: nn.Conv2d, x: torch.Tensor, eps: float = 5e-4) -> None:
    """Set the conv's filters to the whitening eigenpatches of ``x`` followed by their negations.

    The first ``c_in·kh·kw`` filters are ``whitening(eps)``'s (eigenvectors of the patches'
    second moments scaled by ``1/sqrt(λ + eps)``, largest λ first); the rest are the same
    filters negated. A ReLU-like activation after the conv then passes each whitened
    direction's positive and negative parts on separate channels, so nothing is lost to it.
    The bias, if any, starts at zero.
    """
    c_out, c_in, kh, kw = module.weight.shape
    half = c_in * kh * kw
    if c_out != 2 * half:
        raise ValueError(f"a ± whitening conv needs 2·c_in·kh·kw = {2 * half} filters, not {c_out}")
    # ``whitening`` fills a conv's weight; a float64 stand-in holds the positive half
    positive = SimpleNamespace(weight=torch.empty(half, c_in, kh, kw, dtype=torch.float64, device=x.device))
    whitening(positive, x, eps=eps)
    module.weight.copy_(torch.cat([positive.weight, -positive.weight]))
    if module.bias is not None:
        module.bias.zero_()


@register_initialiser("dirac", reads_input=False)
def dirac(module: nn.Conv2d, x: torch.Tensor | None = None) -> None:
    """Make the conv's first ``c_in`` filters the identity (Dirac) on its input channels.

    Filter ``i < min(c_in, c_out)`` passes input channel ``i`` through unchanged; the other
    filters keep their random initialisation. ``x`` is not used.
    """
    w = module.weight
    nn.init.dirac_(w[: w.shape[1]])


@register_initialiser("unit_std", reads_input=False)
def unit_std(module: nn.Module, x: torch.Tensor | None = None) -> None:
    """Rescale the module's weight to standard deviation 1 (airbench94_muon.py's head); ``x`` is not used."""
    module.weight.div_(module.weight.std())


# -- passes --------------------------------------------------------------------------------


@register_pass("whiten_input_pm", keeps="changes")
def whiten_input_pm(graph: Graph, patch: PositiveInt = 2, eps: Annotated[float, Range(0, open_low=True)] = 5e-4,
                    bias_epochs: float = 3) -> Graph:
    """Make the first conv on the input a frozen ± patch-whitening conv: ``patch``×``patch``, no padding, biased.

    The conv gets ``2·c_in·patch²`` filters (24 for RGB 2×2), padding 0 and a bias, and attrs
    ``frozen: ['weight']``, ``init: whitening_pm(eps)`` and ``frozen_after: {'bias': bias_epochs}``
    (the bias trains for the first ``bias_epochs`` epochs only). Where its width changes,
    the convs it feeds take the new width (Page's whitening conv feeds a 1×1 conv).

    Airbench's whitening layer: a 2×2 patch has 12 dimensions instead of 27, so the layer is
    cheaper and the image shrinks to 31×31; the negated copies keep the whole whitened
    signal through the GELU that follows; the small ``eps`` whitens more directions; the
    learnable bias lets the first few epochs shift the whitened features.
    """
    path = first_input_conv(graph, "whitening_pm")
    node = graph[path]
    width = 2 * node.params["c_in"] * patch * patch
    if node.params["c_out"] != width:
        for consumer in graph.successors(path):
            if graph[consumer].op != "conv":
                raise PassError(f"the first conv on the input, {path!r}, has {node.params['c_out']} channels, "
                                f"not {width}, and feeds {consumer!r} ({graph[consumer].op}), which cannot take {width}")
            graph = graph.replace(consumer, params={**graph[consumer].params, "c_in": width})
    attrs = {**node.attrs, "frozen": sorted({*node.attrs.get("frozen", ()), "weight"}),
             "init": {"name": "whitening_pm", "params": {"eps": eps}},
             "frozen_after": {**node.attrs.get("frozen_after", {}), "bias": bias_epochs}}
    params = {"c_in": node.params["c_in"], "c_out": width, "kernel_size": patch, "padding": 0, "bias": True}
    return graph.replace(path, params=params, attrs=attrs)


DIRAC = {"name": "dirac", "params": {}}


def shape_keeping(node: Node) -> bool:
    """A conv whose identity filters keep the image: odd kernel, 'same' padding, stride 1, one group, no initialiser."""
    k = node.params.get("kernel_size", 3)
    return ("init" not in node.attrs and k % 2 == 1 and node.params.get("padding") in (None, k // 2)
            and node.params.get("stride", 1) == 1 and node.params.get("groups", 1) == 1)


def _dirac_init(match) -> dict:
    """Give every shape-keeping conv without a data initialiser the ``dirac`` initialiser (attr ``init``).

    A conv qualifies with an odd kernel, 'same' padding, stride 1 and one group; its first
    ``c_in`` filters start as the identity on its input (all of them when ``c_out <= c_in``),
    the rest random. Convs that already have an ``init`` (the whitening conv) are left alone.

    Airbench's "implicit residual": at initialisation each conv passes its input through,
    so a plain, residual-free stack trains like a residual net from the first step.
    """
    return {"conv": bound("conv").changed(attrs={"init": DIRAC})}


dirac_init = register_pass(rule(
    {"conv": pat("conv", where=shape_keeping)}, _dirac_init, name="dirac_init", keeps="exact",
    applied={"conv": pat("conv", where=lambda node: node.attrs.get("init") == DIRAC)}))


def _bn_settings(match, momentum: Annotated[float, Range(0, 1, open_low=True)] = 0.4,
                 eps: Annotated[float, Range(0, open_low=True)] = 1e-12, frozen_weight: bool = True,
                 bias_lr_mult: float = 64.0, bias_wd_mult: float = 1.0) -> dict:
    """Set every norm's ``momentum`` and ``eps``, freeze its scale at 1, scale its bias's lr.

    ``momentum`` is PyTorch's (the weight of the new batch): airbench's ``batchnorm_momentum``
    0.6 is ``1 - momentum``. Attrs: ``frozen: ['weight']`` with ``weight_init=1`` (if
    ``frozen_weight``), ``lr_mult: {'bias': bias_lr_mult}``, ``wd_mult: {'bias': bias_wd_mult}``.
    Airbench decouples weight decay from the lr, so its biases keep the same decay
    (``bias_wd_mult`` 1); under Page's coupled SGD the decay is multiplied by both. Norms
    that have these settings already are left alone.

    Fast running statistics (momentum 0.4) track the quickly changing weights of a short
    run; a tiny eps keeps the normalisation exact; a frozen scale and a 64× bias lr are
    Page's step 6, which airbench keeps. (Airbench's float32 norms under fp16 are the
    trainer's: ``--precision fp16`` keeps every norm in float32.)
    """
    attrs = match.node("norm").attrs
    changes = {"lr_mult": {**attrs.get("lr_mult", {}), "bias": bias_lr_mult},
               "wd_mult": {**attrs.get("wd_mult", {}), "bias": bias_wd_mult}}
    if frozen_weight:
        changes["frozen"] = sorted({*attrs.get("frozen", ()), "weight"})
    return {"norm": bound("norm").changed(attrs=changes, momentum=momentum, eps=eps,
                                          **({"weight_init": 1.0} if frozen_weight else {}))}


bn_settings = register_pass(rule({"norm": any_of(*NORMS)}, _bn_settings, name="bn_settings", keeps="changes"))


# -- test-time augmentation -------------------------------------------------------------------


def translate_views_fn(x: torch.Tensor, *, shift: int = 1) -> torch.Tensor:
    """The batch, then it moved by ``shift`` px down-right, then up-left (reflect padding): 3N images.

    The second view is the window at offset ``(-shift, -shift)`` of the reflect-padded image
    (its content moves down and right), the third the window at ``(+shift, +shift)``.
    """
    h, w = x.shape[-2:]
    padded = F.pad(x, (shift,) * 4, mode="reflect")
    return torch.cat([x, padded[..., :h, :w], padded[..., 2 * shift:, 2 * shift:]])


def weighted_views_fn(x: torch.Tensor, *, weights: tuple[float, ...] = (0.5, 0.25, 0.25)) -> torch.Tensor:
    """Split the batch into ``len(weights)`` equal chunks (views) and return their weighted sum,
    in fp32 (as ``mean_halves``). The weights stay plain numbers: no tensor made, nor copied to
    the device, per call."""
    views = x.float().reshape(len(weights), x.shape[0] // len(weights), *x.shape[1:])
    total = views[0] * weights[0]
    for view, weight in zip(views[1:], weights[1:]):
        total = total + view * weight
    return total


translate_views = register("translate_views", translate_views_fn)
weighted_views = register("weighted_views", weighted_views_fn)


@register_pass("tta_translate", applies_to="eval", after=("tta_flip",), keeps="changes")
def tta_translate(graph: Graph, shift: PositiveInt = 1) -> Graph:
    """Make the output airbench's 6-view TTA: flip × {no shift, ``shift`` px down-right, up-left}, weighted ½, ¼, ¼.

    Adds ``tta_flip`` first if the graph has no flip TTA, then puts ``tta_translate``
    (``translate_views``: the input and its two shifted copies as one batch of 3N) between
    the input and its consumers, and ``tta_translate_mean`` (``weighted_views``) after the
    output. Each view is thus the mean of the net on it and on its mirror image, as in
    airbench94.py's ``infer_mirror_translate``; exact in eval mode.

    Small shifts are, like flips, transformations the training augmentation taught the net
    to ignore, so averaging over them steadies the prediction for 3× the evaluation cost:
    airbench cut training time by relying on it.
    """
    done = graph.find(op="translate_views")
    if done:
        raise no_match("eval graph without translated views", done)
    graph = rewrite(graph, [tta_flip], strict=False)  # unless the graph has it already
    source, output = graph.inputs[0], graph.output
    graph = graph.add("tta_translate", translate_views(shift=shift, inputs=[source]), after=output)
    graph = graph.replace_uses(source, "tta_translate")
    return graph.add("tta_translate_mean", weighted_views(inputs=[output]), after=output)
