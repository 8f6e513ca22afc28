"""The spec language: node constructors, reference resolution, JSON, loading."""

import json

import pytest

import graphnet
from graphnet.ops import add, concat, conv, identity, linear, mul, relu
from graphnet.spec import from_json, relative_ref, to_json
from graphnet.spec_source import load_spec


def test_constructors_give_plain_tuples_with_only_given_params():
    assert conv(3, 64) == ("conv", {"c_in": 3, "c_out": 64})
    assert conv(3, 64, kernel_size=1) == ("conv", {"c_in": 3, "c_out": 64, "kernel_size": 1})
    assert add(inputs=["a", "b"]) == ("add", {}, ["a", "b"])
    assert relu(inputs="x") == ("relu", {}, ["x"])


def test_default_input_is_the_previous_node_across_namespaces():
    g = graphnet.build({"a": relu(), "ns": {"b": relu(), "c": relu()}, "d": relu()})
    assert g.predecessors("a") == ("input",)
    assert g.predecessors("ns/b") == ("a",)
    assert g.predecessors("ns/c") == ("ns/b",)
    assert g.predecessors("d") == ("ns/c",)


def test_references_relative_parent_absolute_namespace_and_graph_input():
    spec = {
        "prep": {"act": relu()},
        "block": {
            "in": identity(),
            "branch": {"x": relu(), "up": relu(inputs="../in"), "abs": relu(inputs="prep/act")},
            "sum": add(inputs=["in", "branch"]),  # a namespace means its last node
            "raw": relu(inputs="input"),
            "rooted": relu(inputs="/prep/act"),
        },
    }
    g = graphnet.build(spec)
    assert g.predecessors("block/branch/up") == ("block/in",)
    assert g.predecessors("block/branch/abs") == ("prep/act",)
    assert g.predecessors("block/sum") == ("block/in", "block/branch/abs")
    assert g.predecessors("block/raw") == ("input",)
    assert g.predecessors("block/rooted") == ("prep/act",)


def test_relative_names_win_over_absolute_ones():
    g = graphnet.build({"x": relu(), "ns": {"x": relu(), "y": relu(inputs="x")}})
    assert g.predecessors("ns/y") == ("ns/x",)


def test_slash_keys_are_namespace_shorthand():
    g = graphnet.build({"a/b": relu(), "a/c": relu(inputs="b")})
    assert g.order == ("a/b", "a/c")
    assert g.predecessors("a/c") == ("a/b",)


def test_custom_graph_inputs():
    g = graphnet.build({"s": add(inputs=["x", "y"])}, inputs=("x", "y"))
    assert g.inputs == ("x", "y") and g.predecessors("s") == ("x", "y")


def test_relative_ref_is_the_inverse_of_resolution():
    assert relative_ref("layer1/residual", "layer1/residual/in") == "in"
    assert relative_ref("layer1/residual/res1", "layer1/pool") == "../../pool"
    assert relative_ref("", "prep/act") == "prep/act"


def test_json_round_trip_and_equality(resnet9_spec):
    text = to_json(resnet9_spec)
    assert from_json(text) == resnet9_spec
    assert json.loads(text)["prep"]["conv"] == ["conv", {"c_in": 3, "c_out": 64}]


def test_json_params_lists_come_back_as_tuples():
    spec = {"c": concat(inputs=["input", "input"], dim=1), "m": mul(0.5)}
    assert from_json(to_json(spec)) == spec


def test_json_never_executes_code(tmp_path):
    # an op that names a Python callable path is just an unknown op, not an import
    text = json.dumps({"x": ["os:system", {"command": "touch pwned"}]})
    with pytest.raises(graphnet.UnknownOpError):
        from_json(text)
    assert not (tmp_path / "pwned").exists()


def test_spec_prints_readably():
    spec = {"fc": linear(4, 2)}
    assert repr(spec) == "{'fc': ('linear', {'c_in': 4, 'c_out': 2})}"


def test_load_spec_from_file_module_and_json(tmp_path, resnet9_spec):
    assert load_spec("specs/resnet9.py") == resnet9_spec
    assert load_spec("specs/resnet9.py", width_mult=0.5)["prep"]["conv"] == conv(3, 32)
    assert load_spec("graphnet.losses:cross_entropy")["nll"][0] == "nll"
    path = tmp_path / "net.json"
    path.write_text(to_json(resnet9_spec))
    assert load_spec(path) == resnet9_spec


def test_load_spec_errors(tmp_path):
    with pytest.raises(graphnet.SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.py")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(graphnet.SpecError, match="neither `net` nor `build"):
        load_spec(empty)
    with pytest.raises(graphnet.SpecError, match="neither"):
        load_spec("spec.yaml")
    with pytest.raises(graphnet.SpecError, match="no module named 'no_such_module'"):
        load_spec("no_such_module.sub:net")
    (tmp_path / "broken.json").write_text('{"a": ["relu"')
    with pytest.raises(graphnet.SpecError, match="not a JSON spec"):
        load_spec(tmp_path / "broken.json")
    with pytest.raises(graphnet.SpecError, match="^a: a node must be"):
        graphnet.from_json('{"a": "relu"}')


def test_register_a_module_class_and_a_function():
    import torch
    from torch import nn

    @graphnet.register("scaled_tanh_test")
    def scaled_tanh(x, *, scale=1.0):
        """scale * tanh(x)"""
        return scale * torch.tanh(x)

    dropout = graphnet.register("dropout_test", nn.Dropout)
    spec = {"t": scaled_tanh(scale=2.0), "d": dropout(p=0.0)}
    net = graphnet.compile(graphnet.build(spec))
    x = torch.randn(3, 4)
    assert torch.allclose(net(x), 2 * torch.tanh(x))
    with pytest.raises(graphnet.ParamError, match="scael"):
        scaled_tanh(scael=2.0)
    # ops may also be named by their target in a spec
    assert graphnet.build({"d": (nn.Dropout, {"p": 0.1})})["d"].op == "dropout_test"


def test_load_spec_build_kwargs_the_spec_cannot_take(tmp_path):
    path = tmp_path / "fixed.py"
    path.write_text("from graphnet.ops import relu\n\ndef build():\n    return {'a': relu()}\n")
    with pytest.raises(graphnet.SpecError, match="cannot take .*width_mult"):
        load_spec(path, width_mult=0.5)
