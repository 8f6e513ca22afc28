"""Input patch whitening (Page's step 7): the pass ``whiten_input`` and the ``whitening`` initialiser."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from ..graph import Graph
from ..ops import Odd, Range, conv
from ..spec import join
from .hints import register_initialiser
from .registry import no_match, register_pass
from .rules import fresh_path


@register_initialiser("whitening")
def whitening(module: nn.Conv2d, x: torch.Tensor, eps: float = 1e-2, chunk: int = 1000) -> None:
    """Set the conv's filters to the PCA eigenpatches of ``x`` scaled by ``1/sqrt(λ + eps)``, largest λ first.

    The patches are every kh×kw window of ``x`` that lies inside the image (no padding); Σ
    is their second-moment matrix (their covariance, as normalised inputs have zero mean).
    Each filter is an eigenvector of Σ, so the conv's outputs at valid positions have
    second moments ``diag(λ / (λ + eps))``: near identity where λ >> eps. Computed in
    float64, ``chunk`` images at a time.
    """
    c_out, c_in, kh, kw = module.weight.shape
    if c_out != c_in * kh * kw:
        raise ValueError(f"a whitening conv needs c_in·kh·kw = {c_in * kh * kw} filters, not {c_out}")
    sigma = torch.zeros(c_out, c_out, dtype=torch.float64, device=x.device)
    count = 0
    for part in x.split(chunk):
        patches = part.double().unfold(2, kh, 1).unfold(3, kw, 1)  # n, c, rows, cols, kh, kw: a view
        # one column a patch, ordered like a filter: Σ is one matmul (F.unfold in float64 is 100x slower)
        cols = patches.permute(1, 4, 5, 0, 2, 3).reshape(c_out, -1)
        sigma += cols @ cols.T
        count += cols.shape[1]
    lam, vectors = torch.linalg.eigh(sigma / count)  # ascending
    filters = vectors.flip(1).T / torch.sqrt(lam.flip(0) + eps)[:, None]
    module.weight.copy_(filters.reshape_as(module.weight))


def first_input_conv(graph: Graph, init: str) -> str:
    """The path of the first conv fed by the graph's input; no-match if none, or if it already has initialiser ``init``."""
    source = graph.inputs[0]
    convs = graph.find(op="conv", where=lambda n: source in n.inputs)
    if not convs:
        raise no_match(f"'conv' node fed by the input {source!r}")
    if graph[convs[0]].attrs.get("init", {}).get("name") == init:
        raise no_match(f"first conv on the input that is not a {init!r} conv", convs[:1])
    return convs[0]


@register_pass("whiten_input", keeps="changes")
def whiten_input(graph: Graph, patch: Annotated[int, Range(1), Odd()] = 3,
                 eps: Annotated[float, Range(0, open_low=True)] = 1e-2) -> Graph:
    """Replace the first conv on the input by a fixed patch-whitening conv and a learnable 1×1 conv.

    The new ``whiten`` node (``whiten_1``, ... where that path is taken) is a ``patch``×``patch``
    conv with ``c_in·patch²`` filters, frozen, whose weights ``graphnet.initialise`` sets from
    data (attr ``init: whitening``); the old conv becomes a 1×1 conv from those channels to its own width, so its consumers are unchanged.

    The first layer learns slowly from raw, highly correlated pixels. Fixing it to the PCA
    whitening of the input's patches gives the rest of the net a well-conditioned input
    from the first step: Page cut two epochs, then more with a higher learning rate.
    An odd ``patch`` keeps the image size.
    """
    path = first_input_conv(graph, "whitening")
    node = graph[path]
    width = node.params["c_in"] * patch * patch
    whiten = fresh_path(graph, join(node.namespace, "whiten"))
    attrs = {"frozen": ["weight"], "init": {"name": "whitening", "params": {"eps": eps}}}
    graph = graph.add(whiten, (*conv(node.params["c_in"], width, patch, inputs=[graph.inputs[0]]), attrs), after=path)
    kept = {k: node.params[k] for k in ("stride", "bias") if k in node.params}
    return graph.replace(path, params={"c_in": width, "c_out": node.params["c_out"], "kernel_size": 1, **kept},
                         inputs=[whiten])
