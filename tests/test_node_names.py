"""Any name the spec allows compiles; a name the compiled network cannot hold is a SpecError at build."""

import copy
import io
import keyword

import pytest
import torch
from torch import nn

import graphnet
from graphnet.ops import conv, relu
from graphnet.spec import MODULE_ATTRIBUTES, NETWORK_ATTRIBUTES

ODD_NAMES = ["1a", "a b", "a-b", 'a"b', "a'b", "a\\b", "a\nb", "é", "_", "__x"]


def spec_named(name: str) -> dict:
    """The name as a top-level node, a nested namespace and a node in it."""
    return {name: conv(3, 4), "blk": {name: {name: conv(4, 4)}, "act": relu()}}


@pytest.mark.parametrize("name", keyword.kwlist + keyword.softkwlist + ODD_NAMES)
def test_a_keyword_or_any_other_allowed_name_compiles_with_the_node_paths_as_keys(name):
    graph = graphnet.build(spec_named(name))
    net = graphnet.compile(graph)
    assert list(net.state_dict()) == [f"{name}.weight", f"blk.{name}.{name}.weight"]  # conv: no bias by default
    x = torch.randn(2, 3, 8, 8)
    first, second = net.node_module(name), net.node_module(f"blk/{name}/{name}")
    assert torch.equal(net(x), torch.relu(second(first(x))))
    assert torch.equal(copy.deepcopy(net)(x), net(x))
    buffer = io.BytesIO()
    torch.save(net, buffer)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert isinstance(loaded, graphnet.Network) and torch.equal(loaded(x), net(x))
    fresh = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    with pytest.raises(graphnet.ShapeError) as located:  # its first call finds the failing node by its path
        fresh(torch.randn(2, 5, 8, 8))
    assert located.value.path == name
    rows = graphnet.summary(graph, (1, 3, 8, 8)).rows
    assert [r.shape for r in rows] == [(1, 4, 8, 8)] * 3


def test_a_keyword_named_network_compiles_in_one_graph():
    net = graphnet.compile(graphnet.build(spec_named("in")))
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(torch.compile(net, backend="eager", fullgraph=True)(x), net(x))


@pytest.mark.parametrize("name", sorted(set(dir(nn.Module)) | set(dir(nn.Module()))))
def test_a_name_of_a_module_attribute_is_a_spec_error_at_build_naming_the_node(name):
    with pytest.raises(graphnet.SpecError, match="is an attribute of the compiled network") as top:
        graphnet.build({name: conv(3, 4)})
    assert top.value.path == name
    with pytest.raises(graphnet.SpecError, match="is an attribute of every torch.nn.Module") as nested:
        graphnet.build({"blk": {name: conv(3, 4)}})
    assert nested.value.path == f"blk/{name}"
    with pytest.raises(graphnet.SpecError) as namespace:
        graphnet.build({"blk": {name: {"c": conv(3, 4)}}})
    assert namespace.value.path == f"blk/{name}"
    with pytest.raises(KeyError):  # what the rule keeps away: torch refuses the name
        nn.Module().add_module(name, nn.Identity())


def test_an_edit_checks_the_names_it_adds():
    graph = graphnet.build({"c": conv(3, 4)})
    with pytest.raises(graphnet.SpecError, match="blk/forward: the name 'forward'"):
        graph.add("blk/forward", relu())
    with pytest.raises(graphnet.SpecError, match="training: the name 'training'"):
        graph.insert_after("c", "training", relu())


def test_a_name_of_the_network_alone_is_refused_only_at_the_top():
    for name in sorted(NETWORK_ATTRIBUTES - MODULE_ATTRIBUTES):
        with pytest.raises(graphnet.SpecError, match=f"{name}: the name"):
            graphnet.build({name: conv(3, 4)})
        net = graphnet.compile(graphnet.build({"blk": {name: conv(3, 4)}}))
        assert list(net.state_dict()) == [f"blk.{name}.weight"]


def test_the_refused_names_are_every_attribute_of_a_compiled_network():
    net = graphnet.compile(graphnet.build({"c": conv(3, 4), "blk": {"d": conv(4, 4)}}))
    marks = {n for n in dir(nn.Module) if n.startswith("___")}  # torch.compile marks nn.Module when first run
    assert set(dir(net)) - {"c", "blk"} - marks <= NETWORK_ATTRIBUTES
    assert set(dir(net.blk)) - {"d"} - marks <= MODULE_ATTRIBUTES
