"""Pass contracts: every registered pass keeps what it declares, over the zoo and traced torchvision
networks (32×32 inputs, batch 2); fold_bn, remove_dropout and remove_unused; rewrite(..., state=)."""

import warnings

import pytest
import torch
import torchvision

import graphnet
from graphnet import build, compile
from graphnet.ops import conv, dropout, linear, relu
from graphnet.rewrites import PASSES, NoMatchError, RewriteError, bound, check, register_pass, rewrite, rule
from graphnet.zoo import airbench94, resnet9


@pytest.fixture(scope="module")
def nets():
    """The zoo at width 1/8 (and airbench94 before its passes), traced resnet18 and mobilenet_v2
    (10 classes), and ResNet-9 with a dropout and a head that no output uses (for the inference passes)."""
    torch.manual_seed(0)
    small = build(resnet9.build(width_mult=0.125))
    extra = small.insert_after("flatten", "drop", dropout(0.2))
    extra = extra.add("aux", linear(64, 10, inputs=["drop"]), after="drop")
    return {"resnet9": small, "airbench94": build(airbench94.build(width_mult=0.125)),
            "airbench94 architecture": build(airbench94.architecture(width_mult=0.125)),
            "resnet9+dropout+aux": extra,
            "resnet18": graphnet.from_module(torchvision.models.resnet18(num_classes=10)),
            "mobilenet_v2": graphnet.from_module(torchvision.models.mobilenet_v2(num_classes=10))}


def check_everywhere(nets, name):
    """The check's result on each net the pass applies to; a pass that applies nowhere fails."""
    results = {}
    for net_name, graph in nets.items():
        try:
            results[net_name] = check(graph, name)
        except RewriteError:  # does not apply here (no match, or a net it cannot rewrite)
            continue
    assert results, f"{name} applies to none of {', '.join(nets)}"
    return results


@pytest.mark.parametrize("name", sorted(PASSES))
def test_every_registered_pass_keeps_what_it_declares(nets, name):
    for net_name, result in check_everywhere(nets, name).items():
        assert result.ok, f"{net_name}: {result}"
        assert result.again.startswith(("refused", "no change"))
        compared = {"exact": {"eval", "train"}, "eval": {"eval"}, "changes": set()}[result.keeps]
        assert set(result.differences) == compared


def test_a_pass_the_user_registers_is_checked_and_a_false_claim_is_caught(nets):
    def _double_relu(match) -> dict:
        """Follow every ReLU by a doubling (for the test).

        Claims to keep the function, which it does not.
        """
        return {"act": bound("act"), "scale": ("mul", {"weight": 2.0})}

    liar = register_pass(rule({"act": "relu"}, _double_relu, name="test_double_relu", keeps="exact",
                              applied={"act": "relu", "scale": ("mul", {"weight": 2.0})}))
    honest = register_pass("test_identity_after_output", keeps="exact")(_identity_after_output)
    try:
        result = check(nets["resnet9"], "test_double_relu")
        assert result.problems[0].startswith("eval mode: the output of 'layer1/conv' differs by ")
        assert result.problems[0].endswith("(it reads 'prep/scale', which the pass made)")
        assert result.keeps == "exact" and liar.keeps == "exact"
        assert all(check(nets[net], honest).ok for net in ("resnet9", "mobilenet_v2"))
    finally:
        PASSES.pop("test_double_relu")
        PASSES.pop("test_identity_after_output")


def _identity_after_output(graph):
    """Follow the output by an identity node (for the test).

    Keeps the function exactly.
    """
    if graph[graph.output].op == "identity":
        raise graphnet.rewrites.no_match("output that is not an identity", [graph.output])
    return graph.add("test_identity", ("identity", {}, [graph.output]))


def test_register_pass_refuses_an_unknown_contract():
    with pytest.raises(ValueError, match="keeps must be one of"):
        register_pass("test_bad", keeps="mostly")


def test_a_state_map_left_out_is_named(nets):
    fold = PASSES["fold_bn"]
    no_map = graphnet.rewrites.Pass.of("test_fold_without_state", fold.fn, keeps="eval", doc=fold.doc)
    result = check(nets["resnet9"], no_map)
    assert result.problems[0] == "prep.conv.bias is not carried over (no node path or state map gives it)"
    assert result.problems[1].startswith("eval mode: the output of 'prep/conv' differs by ")


@pytest.mark.parametrize("net_name", ["resnet18", "mobilenet_v2"])
def test_fold_bn_is_eval_exact_with_the_state_carried(nets, net_name):
    graph = nets[net_name]
    network = compile(graph)
    with torch.no_grad():  # batch norms that do something in eval mode
        for m in network.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2), m.running_var.uniform_(0.5, 1.5), m.weight.uniform_(0.5, 1.5)
    folded, state = rewrite(graph, ["fold_bn", "remove_dropout"], strict=False, state=network.state_dict())
    assert not folded.find(op="batch_norm") and not folded.find(op="dropout")
    assert all(folded[p].params["bias"] for p in folded.find(op="conv"))
    inference = compile(folded)
    inference.load_state_dict(state)  # every key: nothing new to initialise
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(inference.eval()(x), network.eval()(x), atol=1e-5, rtol=1e-5)


def test_fold_bn_folds_ghost_batch_norm_with_its_mean_statistics():
    graph = rewrite(build(resnet9.build(width_mult=0.125)), ["ghost_bn"])
    result = check(graph, "fold_bn")
    assert result.ok, result
    assert not rewrite(graph, ["fold_bn"]).find(op="ghost_batch_norm")


