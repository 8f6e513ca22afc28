"""The rule language: edit primitives, match, rule, explain, pass order, optional params and notes."""

import argparse
import warnings
from pathlib import Path

import pytest
import torch

import graphnet
from graphnet import ANY, SpecError, any_of, bound, build, compile, explain, match, pat, rule
from graphnet.cli import main, tricks
from graphnet.cli.args import parse_rewrite
from graphnet.ops import add, batch_norm, conv, flatten, identity, linear, max_pool, mul, relu
from graphnet.rewrites import (PASSES, NoMatchError, Pass, PassError, PassNote, RewriteError, register_pass,
                               rewrite)
from graphnet.rewrites.freeze_bn import freeze_bn_scale

from test_cli_train import archive, cache  # noqa: F401 -- fixtures: a small image archive, a temporary cache

SPECS = Path(__file__).resolve().parents[1] / "specs"


def resnet9(width_mult=0.125):
    return build(graphnet.load_spec(SPECS / "resnet9.py", width_mult=width_mult))


def vgg(c=8):
    """A user's VGG-like net: conv -> relu -> pool blocks, no norm, no output scale."""
    def block(c_in, c_out):
        return {"conv": conv(c_in, c_out, bias=True), "relu": relu(), "pool": max_pool(2)}
    return {"layer1": block(3, c), "layer2": block(c, 2 * c), "pool": max_pool(8), "flatten": flatten(),
            "linear": linear(2 * c, 10)}


def relus(n):
    """conv -> relu -> relu -> ... (n ReLUs), back to back."""
    return build({"conv": conv(3, 4), **{f"r{i}": relu() for i in range(n)}})


# -- edit primitives -------------------------------------------------------------------------

def test_replace_uses_repoints_all_or_chosen_consumers():
    g = build({"a": relu(), "b": relu(), "c": add(inputs=["a", "a"]), "d": relu(inputs=["a"])})
    out = g.replace_uses("a", "b")
    assert out["c"].inputs == ("b", "b") and out["d"].inputs == ("b",)
    assert out["b"].inputs == ("a",)  # `new` itself keeps reading `old`
    out = g.replace_uses("a", "b", consumers=["d"])
    assert out["c"].inputs == ("a", "a") and out["d"].inputs == ("b",)
    with pytest.raises(SpecError, match="'b' does not read 'c'"):
        g.replace_uses("c", "d", consumers=["b"])
    with pytest.raises(SpecError, match="no such node"):
        g.replace_uses("a", "nowhere")


def test_a_one_node_op_change_merges_params_or_gives_new_ones():
    def one_node(old, new):
        return rule({"n": old}, {"n": new}, name=f"{old}_to", doc="A one-node change.\n\nA test.")
    g = resnet9()
    out = rewrite(g, [one_node("batch_norm", bound("n").changed(op="ghost_batch_norm", num_splits=2)),
                      one_node("relu", ("celu", {"alpha": 0.5}))])
    assert out.find(op="ghost_batch_norm") == g.find(op="batch_norm")
    assert dict(out["prep/bn"].params) == {**g["prep/bn"].params, "num_splits": 2}
    assert all(dict(out[p].params) == {"alpha": 0.5} for p in g.find(op="relu"))
    assert rewrite(g, [one_node("gelu", bound("n").changed(op="relu"))], strict=False) == g


# -- match -----------------------------------------------------------------------------------

CHAIN = {"conv": "conv", "norm": any_of("batch_norm", "ghost_batch_norm"), "act": any_of("relu", "celu"),
         "pool": "max_pool"}


def test_match_binds_names_to_paths_in_graph_order():
    found = match(resnet9(), CHAIN)
    assert [dict(m) for m in found] == [
        {"conv": f"{x}/conv", "norm": f"{x}/bn", "act": f"{x}/relu", "pool": f"{x}/pool"}
        for x in ("layer1", "layer2", "layer3")]
    assert found[0].node("pool").op == "max_pool"


def test_match_wildcards_shared_nodes_and_small_dags():
    g = resnet9()
    assert len(match(g, {"x": ANY, "pool": any_of("max_pool", "adaptive_max_pool")})) == 4  # the global pool too
    residual = {"in": "identity", "conv": "conv", "norm": "batch_norm", "act": "relu",
                "conv2": "conv", "norm2": "batch_norm", "act2": "relu", "add": pat("add", inputs=["in", "act2"])}
    assert [m["add"] for m in match(g, residual)] == ["layer1/residual/add", "layer3/residual/add"]
    # a free input name binds whatever node is there
    branch = {"conv": "conv", "norm": "batch_norm", "act": "relu", "add": pat("add", inputs=["skip", "act"])}
    assert [(m["skip"], m["conv"]) for m in match(g, branch)] == [
        ("layer1/residual/in", "layer1/residual/res2/conv"), ("layer3/residual/in", "layer3/residual/res2/conv")]


