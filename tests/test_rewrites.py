"""The pass registry, ``rewrite``, ``graphnet tricks``, and the pool, activation and loss passes."""

from pathlib import Path

import argparse

import pytest
import torch
import torch.nn.functional as F

import graphnet
from graphnet import SpecError, build, compile, load_spec
from graphnet.cli import tricks
from graphnet.losses import LOSS_INPUTS, cross_entropy
from graphnet.ops import dropout, linear
from graphnet.rewrites import FAMILIES, PASSES, NoMatchError, RewriteError, list_passes, rewrite, split_passes
from graphnet.rewrites.activations import celu, swap_activation
from graphnet.rewrites.loss import label_smoothing
from graphnet.rewrites.pools import pool_before_act, pool_before_norm
from graphnet.rewrites.tta import tta_flip

SPECS = Path(__file__).resolve().parents[1] / "specs"
POOLED = ("layer1", "layer2", "layer3")


def resnet9(width_mult=0.125):
    return build(load_spec(SPECS / "resnet9.py", width_mult=width_mult))


def loss_graph():
    return build(cross_entropy(), inputs=LOSS_INPUTS)


def unchanged_except(before, after, changed):
    """Every node of ``before`` not in ``changed`` is in ``after`` as it was."""
    return all(after[p] == before[p] for p in before if p not in changed)


# -- registry and rewrite --------------------------------------------------------------------

def test_registry_knows_each_pass_with_its_graph_params_and_doc():
    assert [p.name for p in list_passes()][:16] == [  # Page's, airbench's, inference (tests may register more)
        "pool_before_norm", "pool_before_act", "label_smoothing", "celu", "swap_activation", "ghost_bn",
        "freeze_bn_scale", "whiten_input", "tta_flip", "whiten_input_pm", "dirac_init", "bn_settings",
        "tta_translate", "fold_bn", "remove_dropout", "remove_unused"]
    assert [n for names in FAMILIES.values() for n in names] == [p.name for p in list_passes()][:16]
    assert {p.name for p in list_passes()[:16] if p.keeps == "exact"} == {"pool_before_act", "dirac_init",
                                                                         "remove_unused"}
    assert {p.name for p in list_passes()[:16] if p.keeps == "eval"} == {"ghost_bn", "fold_bn", "remove_dropout"}
    assert {p.name: p.applies_to for p in list_passes()[:9] if p.applies_to != "net"} == {
        "label_smoothing": "loss", "tta_flip": "eval"}
    assert list(PASSES["ghost_bn"].signature.parameters) == ["num_splits"]
    assert PASSES["celu"].params_str() == "(alpha=0.075)"
    assert PASSES["swap_activation"].params_str() == "(old='relu', new='celu', **params)"
    for p in list_passes():
        first, *body = p.doc.split("\n\n")
        assert "\n" not in first and body, f"{p.name}: first line says what, body says why"


def test_rewrite_takes_names_params_callables_and_spec_dicts():
    g = resnet9()
    scale = lambda graph: graph.replace("logits", params={"weight": 0.5})  # noqa: E731
    out = rewrite(g, ["pool_before_norm", ("celu", {"alpha": 0.1}), scale])
    assert out == scale(celu(pool_before_norm(g), alpha=0.1))
    assert rewrite(load_spec(SPECS / "resnet9.py", width_mult=0.125), ["celu"]) == celu(g)
    assert graphnet.rewrite is rewrite
    assert rewrite(g, []) == g


def test_unknown_pass_and_bad_params_are_rewrite_errors():
    with pytest.raises(RewriteError, match="'cleu': no such pass; did you mean 'celu'"):
        rewrite(resnet9(), ["cleu"])
    with pytest.raises(RewriteError, match=r"bad params .* celu\(alpha=0.075\)"):
        rewrite(resnet9(), [("celu", {"beta": 1})])
    with pytest.raises(RewriteError, match="'whiten_input': param patch='x' wants int >= 1 and odd"):
        rewrite(resnet9(), [("whiten_input", {"patch": "x"})])
    assert issubclass(RewriteError, SpecError)


@pytest.mark.parametrize("name, params, message", [
    ("whiten_input", {"patch": 2}, "param patch=2 wants int >= 1 and odd"),
    ("whiten_input", {"eps": 0}, "param eps=0 wants a finite float > 0"),
    ("whiten_input_pm", {"patch": 0}, "param patch=0 wants int >= 1"),
    ("whiten_input_pm", {"eps": -1.0}, "param eps=-1.0 wants a finite float > 0"),
    ("bn_settings", {"momentum": 1.5}, r"param momentum=1.5 wants a finite float in \(0, 1\]"),
    ("bn_settings", {"eps": 0.0}, "param eps=0.0 wants a finite float > 0"),
    ("ghost_bn", {"num_splits": 0}, "param num_splits=0 wants int >= 1"),
    ("label_smoothing", {"alpha": -0.1}, r"param alpha=-0.1 wants a finite float in \[0, 1\]"),
    ("tta_translate", {"shift": 0}, "param shift=0 wants int >= 1"),
    ("freeze_bn_scale", {"final_scale": "small"}, "param final_scale='small' wants a finite float | None"),
])
def test_pass_params_are_checked_by_the_ops_annotation_checker(name, params, message):
    """One line naming the pass and the param, worded as an op's param error; before the pass runs."""
    with pytest.raises(RewriteError, match=f"^pass '{name}': {message}$"):
        rewrite(resnet9(), [(name, params)])


