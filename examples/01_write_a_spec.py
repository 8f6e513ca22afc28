"""Write a network as a dict: nodes, namespaces, a residual branch; build it; round-trip it through JSON.

Run: python examples/01_write_a_spec.py
"""

from pprint import pprint

import graphnet
from graphnet.ops import add, batch_norm, conv, flatten, identity, linear, max_pool, relu


def conv_bn(c_in, c_out):
    """A namespace of three nodes; each reads the previous one."""
    return {"conv": conv(c_in, c_out), "bn": batch_norm(c_out), "relu": relu()}


spec = {
    "prep": conv_bn(3, 16),                  # the first node reads the graph input, 'input'
    "block": {
        "in": identity(),                    # a name for the block's input; emits no code
        "res1": conv_bn(16, 16),
        "res2": conv_bn(16, 16),
        "add": add(inputs=["in", "res2"]),   # the residual: a reference to a namespace means its last node
    },
    "pool": max_pool(32),
    "flatten": flatten(),
    "linear": linear(16, 10),
}

# A node is a plain tuple (op, params[, inputs]): the spec prints as it reads.
pprint(spec, sort_dicts=False)

graph = graphnet.build(spec)                 # resolves references, checks params, orders the nodes
print(graph)
print("add reads:", graph["block/add"].inputs)   # full paths: ('block/in', 'block/res2/relu')

# Specs are data: JSON out and back in gives the same spec and the same graph, no code executed.
text = graphnet.to_json(spec)
assert graphnet.from_json(text) == spec
assert graphnet.build(graphnet.from_json(text)) == graph
print(f"JSON round trip: {len(text)} characters, equal spec and graph")

# Mistakes name the node at fault.
try:
    graphnet.build({**spec, "linear": linear(16, 10, inputs="flaten")})
except graphnet.SpecError as e:
    print("error:", e)