def test_interior_nodes_must_feed_only_the_match():
    g = build({"conv": conv(3, 4), "relu": relu(), "pool": max_pool(2), "side": relu(inputs=["relu"])})
    assert match(g, {"relu": "relu", "pool": "max_pool"}) == []
    assert len(match(g, {"relu": pat("relu", shared=True), "pool": "max_pool"})) == 1
    assert explain(g, {"relu": "relu", "pool": "max_pool"})[0].reason == "also feeds 'side', outside the pattern"


def test_matches_do_not_overlap():
    assert [dict(m) for m in match(relus(3), {"a": "relu", "b": "relu"})] == [{"a": "r0", "b": "r1"}]


# -- the two cases torch.fx's replace_pattern gets wrong ---------------------------------------

def test_literal_params_match_by_value_with_the_ops_defaults():
    """pytorch #68393: a pattern with a literal must match that literal, not any value, and a
    replacement's literals must be kept."""
    g = build({"conv": conv(3, 4), "relu": relu(), "p2": max_pool(), "p4": max_pool(4), "scale": mul(0.125)})
    assert [m["p"] for m in match(g, {"p": pat("max_pool", {"kernel_size": 2})})] == ["p2"]  # default 2
    assert [m["p"] for m in match(g, {"p": pat("max_pool", {"kernel_size": lambda k: k > 2})})] == ["p4"]
    assert match(g, {"s": pat("mul", {"weight": 0.5})}) == []
    halve = rule({"s": pat("mul", {"weight": 0.125})}, {"s": ("mul", {"weight": 0.0625})}, name="halve",
                 doc="Halve the 0.125 output scale.\n\nA test.")
    out = halve(g)
    assert dict(out["scale"].params) == {"weight": 0.0625}
    with pytest.raises(NoMatchError, match="'halve': found no 'mul' node; nearest: scale: weight=0.0625, wanted 0.125"):
        halve(out)


def test_back_to_back_matches_each_read_the_one_before():
    """pytorch #159613: where one match's output is the next match's input, each replacement
    must read the replaced node, not the removed one."""
    g = relus(4)
    fuse = rule({"a": "relu", "b": "relu"}, {"fused": ("celu", {"alpha": 1.0})}, name="fuse",
                doc="Two ReLUs as one CELU.\n\nA test.")
    out = fuse(g)
    assert [(p, out[p].op, out[p].inputs) for p in out] == [
        ("conv", "conv", ("input",)), ("fused", "celu", ("conv",)), ("fused_1", "celu", ("fused",))]
    x = torch.randn(2, 3, 5, 5)
    torch.manual_seed(0)
    before, after = compile(g), compile(out)
    after.load_state_dict(before.state_dict())
    assert torch.allclose(after(x), torch.nn.functional.celu(torch.nn.functional.celu(before.conv(x))))


def test_back_to_back_pool_swaps_on_consecutive_blocks():
    spec = {"a": {"conv": conv(3, 4), "bn": batch_norm(4), "relu": relu(), "pool": max_pool(2)},
            "b": {"conv": conv(4, 4), "bn": batch_norm(4), "relu": relu(), "pool": max_pool(2)}}
    out = graphnet.rewrite(spec, ["pool_before_norm"])
    assert out["b/conv"].inputs == ("a/relu",) and out["b/pool"].inputs == ("b/conv",)
    assert out.output == "b/relu"


# -- rules -----------------------------------------------------------------------------------

def test_a_rule_keeps_paths_and_attrs_of_the_nodes_it_keeps():
    g = resnet9().replace("layer1/bn", attrs={"frozen": ["bias"]})
    out = PASSES["pool_before_norm"](g)
    assert sorted(out) == sorted(g) and out["layer1/bn"].attrs == {"frozen": ["bias"]}
    assert list(compile(out).state_dict()) == list(compile(g).state_dict())


def test_a_replacement_function_refers_to_bound_nodes_and_free_inputs():
    def double(m, factor: float = 2.0):
        """Scale each relu's input by ``factor``.\n\nA test."""
        return {"x2": ("mul", {"weight": factor}, ["src"]), "act": bound("act").changed(inputs=["x2"])}
    p = rule({"act": pat("relu", inputs=["src"])}, double, name="double")
    assert isinstance(p, Pass) and p.params_str() == "(factor=2.0)" and p.doc.startswith("Scale each relu")
    out = p(resnet9(), factor=3.0)
    assert out["prep/x2"].inputs == ("prep/bn",) and out["prep/relu"].inputs == ("prep/x2",)
    assert out["prep/x2"].params["weight"] == 3.0


