"""Write a rewrite rule: scale each residual branch before its `add` (a pattern, a replacement, a pass).

Run: python examples/04_write_a_rule.py [OUT_DIR]      (default out/)
As a spec file it also registers the pass, so the command line can use it:
    graphnet render examples/04_write_a_rule.py --rewrite scale_residuals:scale=0.2 -o after.svg
"""

import sys
from pathlib import Path

import graphnet
from graphnet import bound
from graphnet.ops import add, batch_norm, conv, flatten, identity, linear, max_pool, relu


def conv_bn(c_in, c_out):
    return {"conv": conv(c_in, c_out), "bn": batch_norm(c_out), "relu": relu()}


# A small residual net: what `graphnet render` draws before and after the rule.
net = {"prep": conv_bn(3, 16),
       "residual": {"in": identity(), "res1": conv_bn(16, 16), "res2": conv_bn(16, 16),
                    "add": add(inputs=["in", "res2/relu"])},
       "pool": max_pool(32), "flatten": flatten(), "linear": linear(16, 10)}

# The pattern: an activation that feeds only an `add`, whose other input is any node ("skip").
PATTERN = {"branch": graphnet.any_of("relu", "celu"), "sum": ("add", {}, ["skip", "branch"])}


def scaled_sum(match, scale: float = 0.5):
    """Weight each residual branch by ``scale`` where it joins the skip connection.

    A smaller branch keeps the sum near the identity early in training, which lets deep
    residual nets train without warm-up (as SkipInit and Fixup do). ``scale`` is the weight.
    """
    return {"branch": bound("branch"),  # kept as it was: same path, op, params and attrs
            "sum": ("add_weighted", {"wa": 1.0, "wb": scale}, ["skip", "branch"])}


# It changes what the net computes, and says so (keeps="changes"; "exact" or "eval" would claim more).
scale_residuals = graphnet.register_pass(graphnet.rule(PATTERN, scaled_sum, name="scale_residuals", keeps="changes"))

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
    graph = graphnet.build(net)
    print([dict(m) for m in graphnet.match(graph, PATTERN)])
    # [{'branch': 'residual/res2/relu', 'sum': 'residual/add', 'skip': 'residual/in'}]
    after = graphnet.rewrite(graph, [("scale_residuals", {"scale": 0.2})])
    print(after["residual/add"])  # same path, so the checkpoint keys and the render stay readable
    for miss in graphnet.explain(after, PATTERN):  # the rule is done: the near misses say why not again
        print(miss)
    # residual/in: op identity, wanted add after branch       (prep/relu feeds the identity)
    # residual/res2/conv: op conv, wanted add after branch
    # residual/add: op add_weighted, wanted add after branch
    print(graphnet.check(graph, "scale_residuals"))  # the claim checked on random inputs (graphnet check)
    # scale_residuals (keeps changes): ok
    #   parameters 5,306 -> 5,306; output shape (2, 10) -> (2, 10)
    #   applied again: refused (found no pattern branch: relu|celu, sum: add; nearest: ...)
    for name, g in (("rule_before.svg", graph), ("rule_after.svg", after)):
        print("wrote", graphnet.render(g, out / name))
