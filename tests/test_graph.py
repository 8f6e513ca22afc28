"""Graph: build, order, queries and edits (each returning a new, validated Graph)."""

import networkx as nx
import pytest

import graphnet
from graphnet.ops import add, batch_norm, celu, conv, identity, max_pool, relu


def chain():
    return graphnet.build({"conv": conv(3, 8), "bn": batch_norm(8), "act": relu(), "pool": max_pool(2)})


def test_build_resnet9(resnet9_spec):
    g = graphnet.build(resnet9_spec)
    assert len(g) == 35
    assert g.order[:3] == ("prep/conv", "prep/bn", "prep/relu")
    assert g.output == "logits"
    assert g["layer1/residual/add"].inputs == ("layer1/residual/in", "layer1/residual/res2/relu")
    assert isinstance(g.nx, nx.DiGraph)
    assert g.nx.nodes["input"]["op"] == "input"
    assert g.nx.edges["layer1/residual/res2/relu", "layer1/residual/add"]["port"] == 1


def test_order_keeps_dict_order_where_edges_allow():
    # 'late' is written first but reads 'early', so it must run after it
    g = graphnet.build({"late": relu(inputs="early"), "early": relu(inputs="input"), "z": relu()})
    assert g.order == ("early", "late", "z")


def test_to_spec_round_trips(resnet9_spec):
    g = graphnet.build(resnet9_spec)
    assert g.to_spec() == resnet9_spec
    assert graphnet.build(g.to_spec()) == g


def test_find_by_op_pattern_and_predicate(resnet9_spec):
    g = graphnet.build(resnet9_spec)
    assert len(g.find(op="conv")) == 8
    assert g.find(pattern="layer*/pool") == ["layer1/pool", "layer2/pool", "layer3/pool"]
    assert g.find(op=("max_pool", "adaptive_max_pool", "flatten"), pattern="*") == [
        "layer1/pool", "layer2/pool", "layer3/pool", "pool", "flatten"]
    assert g.find(op="conv", where=lambda n: n.params["c_in"] == 512) == [
        "layer3/residual/res1/conv", "layer3/residual/res2/conv"]


def test_predecessors_and_successors(resnet9_spec):
    g = graphnet.build(resnet9_spec)
    assert g.successors("layer1/residual/in") == ("layer1/residual/res1/conv", "layer1/residual/add")
    assert g.successors("layer1/pool") == ("layer1/residual/in",)
    assert g.predecessors("prep/conv") == ("input",)


def test_edits_return_new_graphs_and_leave_the_old_one_alone():
    g = chain()
    g2 = g.replace("act", op="celu", params={"alpha": 0.3})
    assert g["act"].op == "relu" and g2["act"].op == "celu" and g2["act"].params == {"alpha": 0.3}
    assert g2["pool"].inputs == ("act",)


def test_node_views_are_read_only():
    g = chain()
    with pytest.raises(TypeError):
        g["conv"].params["c_out"] = 16  # type: ignore[index]


def test_insert_after_rewires_consumers():
    g = chain().insert_after("conv", "extra", relu())
    assert g.order == ("conv", "extra", "bn", "act", "pool")
    assert g["extra"].inputs == ("conv",) and g["bn"].inputs == ("extra",)


def test_insert_after_in_a_namespace_names_the_new_node_there(resnet9_spec):
    g = graphnet.build(resnet9_spec).insert_after("layer2/conv", "pool2", max_pool(2))
    assert g["layer2/pool2"].inputs == ("layer2/conv",) and g["layer2/bn"].inputs == ("layer2/pool2",)


def test_remove_rewires_consumers_to_the_input():
    g = chain().remove("bn")
    assert g.order == ("conv", "act", "pool") and g["act"].inputs == ("conv",)
    with pytest.raises(graphnet.SpecError, match="one input"):
        graphnet.build({"a": relu(), "s": add(inputs=["a", "input"])}).remove("s")


def test_swap_adjacent_nodes():
    g = chain().swap("act", "pool")
    assert g.order == ("conv", "bn", "pool", "act")
    assert g["pool"].inputs == ("bn",) and g["act"].inputs == ("pool",)
    g = g.swap("bn", "pool")
    assert g.order == ("conv", "pool", "bn", "act")


def test_swap_refuses_a_branching_chain():
    g = graphnet.build({"a": relu(), "b": relu(), "c": add(inputs=["a", "b"])})
    with pytest.raises(graphnet.SpecError, match="cannot swap"):
        g.swap("a", "b")


def test_add_a_node_with_explicit_inputs():
    g = chain().add("skip", add(inputs=["pool", "pool"]))
    assert g.output == "skip" and g["skip"].inputs == ("pool", "pool")
    g = chain().add("side", celu(alpha=0.5), after="conv")
    assert g.order == ("conv", "side", "bn", "act", "pool") and g["side"].inputs == ("conv",)


def test_attrs_survive_edits_and_spec_round_trip():
    spec = {"c": conv(3, 8), "bn": ("batch_norm", {"c": 8}, None, {"frozen": ["weight"], "lr_mult": {"bias": 64}})}
    g = graphnet.build(spec)
    assert g["bn"].attrs == {"frozen": ["weight"], "lr_mult": {"bias": 64}}
    g2 = g.insert_after("c", "act", relu())
    assert g2["bn"].attrs == g["bn"].attrs
    assert graphnet.build(g2.to_spec()) == g2
    assert graphnet.build(graphnet.from_json(graphnet.to_json(g2.to_spec()))) == g2


def test_to_spec_writes_inputs_only_where_needed():
    g = chain().swap("act", "pool")
    spec = g.to_spec()
    assert spec["pool"] == ("max_pool", {"kernel_size": 2})  # its input is the previous node: implicit
    g = graphnet.build({"in": identity(), "a": relu(), "b": add(inputs=["in", "a"])})
    assert g.to_spec()["b"] == ("add", {}, ["in", "a"])


def test_graphs_pickle_and_deepcopy(resnet9_spec):
    import copy
    import pickle
    g = graphnet.build(resnet9_spec)
    assert pickle.loads(pickle.dumps(g)) == g
    assert copy.deepcopy(g) is g  # immutable


def test_repr_names_the_counts(resnet9_spec):
    text = repr(graphnet.build(resnet9_spec))
    assert "35 nodes" in text and "conv×8" in text and "output='logits'" in text


def test_to_spec_reaches_a_shadowed_graph_input_absolutely():
    g = graphnet.build({"a": {"input": relu(), "x": relu(inputs="/input")}})
    assert g["a/x"].inputs == ("input",)
    assert g.to_spec()["a"]["x"] == ("relu", {}, ["/input"])
    assert graphnet.build(g.to_spec()) == g


def test_a_namespace_cannot_take_a_graph_inputs_name():
    with pytest.raises(graphnet.DuplicatePathError, match="input"):
        graphnet.build({"input": {"x": relu()}})


def test_to_spec_refuses_an_order_that_would_move_the_output():
    g = graphnet.build({"a": {"x": relu()}, "b": {"y": relu()}}).add("a/z", relu(inputs=["a/x"]), after="b/y")
    assert g.output == "a/z"  # a spec would put a/z beside a/x, before b/y, and b/y would become the output
    with pytest.raises(graphnet.SpecError, match="a/z"):
        g.to_spec()