def test_a_rule_registers_like_any_pass_and_its_errors_name_it():
    def nope(m):
        """Refuse.\n\nA test."""
        raise PassError("no reason")
    p = register_pass(rule({"a": "relu"}, nope, name="test_refuse"))
    try:
        assert PASSES["test_refuse"] is p
        with pytest.raises(RewriteError, match="^pass 'test_refuse': no reason$"):
            rewrite(resnet9(), ["test_refuse"])
    finally:
        del PASSES["test_refuse"]


def test_register_pass_returns_the_pass_and_names_its_plain_errors():
    @register_pass("test_plain")
    def plain(graph, n: int = 1):
        """Nothing.\n\nA test."""
        raise PassError("bad n")
    try:
        assert isinstance(plain, Pass) and plain.name == "test_plain"
        with pytest.raises(RewriteError, match="pass 'test_plain': bad n"):
            plain(resnet9())
    finally:
        del PASSES["test_plain"]


# -- explain ---------------------------------------------------------------------------------

def test_explain_says_which_node_broke_the_pattern_and_why():
    g = build(vgg())
    misses = explain(g, "pool_before_norm")
    assert str(misses[0]) == "layer1/relu: op relu, wanted batch_norm|ghost_batch_norm after conv"
    assert [m.path for m in misses] == ["layer1/relu", "layer2/relu"]
    assert [str(m) for m in explain(g, {"n": "batch_norm"})] == ["no node has op batch_norm"]
    with pytest.raises(RewriteError, match="hand-written pass"):
        explain(g, "freeze_bn_scale")


def test_a_rule_that_matches_nothing_shows_the_nearest_miss():
    with pytest.raises(NoMatchError, match="found no conv -> .* chain; nearest: layer1/relu: op relu, wanted"):
        rewrite(vgg(), ["pool_before_norm"])


def tricks_command(*argv):
    parser = argparse.ArgumentParser()
    tricks.add_parsers(parser.add_subparsers())
    args = parser.parse_args(["tricks", *argv])
    return args.run(args)


def test_tricks_explain_prints_matches_and_near_misses(tmp_path, capsys):
    spec = tmp_path / "vgg.json"
    spec.write_text(graphnet.to_json(vgg()))
    assert tricks_command("--explain", "pool_before_norm", str(spec)) == 0
    out = capsys.readouterr().out
    assert f"matches in {spec}: none" in out
    assert "  layer1/relu: op relu, wanted batch_norm|ghost_batch_norm after conv" in out
    assert tricks_command("--explain", "pool_before_norm", str(SPECS / "resnet9.py")) == 0
    assert "layer1/conv -> layer1/bn -> layer1/relu -> layer1/pool" in capsys.readouterr().out


# -- pass order ------------------------------------------------------------------------------

def test_rewrite_refuses_a_pass_before_one_it_must_follow(capsys):
    assert PASSES["freeze_bn_scale"].after == ("celu",)
    assert tricks_command("freeze_bn_scale") == 0
    assert "[applies to the net graph; after celu where both apply; keeps: changes (" in capsys.readouterr().out
    with pytest.raises(RewriteError, match="'freeze_bn_scale': must come after 'celu'"):
        rewrite(resnet9(), ["freeze_bn_scale", "ghost_bn", "celu"])
    rewrite(resnet9(), ["celu", "freeze_bn_scale"])
    with pytest.warns(PassNote, match="no 'celu' node"):
        rewrite(resnet9(), ["freeze_bn_scale"])  # without celu at all: fine


# -- optional params -------------------------------------------------------------------------

