"""The fx executor: straight-line code, outputs, and the nn.Module contract."""

import io

import pytest
import torch

import graphnet
from graphnet.ops import add, batch_norm, conv, identity, linear, relu


@pytest.fixture
def net(resnet9_spec):
    torch.manual_seed(0)
    return graphnet.compile(graphnet.build(resnet9_spec))


def test_code_is_one_line_per_node_and_identities_vanish(net, resnet9_spec):
    g = graphnet.build(resnet9_spec)
    body = [line for line in net.code.splitlines() if "=" in line and not line.strip().startswith("def")]
    assert len(body) == len(g) - len(g.find(op="identity")) + 1  # + the placeholder alias
    assert "for " not in net.code and "residual_in" not in net.code
    assert "self.layer1.residual.res1.conv(" in net.code


def test_submodules_and_state_dict_follow_paths(net):
    keys = list(net.state_dict())
    assert keys[0] == "prep.conv.weight"
    assert "layer3.residual.res2.bn.running_var" in keys
    assert sum(p.numel() for p in net.parameters()) == 6_573_120


def test_state_dict_round_trip(net, resnet9_spec):
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    other = graphnet.compile(graphnet.build(resnet9_spec))
    other.load_state_dict(torch.load(buffer))
    x = torch.randn(2, 3, 32, 32)
    net.eval(), other.eval()
    assert torch.equal(net(x), other(x))


def test_outputs_single_list_and_dict(net):
    x = torch.randn(2, 3, 32, 32)
    g = net.spec_graph
    with pytest.warns(UserWarning, match="no output uses still run: linear, logits"):
        features = graphnet.compile(g, outputs="flatten", modules=net)(x)
    assert features.shape == (2, 512)
    both = graphnet.compile(g, outputs=["flatten", "logits"], modules=net)(x)
    assert set(both) == {"flatten", "logits"} and torch.allclose(both["flatten"], features)
    with pytest.warns(UserWarning, match="no output uses"):
        named = graphnet.compile(g, outputs={"f": "flatten"}, modules=net)(x)
    assert torch.allclose(named["f"], features)
    with pytest.raises(graphnet.SpecError, match="^nope: output"):
        graphnet.compile(g, outputs="nope")


def test_shared_modules_share_weights(net):
    other = graphnet.compile(net.spec_graph, modules=net)
    assert other.prep.conv.weight is net.prep.conv.weight


def test_frozen_attr_turns_off_grad():
    g = graphnet.build({"c": conv(3, 4), "bn": ("batch_norm", {"c": 4}, None, {"frozen": ["weight"]})})
    net = graphnet.compile(g)
    assert not net.bn.weight.requires_grad and net.bn.bias.requires_grad


def test_channels_last_and_half(net):
    x = torch.randn(2, 3, 32, 32)
    net.eval()
    ref = net(x)
    net = net.to(memory_format=torch.channels_last)
    assert net.prep.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(net(x.to(memory_format=torch.channels_last)), ref, atol=1e-5)
    half = net.half()
    assert half.prep.conv.weight.dtype == torch.float16


def test_train_and_eval_modes_reach_batch_norm(net):
    net.eval()
    assert not net.prep.bn.training
    net.train()
    assert net.layer3.residual.res2.bn.training


def test_torch_compile_traces_the_whole_graph_in_one_piece(net):
    torch._dynamo.reset()
    x = torch.randn(2, 3, 32, 32)
    net(x)  # the first, checked forward
    explanation = torch._dynamo.explain(net)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(net, backend="aot_eager")
    net.eval()
    assert torch.allclose(compiled(x), net(x), atol=1e-5)


def test_deepcopy_keeps_spec_graph_and_weights(net):
    import copy
    twin = copy.deepcopy(net)
    assert twin.spec_graph is net.spec_graph
    assert torch.equal(twin.prep.conv.weight, net.prep.conv.weight)
    assert twin.prep.conv.weight is not net.prep.conv.weight


