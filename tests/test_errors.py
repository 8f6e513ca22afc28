"""Every error kind is a SpecError whose message names the node at fault."""

import pytest
import torch

import graphnet
from graphnet.ops import add, conv, linear, relu


def raises(kind, spec, match, **build_kwargs):
    with pytest.raises(kind, match=match) as info:
        graphnet.build(spec, **build_kwargs)
    assert isinstance(info.value, graphnet.SpecError)
    return info.value


def test_unknown_input_names_node_and_suggests():
    e = raises(graphnet.UnknownInputError, {"block": {"inp": relu(), "out": relu(inputs="in")}},
               r"^block/out: input 'in' is no node.*did you mean 'block/inp'")
    assert e.path == "block/out"


def test_climbing_above_the_root_is_unknown():
    raises(graphnet.UnknownInputError, {"a": relu(inputs="../../x")}, "^a: input '../../x'")


def test_cycle_names_the_nodes():
    e = raises(graphnet.CycleError, {"a": relu(inputs="b"), "b": relu(inputs="a")}, "cycle: a -> b -> a")
    assert e.path == "a"


def test_unknown_op():
    raises(graphnet.UnknownOpError, {"net": {"x": ("convolution", {})}}, r"^net/x: unknown op 'convolution'")


def test_bad_param_names_node():
    raises(graphnet.ParamError, {"stem": {"c": ("conv", {"c_in": 3, "c_out": 8, "kernal_size": 3})}},
           r"^stem/c: bad params for op conv\(.*kernal_size")


def test_missing_param():
    raises(graphnet.ParamError, {"fc": ("linear", {"c_in": 3})}, r"^fc: .*missing a required argument: 'c_out'")


def test_param_typo_fails_at_the_constructor():
    with pytest.raises(graphnet.ParamError, match="kernal_size"):
        conv(3, 8, kernal_size=3)


def test_wrong_number_of_inputs():
    raises(graphnet.ParamError, {"s": add()}, r"^s: op 'add' takes 2 input\(s\), got 1")


def test_duplicate_paths():
    raises(graphnet.DuplicatePathError, {"a/b": relu(), "a": {"b": relu()}}, "^a/b: two nodes have this path")
    raises(graphnet.DuplicatePathError, {"a": relu(), "a/b": relu()}, "^a: a node and a namespace")


def test_node_named_like_a_graph_input():
    raises(graphnet.DuplicatePathError, {"input": relu()}, "^input: two nodes")


def test_empty_namespace():
    raises(graphnet.EmptyNamespaceError, {"a": relu(), "block": {"res": {}}}, "^block/res: empty namespace")
    raises(graphnet.EmptyNamespaceError, {}, "^<root>: empty namespace")


def test_malformed_node_and_name():
    raises(graphnet.SpecError, {"a": "relu"}, "^a: a node must be")
    raises(graphnet.SpecError, {"a.b": relu()}, "bad name 'a.b'")


def test_shape_mismatch_at_first_forward_names_node_op_and_shapes():
    net = graphnet.compile(graphnet.build({"stem": {"conv": conv(3, 8)}, "fc": linear(16, 10)}))
    with pytest.raises(graphnet.ShapeError) as info:
        net(torch.randn(2, 3, 4, 4))
    e = info.value
    assert e.path == "fc"
    assert str(e).startswith("fc: op 'linear' failed on inputs of shape (2, 8, 4, 4)")


def test_first_forward_check_then_bare_code():
    net = graphnet.compile(graphnet.build({"fc": linear(4, 2)}))
    net(torch.randn(1, 4))
    assert net._checked
    with pytest.raises(RuntimeError) as info:  # later failures are torch's own
        net(torch.randn(1, 5))
    assert not isinstance(info.value, graphnet.ShapeError)


def test_an_edit_checks_the_nodes_it_makes():
    g = graphnet.build({"fc": ("linear", {"c_in": 3, "c_out": 2}), "act": ("relu", {})})
    with pytest.raises(graphnet.ParamError, match=r"^fc: bad params .*missing a required argument: 'c_out'"):
        g.replace("fc", params={"c_in": 3, "c_outt": 2})
    with pytest.raises(graphnet.ParamError, match=r"^act: op 'add' takes 2 input\(s\), got 1"):
        g.replace("act", op="add")
    assert g.replace("act", op="celu").splice(["act"], {"act": ("relu", {}, ["fc"])})["act"].op == "relu"
