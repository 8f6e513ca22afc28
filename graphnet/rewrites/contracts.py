"""``check(graph, pass)``: whether a pass keeps what it declares (``Pass.keeps``), on random inputs.

The graph is compiled with random weights (batch norms get random scales, shifts and running
statistics, so that folding them is tested), the pass is applied and its result compiled with
the weights carried over: by node path where the shape is kept, and through the pass's
``state_dict`` map (``registry.map_state``). Then, on random inputs of one batch:

- ``exact``: every weight carried, the outputs equal in eval mode and in train mode (the same
  seed before each forward, so dropout draws the same masks);
- ``eval``: every weight carried, the outputs equal in eval mode;
- ``changes``: the output shape kept, the output finite.

Equal means within ``tol`` times the larger of 1 and the output's largest magnitude. Every
result must round-trip through ``to_spec``, and applying the pass again must be refused
(``already applied``, or any ``RewriteError``) or change nothing. Where outputs differ, the
report names the first node (in the rewritten graph's order, among the paths both graphs have)
whose output differs, and the new node it reads, if any.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..compile import Network, compile
from ..errors import SpecError
from ..graph import Graph, build
from ..losses import LOSS_INPUTS, cross_entropy
from .registry import Pass, RewriteError, get_pass, map_state


@dataclass(frozen=True)
class CheckResult:
    """What ``check`` found: ``ok``, the ``problems`` (empty when ok), the largest output difference per
    mode compared, the parameter counts and output shapes before and after, and what a second application did."""

    pass_name: str
    keeps: str
    problems: tuple[str, ...]
    differences: Mapping[str, float]  # 'eval' / 'train' -> max |output before - output after|
    parameters: tuple[int, int]
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    again: str

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: ``ok`` or the first problem."""
        return "ok" if self.ok else f"FAILED: {self.problems[0]}"

    def __str__(self) -> str:
        lines = [f"{self.pass_name} (keeps {self.keeps}): {self.summary()}"]
        lines += [f"  also: {problem}" for problem in self.problems[1:]]
        lines += [f"  {mode}: max output difference {d:.3g}" for mode, d in self.differences.items()]
        (p0, p1), (s0, s1) = self.parameters, self.shapes
        lines.append(f"  parameters {p0:,} -> {p1:,}; output shape {s0} -> {s1}")
        lines.append(f"  applied again: {self.again}")
        return "\n".join(lines)