def test_deepcopy_of_a_ghost_bn_network_keeps_splits_and_stats():
    import copy
    spec = {"c": conv(3, 4), "bn": ("batch_norm", {"c": 4}), "r": relu()}
    net = graphnet.compile(graphnet.rewrite(graphnet.build(spec), [("ghost_bn", {"num_splits": 2})]))
    net(torch.randn(4, 3, 8, 8))
    twin = copy.deepcopy(net)
    assert twin.bn.num_splits == 2 and torch.equal(twin.bn.running_mean, net.bn.running_mean)
    x = torch.randn(4, 3, 8, 8)
    net.eval(), twin.eval()
    assert torch.equal(twin(x), net(x))


def test_whole_network_pickles_as_a_network(net):
    buffer = io.BytesIO()
    torch.save(net.eval(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert isinstance(loaded, graphnet.Network) and loaded.spec_graph == net.spec_graph
    assert not loaded.training
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), net(x))
    fresh = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    with pytest.raises(graphnet.ShapeError, match="prep/conv"):  # the node paths survive the re-trace
        fresh(torch.randn(2, 4, 32, 32))


def test_small_graph_matches_torch_by_hand():
    torch.manual_seed(0)
    spec = {"in": identity(), "c": conv(2, 2, kernel_size=1), "bn": batch_norm(2), "r": relu(),
            "s": add(inputs=["in", "r"]), "fc": ("flatten", {}), "out": linear(2 * 3 * 3, 1)}
    net = graphnet.compile(graphnet.build(spec)).eval()
    x = torch.randn(4, 2, 3, 3)
    h = x + torch.relu(net.bn(net.c(x)))
    assert torch.allclose(net(x), net.out(h.flatten(1)))


def test_torch_compile_of_a_fresh_network_compiles_once(resnet9_spec):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    fresh = graphnet.compile(graphnet.build(resnet9_spec)).eval()
    compiled = torch.compile(fresh, backend="aot_eager")
    x = torch.randn(2, 3, 32, 32)
    compiled(x)
    compiled(x)  # the eager first-call check is not traced, so nothing to recompile on
    assert counters["stats"]["unique_graphs"] == 1


@pytest.mark.parametrize("alpha", [None, 0.2])
def test_the_loss_graph_compiles_to_one_cross_entropy_call_equal_to_its_nodes(alpha):
    from graphnet.losses import LOSS_INPUTS, cross_entropy
    from graphnet.ops import get_op

    add_weighted_fn, neg_mean_fn, nll_fn = (get_op(name).target for name in ("add_weighted", "neg_mean", "nll"))

    graph = graphnet.build(cross_entropy(), inputs=LOSS_INPUTS)
    if alpha is not None:
        graph = graphnet.rewrite(graph, [("label_smoothing", {"alpha": alpha})])
    loss = graphnet.compile(graph)
    calls = [n for n in loss.graph.nodes if n.op in ("call_function", "call_module")]
    assert [n.target for n in calls] == [torch.nn.functional.cross_entropy]
    assert calls[0].kwargs["label_smoothing"] == (alpha or 0.0)
    assert len(graph.nodes) == (2 if alpha is None else 4)  # the graph keeps its nodes
    logits, target = torch.randn(8, 10, dtype=torch.float64), torch.arange(8) % 10
    log_probs = torch.log_softmax(logits, dim=1)  # the graph's nodes, one by one
    expected = nll_fn(log_probs, target)
    if alpha is not None:
        expected = add_weighted_fn(expected, neg_mean_fn(log_probs), wa=1 - alpha, wb=alpha)
    torch.testing.assert_close(loss(logits, target), expected)


def test_a_cross_entropy_whose_log_probs_are_read_elsewhere_compiles_node_by_node():
    from graphnet.losses import LOSS_INPUTS, cross_entropy

    graph = graphnet.build(cross_entropy(), inputs=LOSS_INPUTS)
    both = graphnet.compile(graph, outputs=["log_probs", "nll"])
    assert torch.nn.functional.cross_entropy not in [n.target for n in both.graph.nodes]
    logits, target = torch.randn(4, 10), torch.arange(4)
    out = both(logits, target)
    torch.testing.assert_close(out["nll"], torch.nn.functional.cross_entropy(logits, target, reduction="none"))