def test_freeze_bn_scale_optional_parts_take_none_and_missing_parts_are_noted():
    g = build({"conv": conv(3, 4), "bn": batch_norm(4), "act": ("celu", {"alpha": 0.1})})
    with pytest.warns(PassNote, match="pass 'freeze_bn_scale': no 'mul' node to set to final_scale"):
        out = freeze_bn_scale(g)
    assert out["bn"].params["weight_init"] == 1.0 and out["act"].params["alpha"] == pytest.approx(0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = freeze_bn_scale(g, act_alpha_scale=None, bias_lr_mult=None, bias_wd_mult=None, final_scale=None)
    assert dict(out["bn"].attrs) == {"frozen": ["weight"]} and out["act"] == g["act"]


def test_cli_none_is_none():
    assert parse_rewrite("freeze_bn_scale:final_scale=none,weight=0.5") == (
        "freeze_bn_scale", {"final_scale": None, "weight": 0.5})
    assert parse_rewrite("x:a=None")[1] == {"a": None}


def test_cli_prints_a_note_in_one_line(tmp_path, capsys):
    spec = tmp_path / "vgg.json"
    spec.write_text(graphnet.to_json({"conv": conv(3, 4), "bn": batch_norm(4), "relu": relu()}))
    assert main(["render", str(spec), "-o", str(tmp_path / "v.dot"), "--rewrite", "freeze_bn_scale"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["graphnet render: note: pass 'freeze_bn_scale': no 'celu' node to scale by act_alpha_scale; "
                   "left the activations alone",
                   "graphnet render: note: pass 'freeze_bn_scale': no 'mul' node to set to final_scale; left the "
                   "output scale alone (final_scale=None says so)"]
    assert main(["render", str(spec), "-o", str(tmp_path / "v.dot"),
                 "--rewrite", "freeze_bn_scale:final_scale=none,act_alpha_scale=none"]) == 0
    assert capsys.readouterr().err == ""


# -- a recipe's passes on a user's spec ------------------------------------------------------

def test_a_recipe_pass_that_finds_nothing_says_how_to_leave_it_out():
    from graphnet.train import get_recipe, make_setup
    with pytest.raises(NoMatchError) as e:
        make_setup(build(vgg()), get_recipe("moved_max_pool"))
    message = str(e.value)
    assert "\n" not in message and message.startswith("pass 'pool_before_norm': found no conv")
    assert "nearest: layer1/relu: op relu" in message
    assert message.endswith("leave it out with --without pool_before_norm, or use --recipe baseline")


def test_train_on_a_users_spec_without_the_recipes_chain_stops_in_one_line(archive, tmp_path, capsys):
    spec = tmp_path / "vgg.json"
    spec.write_text(graphnet.to_json(vgg()))
    argv = ["train", str(spec), "--recipe", "moved_max_pool", "--data", str(archive), "--epochs", "1",
            "--batch-size", "32", "--device", "cpu", "--out", str(tmp_path / "run")]
    assert main(argv) == 1
    err = capsys.readouterr().err.splitlines()[-1]  # after the data set's progress line, until train checks first
    assert err == ("graphnet train: error: pass 'pool_before_norm': found no conv -> batch_norm|ghost_batch_norm -> "
                   "relu|celu|gelu -> max_pool chain; nearest: layer1/relu: op relu, wanted "
                   "batch_norm|ghost_batch_norm after conv; leave it out with --without pool_before_norm, or use "
                   "--recipe baseline")
    assert not (tmp_path / "run").exists()


def test_render_with_a_pass_that_finds_nothing_is_one_line(tmp_path, capsys):
    spec = tmp_path / "vgg.json"
    spec.write_text(graphnet.to_json(vgg()))
    assert main(["render", str(spec), "--rewrite", "pool_before_norm", "-o", str(tmp_path / "v.dot")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nearest: layer1/relu" in err and "drop --rewrite pool_before_norm" in err


def test_train_without_an_unknown_pass_is_an_error(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--without", "gost_bn", "--data", "nowhere", "--device", "cpu"])
    assert "argument --without: pass 'gost_bn': no such pass; did you mean 'ghost_bn'?" in capsys.readouterr().err


# -- docs ------------------------------------------------------------------------------------

def test_the_rules_page_runs():
    import re
    text = (Path(__file__).resolve().parents[1] / "docs" / "rules.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 4
    saved = dict(PASSES)
    try:
        namespace: dict = {}
        for block in blocks:
            exec(block, namespace)  # noqa: S102 -- our own docs
        assert namespace["after"]["residual/add"].params["wb"] == 0.2
    finally:
        PASSES.clear()
        PASSES.update(saved)


# -- node tests and no-op replacements ---------------------------------------------------------

def test_a_pattern_node_where_tests_the_whole_node_and_its_misses_say_so():
    def biased(node):
        return node.params.get("bias", False)
    g = build(vgg())
    assert [m["c"] for m in match(g, {"c": pat("conv", where=biased)})] == ["layer1/conv", "layer2/conv"]
    assert match(resnet9(), {"c": pat("conv", where=biased)}) == []
    assert str(explain(resnet9(), {"c": pat("conv", where=biased)})[0]) == "prep/conv: fails the pattern's test (biased)"


def test_a_rule_whose_replacement_changes_nothing_says_already_applied():
    def keep(m):
        """Keep every relu.\n\nA test."""
        return {"act": bound("act")}
    p = rule({"act": "relu"}, keep, name="test_keep")
    with pytest.raises(RewriteError, match="found no 'relu' node; already applied \\(see 'prep/relu', "):
        p(resnet9())


# -- the spec's node form, commutative inputs, replacements that return None, attrs ----------

def test_a_pattern_node_may_be_written_as_a_spec_node():
    g = resnet9()
    assert match(g, {"n": ("batch_norm", {})}) == match(g, {"n": "batch_norm"}) != []
    one_by_one = build({"a": conv(3, 4), "b": conv(4, 4, 1), "c": conv(4, 4, 3), "d": ("conv", {"c_in": 4, "c_out": 4,
                                                                                              "kernel_size": 5})})
    assert [m["c"] for m in match(one_by_one, {"c": ("conv", {"kernel_size": 3})})] == ["a", "c"]  # 3: the default
    residual = {"res": "relu", "sum": ("add", {}, ["in", "res"])}
    assert [dict(m) for m in match(g, residual)] == [
        {"res": f"{x}/residual/res2/relu", "sum": f"{x}/residual/add", "in": f"{x}/residual/in"}
        for x in ("layer1", "layer3")]
    assert match(g, residual) == match(g, {"res": "relu", "sum": pat("add", inputs=["in", "res"])})
    assert str(explain(g, {"c": ("conv", {"kernel_size": 1})})[0]) == "prep/conv: kernel_size=3, wanted 1"
    with pytest.raises(PassError, match="pattern node 'c': an op name, any_of.*, not \\('conv',\\)"):
        match(g, {"c": ("conv",)})


def test_commutative_inputs_are_opt_in():
    g = build({"conv": conv(3, 4), "act": relu(), "sum": add(inputs=["act", "conv"])})
    in_order = {"act": "relu", "sum": pat("add", inputs=["skip", "act"])}
    assert match(g, in_order) == []  # the add reads act first, the pattern second
    assert str(explain(g, in_order)[0]) == "sum: reads 'conv' where the pattern has act ('act')"
    either = {"act": "relu", "sum": pat("add", inputs=["skip", "act"], commutative=True)}
    assert [dict(m) for m in match(g, either)] == [{"act": "act", "sum": "sum", "skip": "conv"}]
    assert [dict(m) for m in match(g, {"c": "conv", "a": "relu", "s": pat("add", inputs=["c", "a"])})] == []
    weigh = rule(either, {"act": bound("act"), "sum": ("add_weighted", {"wa": 1.0, "wb": 0.5}, ["skip", "act"])},
                 name="weigh", doc="Weigh the branch.\n\nA test.")
    assert weigh(g)["sum"].inputs == ("conv", "act")  # the replacement reads the names, in its own order


def test_a_replacement_that_returns_none_leaves_that_match_alone():
    def first_layer_only(m, alpha: float = 0.5):
        """CELU for the ReLUs of layer1 only.\n\nA test."""
        if not m["act"].startswith("layer1/"):
            return None
        return {"act": bound("act").changed(op="celu", alpha=alpha)}
    g = resnet9()
    p = rule({"act": "relu"}, first_layer_only, name="test_first_layer")
    out = p(g)
    assert out.find(op="celu") == [r for r in g.find(op="relu") if r.startswith("layer1/")] != []
    assert all(out[r] == g[r] for r in g.find(op="relu") if not r.startswith("layer1/"))
    nothing = rule({"act": "relu"}, lambda m: None, name="test_nothing", doc="Nothing.\n\nA test.")
    with pytest.raises(NoMatchError, match="found no 'relu' node; already applied \\(see 'prep/relu', "):
        nothing(g)


def test_a_one_node_change_merges_params_and_attrs_over_the_nodes():
    g = resnet9().replace("prep/bn", attrs={"frozen": ["bias"], "lr_mult": {"weight": 2.0}})
    hint = rule({"n": "batch_norm"}, {"n": bound("n").changed(attrs={"lr_mult": {"bias": 4.0}}, eps=1e-3)},
                name="hint", doc="Hint the norms.\n\nA test.")
    out = hint(g)
    assert dict(out["prep/bn"].attrs) == {"frozen": ["bias"], "lr_mult": {"bias": 4.0}}
    assert dict(out["prep/bn"].params) == {**g["prep/bn"].params, "eps": 1e-3}
    assert dict(out["layer1/bn"].attrs) == {"lr_mult": {"bias": 4.0}}