def test_a_users_pass_params_are_checked_by_their_annotations():
    from typing import Annotated

    from graphnet.ops import Range
    from graphnet.rewrites import register_pass

    @register_pass("test_ranged")
    def ranged(graph, k: Annotated[int, Range(2, 8)] = 4, scale=1.0):
        """Nothing.\n\nA test."""
        return graph
    try:
        assert rewrite(resnet9(), [("test_ranged", {"k": 8, "scale": 2})]) == resnet9()
        with pytest.raises(RewriteError, match=r"^pass 'test_ranged': param k=9 wants int in \[2, 8\]$"):
            ranged(resnet9(), k=9)
        with pytest.raises(RewriteError, match="^pass 'test_ranged': param scale='2' wants a finite float$"):
            ranged(resnet9(), scale="2")  # unannotated: the type of its default
    finally:
        del PASSES["test_ranged"]


def test_a_pass_that_matches_nothing_raises_unless_not_strict():
    net = resnet9()
    with pytest.raises(NoMatchError, match="pass 'label_smoothing': found no 'nll' node"):
        rewrite(net, ["label_smoothing"])
    assert rewrite(net, ["label_smoothing", "celu"], strict=False) == celu(net)


def test_split_passes_by_the_graph_they_apply_to():
    mine = lambda graph: graph  # noqa: E731
    passes = ["celu", ("label_smoothing", {"alpha": 0.1}), "tta_flip", ("ghost_bn", {}), mine, tta_flip]
    assert split_passes(passes) == {"net": ["celu", ("ghost_bn", {}), mine],
                                    "loss": [("label_smoothing", {"alpha": 0.1})], "eval": ["tta_flip", tta_flip]}


def tricks_command(*argv):
    """``graphnet tricks ARGV`` parsed by the tricks module alone (other command groups may be mid-edit)."""
    parser = argparse.ArgumentParser()
    tricks.add_parsers(parser.add_subparsers())
    args = parser.parse_args(["tricks", *argv])
    return args.run(args)


def test_tricks_command_lists_passes_and_trainer_options(capsys):
    assert tricks_command() == 0
    out = capsys.readouterr().out
    for p in list_passes():
        assert f"{p.applies_to:<5} {p.keeps:<7} {p.name}{p.params_str()}" in out and p.doc.splitlines()[0] in out
    page, airbench = out.index(" Page's bag of tricks (2019):"), out.index(" airbench94 (Keller Jordan, 2024):")
    assert page < out.index("tta_flip()") < airbench < out.index("whiten_input_pm(") < out.index("Training-loop")
    for trick in ("gpu_preprocessing", "batch_augmentation", "ema"):
        assert trick in out
    assert out.count("(trainer option)") == 3
    assert tricks_command("ghost_bn") == 0
    assert "applies to the net graph" in capsys.readouterr().out
    with pytest.raises(RewriteError, match="no such pass"):
        tricks_command("nope")


# -- pools ---------------------------------------------------------------------------------

def test_pool_before_norm_moves_each_pool_to_after_its_conv():
    g = resnet9()
    out = pool_before_norm(g)
    for layer in POOLED:
        assert out[f"{layer}/pool"].inputs == (f"{layer}/conv",)
        assert out[f"{layer}/bn"].inputs == (f"{layer}/pool",)
        assert out[f"{layer}/relu"].inputs == (f"{layer}/bn",)
        assert out.successors(f"{layer}/relu") == g.successors(f"{layer}/pool")
    assert out["pool"] == g["pool"]  # the global pool follows no norm
    moved = {f"{layer}/{n}" for layer in POOLED for n in ("pool", "bn", "relu")}
    consumers = {c for layer in POOLED for c in g.successors(f"{layer}/pool")}
    assert unchanged_except(g, out, moved | consumers)
    assert sorted(out.order) == sorted(g.order)


def test_pool_before_norm_twice_says_already_applied():
    with pytest.raises(NoMatchError, match="already applied \\(see 'layer1/pool', 'layer2/pool', 'layer3/pool'\\)"):
        pool_before_norm(pool_before_norm(resnet9()))


@pytest.mark.parametrize("act", ["relu", "celu"])
def test_pool_before_act_is_exact_for_monotone_activations(act):
    g = resnet9() if act == "relu" else celu(resnet9())
    out = pool_before_act(g)
    for layer in POOLED:
        assert out[f"{layer}/pool"].inputs == (f"{layer}/bn",)
        assert out[f"{layer}/relu"].inputs == (f"{layer}/pool",)
    torch.manual_seed(0)
    before, after = compile(g), compile(out)
    after.load_state_dict(before.state_dict())
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(before(x), after(x))
    with pytest.raises(NoMatchError, match="pool_before_act.*already applied"):
        pool_before_act(out)