def check(graph: Graph | dict, pass_: str | Pass, params: Mapping[str, Any] | None = None, *,
          input_shape: Sequence[int] = (3, 32, 32), batch: int = 2, seed: int = 0, tol: float = 1e-4) -> CheckResult:
    """Check that ``pass_`` (a name or a ``Pass``) with ``params`` keeps what it declares on ``graph``.

    ``graph`` is a network (or its spec); the inputs are ``batch`` random images of ``input_shape``.
    A pass for the loss graph is checked on the cross-entropy loss graph, with logits of the
    network's output shape. A pass that does not apply raises as in ``rewrite`` (``NoMatchError``).
    """
    p = get_pass(pass_) if isinstance(pass_, str) else pass_
    if not isinstance(p, Pass):
        raise RewriteError(getattr(p, "__name__", repr(p)), "check takes a registered pass (a name or a Pass), "
                                                             "which declares what it keeps")
    params = dict(params or {})
    before = build(graph) if isinstance(graph, dict) else graph
    torch.manual_seed(seed)
    x = torch.randn(batch, *input_shape)
    if p.applies_to == "loss" and before.inputs != LOSS_INPUTS:
        with torch.device("meta"):
            classes = _compile(before).eval()(x.to("meta")).shape[-1]
        before = build(cross_entropy(), inputs=LOSS_INPUTS)
        inputs: tuple[torch.Tensor, ...] = (torch.randn(batch, classes), torch.randint(classes, (batch,)))
    else:
        inputs = (x,)
    after = p(before, **params)
    problems = []
    if build(after.to_spec(), inputs=after.inputs) != after:
        problems.append("the rewritten graph does not round-trip through to_spec")

    nets = (_random_network(before), _compile(after))
    shapes = {k: tuple(v.shape) for k, v in nets[1].state_dict().items()}
    state = map_state(p, params, nets[0].state_dict(), before, after, shapes)
    nets[1].load_state_dict(state, strict=False)
    missing = [k for k in nets[1].state_dict() if k not in state]
    if missing and p.keeps != "changes":
        problems.append(f"{missing[0]} is not carried over (no node path or state map gives it)")

    differences = {}
    for mode in ("eval", "train") if p.keeps == "exact" else ("eval",):
        try:
            outs = [_run(net, mode, inputs, seed) for net in nets]
        except (RuntimeError, ValueError) as e:  # a ShapeError (a SpecError) names the node itself
            if isinstance(e, SpecError):
                raise
            shape = "×".join(map(str, inputs[0].shape))
            raise RewriteError(p.name, f"{mode} mode on random inputs of {shape}: {e}") from e
        if p.keeps == "changes":
            continue
        differences[mode] = _difference(*outs)
        if differences[mode] > tol * max(1.0, outs[0].abs().max().item()):
            problems.append(f"{mode} mode: {_first_difference(before, after, nets, mode, inputs, seed, tol)}")
    shapes = tuple(tuple(out.shape) for out in outs)
    if shapes[0] != shapes[1]:
        problems.append(f"the output shape changes from {shapes[0]} to {shapes[1]}")
    if not torch.isfinite(outs[1]).all():
        problems.append(f"the rewritten graph's {mode}-mode output is not finite")

    try:
        again = p(after, **params)
    except RewriteError as e:
        again_text = f"refused ({e.message})"
    else:
        again_text = "no change" if again == after else "changes the graph again"
        if again != after:
            changed = next(n for n in (*again.order, *after.order) if n not in after or n not in again
                           or again[n] != after[n])
            problems.append(f"a second application changes the graph again (first at {changed!r})")
    counts = tuple(sum(t.numel() for t in net.parameters()) for net in nets)
    return CheckResult(p.name, p.keeps, tuple(problems), differences, counts, shapes, again_text)


def _compile(graph: Graph, **kwargs: Any) -> Network:
    """``compile`` without its warning about nodes that no output uses: the check runs them as the user's do."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return compile(graph, **kwargs)


def _random_network(graph: Graph) -> Network:
    """``compile(graph)`` with every norm's scale, shift and running statistics drawn at random."""
    net = _compile(graph)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                if module.affine:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_(0, 0.2)
                if module.track_running_stats:
                    module.running_mean.normal_(0, 0.2)
                    module.running_var.uniform_(0.5, 1.5)
    return net


@torch.no_grad()
def _run(net: nn.Module, mode: str, inputs: tuple[torch.Tensor, ...], seed: int) -> Any:
    net.train(mode == "train")
    torch.manual_seed(seed)
    return net(*inputs)


def _difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float("inf") if a.shape != b.shape else (a.double() - b.double()).abs().max().item()


def _first_difference(before: Graph, after: Graph, nets: tuple[Network, Network], mode: str,
                      inputs: tuple[torch.Tensor, ...], seed: int, tol: float) -> str:
    """Which node's output differs first, in ``after``'s order, among the nodes both graphs have."""
    common = [p for p in after.order if p in before]
    outs = [_run(_compile(g, outputs=common, modules=net), mode, inputs, seed) for g, net in zip((before, after), nets)]
    for path in common:
        a, b = outs[0][path], outs[1][path]
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape:
            d = _difference(a, b)
            if d > tol * max(1.0, a.abs().max().item()):
                made = [i for i in after[path].inputs if i not in before and i not in after.inputs]
                reads = f" (it reads {made[0]!r}, which the pass made)" if made else ""
                return f"the output of {path!r} differs by {d:.3g}{reads}"
    return f"the output differs by {_difference(*(_run(n, mode, inputs, seed) for n in nets)):.3g}"