def test_fold_bn_leaves_a_conv_that_feeds_more_than_its_norm():
    spec = {"conv": conv(3, 4), "bn": ("batch_norm", {"c": 4}), "side": relu(inputs=["conv"]),
            "out": ("add", {}, ["bn", "side"])}
    with pytest.raises(NoMatchError, match="also feeds 'side'"):
        rewrite(spec, ["fold_bn"])


def test_remove_unused_keeps_the_outputs_and_the_weights(nets):
    graph = nets["resnet9+dropout+aux"]
    with pytest.warns(UserWarning, match="aux"):
        compile(graph)
    out = rewrite(graph, ["remove_unused"])
    assert "aux" not in out and "drop" in out and out.output == "logits"
    kept = rewrite(graph, [("remove_unused", {"outputs": ["aux"]})])
    assert kept.output == "aux" and "logits" not in kept and "linear" not in kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left that no output uses
        compile(out)


def test_remove_dropout_is_a_rule_whose_empty_replacement_removes_the_node(nets):
    out = rewrite(nets["resnet9+dropout+aux"], ["remove_dropout"])
    assert "drop" not in out
    assert out["linear"].inputs == ("flatten",) and out["aux"].inputs == ("flatten",)


def test_rewrite_with_state_returns_the_state_for_the_new_graph(nets):
    graph = nets["resnet9"]
    network = compile(graph)
    out, state = rewrite(graph, ["ghost_bn", "whiten_input"], state=network.state_dict())
    assert state["prep.bn.running_mean"].shape == (16 * 8,)
    assert "prep.whiten.weight" not in state and "prep.conv.weight" not in state  # new, or a new shape
    new = compile(out)
    missing = new.load_state_dict(state, strict=False).missing_keys
    assert sorted(missing) == ["prep.conv.weight", "prep.whiten.weight"]
    assert rewrite(graph, ["celu"], state={})[1] == {}


def test_whiten_input_takes_a_fresh_path_where_whiten_is_taken(nets):
    graph = nets["airbench94"]  # its first conv is the node 'whiten'
    out = rewrite(graph, ["whiten_input"])
    assert out["whiten"].inputs == ("whiten_1",) and out["whiten_1"].params["c_out"] == 27


def test_graphnet_check_prints_the_result_and_fails_a_broken_contract(capsys):
    from graphnet.cli import main

    assert main(["check", "fold_bn", "graphnet.zoo.resnet9:build", "--width-mult", "0.125"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graphnet.zoo.resnet9:build: fold_bn (keeps eval): ok\n  eval: max output difference ")
    assert "applied again: refused (found no conv -> batch_norm|ghost_batch_norm chain" in out
    register_pass(rule({"act": "relu"}, {"act": ("celu", {})}, name="test_celu_claimed_eval", keeps="eval",
                       doc="Replace every ReLU by CELU (for the test).\n\nClaims to keep the eval function."))
    try:
        assert main(["check", "test_celu_claimed_eval", "graphnet.zoo.resnet9:build", "--width-mult", "0.125"]) == 1
        assert "FAILED: eval mode: the output of 'prep/relu' differs by" in capsys.readouterr().out
    finally:
        PASSES.pop("test_celu_claimed_eval")
    assert main(["check", "remove_dropout", "graphnet.zoo.resnet9:build"]) == 1
    assert capsys.readouterr().err == "graphnet check: error: pass 'remove_dropout': found no 'dropout' node\n"


def test_graphnet_tricks_shows_each_pass_contract(capsys):
    from graphnet.cli import main

    main(["tricks"])
    out = capsys.readouterr().out
    assert "  net   eval    fold_bn()\n" in out and "  net   exact   pool_before_act()\n" in out
    main(["tricks", "ghost_bn"])
    assert "keeps: eval (the same eval-mode function, weights carried over)]" in capsys.readouterr().out


def test_an_exact_claim_is_checked_in_train_mode_too(nets):
    drop_more = register_pass(rule({"drop": "dropout"}, lambda match: {"drop": bound("drop").changed(p=0.9)},
                                   name="test_drop_more", keeps="exact", applied={"drop": ("dropout", {"p": 0.9})},
                                   doc="Dropout 0.9 (for the test).\n\nNot exact."))
    try:
        result = check(nets["resnet9+dropout+aux"], drop_more)
        assert result.differences["eval"] == 0.0  # dropout is the identity in eval mode
        assert result.problems[0].startswith("train mode: the output of 'drop' differs by ")
    finally:
        PASSES.pop("test_drop_more")
    with pytest.raises(RewriteError, match="check takes a registered pass"):
        check(nets["resnet9"], lambda graph: graph)


def test_an_empty_replacement_needs_a_match_with_one_input():
    spec = {"a": relu(), "b": relu(inputs=["input"]), "sum": ("add", {}, ["a", "b"]), "out": relu()}
    drop_sums = rule({"sum": "add"}, {}, name="test_drop_sums", doc="Remove every add (for the test).\n\nNo.")
    with pytest.raises(RewriteError, match="an empty replacement removes the match, so its consumers read its "
                                           "input instead; 'sum' reads 2"):
        rewrite(spec, [drop_sums])


def test_a_batch_the_network_cannot_take_is_one_error_naming_the_pass(nets):
    ghost = rewrite(nets["resnet9"], ["ghost_bn"])
    with pytest.raises(RewriteError, match="pass 'pool_before_act': train mode on random inputs of 2×3×32×32: "
                                           "ghost batch norm: a batch of 2 does not split into 16"):
        check(ghost, "pool_before_act")
    assert check(ghost, "pool_before_act", batch=16).ok