def test_pool_before_act_leaves_non_monotone_gelu_alone():
    with pytest.raises(NoMatchError, match="found no batch_norm\\|ghost_batch_norm -> relu\\|celu -> max_pool"):
        pool_before_act(swap_activation(resnet9(), new="gelu"))


# -- activations ---------------------------------------------------------------------------

def test_celu_replaces_every_relu_and_keeps_paths():
    g = resnet9()
    relus = g.find(op="relu")
    out = celu(g)
    assert len(relus) == 8 and out.find(op="celu") == relus and not out.find(op="relu")
    assert all(dict(out[p].params) == {"alpha": 0.075} and out[p].inputs == g[p].inputs for p in relus)
    assert unchanged_except(g, out, relus)
    with pytest.raises(NoMatchError, match="found no 'relu' node; already applied \\(see 'prep/relu', .* and 5 more"):
        celu(out)


def test_swap_activation_takes_any_registered_activation():
    out = swap_activation(resnet9(), old="relu", new="gelu")
    assert len(out.find(op="gelu")) == 8
    assert swap_activation(resnet9(), alpha=0.075) == celu(resnet9())
    with pytest.raises(SpecError, match="bad params for op celu"):
        swap_activation(resnet9(), new="celu", beta=1.0)


def test_swap_activation_keeps_attrs_and_says_where_it_is_done():
    g = resnet9().replace("prep/relu", attrs={"lr_mult": {"x": 2.0}})
    out = swap_activation(g, new="gelu")
    assert out["prep/relu"].op == "gelu" and dict(out["prep/relu"].attrs) == {"lr_mult": {"x": 2.0}}
    with pytest.raises(NoMatchError, match="^pass 'swap_activation': found no 'relu' node; already applied "
                                           "\\(see 'prep/relu', 'layer1/relu', "):
        swap_activation(out, new="gelu")
    with pytest.raises(NoMatchError, match="^pass 'swap_activation': found no 'relu' node$"):
        swap_activation(out, new="silu")


# -- label smoothing -----------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5])
def test_label_smoothing_equals_torch_cross_entropy(alpha):
    loss = compile(label_smoothing(loss_graph(), alpha=alpha))
    torch.manual_seed(0)
    logits, target = torch.randn(64, 10) * 3, torch.randint(0, 10, (64,))
    expected = F.cross_entropy(logits, target, label_smoothing=alpha, reduction="none")
    torch.testing.assert_close(loss(logits, target), expected, atol=1e-6, rtol=0)


def test_label_smoothing_structure_and_twice():
    g = loss_graph()
    out = label_smoothing(g)
    assert out.output == "smoothed"
    assert out["smoothed"].op == "add_weighted" and out["smoothed"].inputs == ("nll", "uniform")
    assert dict(out["smoothed"].params) == pytest.approx({"wa": 0.8, "wb": 0.2})
    assert out["uniform"].op == "neg_mean" and out["uniform"].inputs == ("log_probs",)
    assert unchanged_except(g, out, ())
    with pytest.raises(NoMatchError, match="found no 'nll' node; already applied \\(see 'uniform'\\)"):
        label_smoothing(out)
    with pytest.raises(RewriteError, match=r"param alpha=1.5 wants a finite float in \[0, 1\]"):
        label_smoothing(g, alpha=1.5)


def airbench_net():
    from graphnet.zoo.airbench94 import architecture
    return build(architecture(width_mult=0.125))


def resnet9_for_inference():
    """ResNet-9 with a dropout before the linear layer and a head that no output uses."""
    g = resnet9().insert_after("flatten", "drop", dropout(0.2))
    return g.add("aux", linear(g["linear"].params["c_in"], 10, inputs=["drop"]), after="drop")


@pytest.mark.parametrize("name", list(PASSES))
def test_every_pass_round_trips_through_to_spec_and_json(name):
    airbench = name in FAMILIES["airbench94 (Keller Jordan, 2024)"]
    inference = name in FAMILIES["inference (keep the function)"]
    base = (loss_graph() if PASSES[name].applies_to == "loss" else airbench_net() if airbench
            else resnet9_for_inference() if inference else resnet9())
    out = rewrite(base, [name])
    assert build(out.to_spec(), inputs=out.inputs) == out
    assert build(graphnet.from_json(graphnet.to_json(out.to_spec())), inputs=out.inputs) == out


def test_the_whole_recipe_round_trips_through_to_spec():
    import bag_of_tricks
    passes = split_passes(bag_of_tricks.PASSES)
    net = rewrite(resnet9(), passes["net"])
    for g in (net, rewrite(net, passes["eval"]), rewrite(loss_graph(), passes["loss"])):
        assert build(g.to_spec(), inputs=g.inputs) == g


def test_optional_number_param_takes_none(resnet9_spec):
    graph = graphnet.rewrite(resnet9_spec, ["celu", ("freeze_bn_scale", {"final_scale": None})])
    assert graph["logits"].params["weight"] == 0.125  # None keeps the output scale
    with pytest.raises(RewriteError, match="param alpha=None wants a finite float"):
        graphnet.rewrite(resnet9_spec, [("celu", {"alpha": None})])
