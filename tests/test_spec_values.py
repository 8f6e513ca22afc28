"""Spec values are checked when built, custom ops survive compile and JSON, unused nodes are reported."""

import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn

import graphnet
from graphnet.ops import conv, linear, relu


@pytest.mark.parametrize("node, message", [
    (("conv", {"c_in": "3", "c_out": 4}), "c: op conv: param c_in='3' wants int >= 1"),
    (("conv", {"c_in": 3, "c_out": -4}), "c: op conv: param c_out=-4 wants int >= 1"),
    (("conv", {"c_in": 3, "c_out": True}), "param c_out=True wants int >= 1"),
    (("conv", {"c_in": 3, "c_out": 4, "kernel_size": (3, 0)}), r"kernel_size=\(3, 0\) wants int >= 1 \| tuple"),
    (("batch_norm", {"c": 4, "eps": float("inf")}), "param eps=inf wants a finite float >= 0"),
    (("batch_norm", {"c": 4, "momentum": 2.0}), r"momentum=2.0 wants a finite float in \[0, 1\] \| None"),
    (("dropout", {"p": -0.1}), r"p=-0.1 wants a finite float in \[0, 1\]"),
    (("gelu", {"approximate": "fast"}), "approximate='fast' wants 'none' | 'tanh'"),
    (("conv", {"c_in": 3, "c_out": 4}, 3), "c: inputs must be a list of names, not 3"),
    (("conv", {"c_in": 3, "c_out": 4}, None, {"frozen": "weight"}), r"c: attr frozen='weight' wants list\[str\]"),
    (("conv", {"c_in": 3, "c_out": 4}, None, {"lr_mult": {"bias": "x"}}), r"attr lr_mult=\{'bias': 'x'\} wants"),
    (("conv", {"c_in": 3, "c_out": 4}, None, {"frozen_after": {"bias": "3"}}), r"attr frozen_after=\{'bias': '3'\} wants"),
])
def test_bad_values_are_spec_errors_naming_the_node(node, message):
    with pytest.raises(graphnet.SpecError, match=message):
        graphnet.build({"c": node})


def test_bad_values_fail_when_the_node_is_made():
    with pytest.raises(graphnet.ParamError, match="^op conv: param c_out=-4 wants int >= 1$"):
        conv(3, -4)


def test_out_of_range_json_numbers_fail_at_build():
    spec = graphnet.from_json('{"c": ["conv", {"c_in": 3, "c_out": 1e400}]}')
    with pytest.raises(graphnet.ParamError, match="c: op conv: param c_out=inf wants int >= 1"):
        graphnet.build(spec)


def test_unannotated_params_are_checked_against_their_defaults():
    @graphnet.register("scaled_tanh_values")
    def scaled_tanh(x, *, scale=1.0, mode="a", flag=False):
        return scale * torch.tanh(x)

    graphnet.build({"t": scaled_tanh(scale=2, mode="b", flag=True)})  # an int does for a float
    for params, message in [({"scale": "2"}, "scale='2' wants a finite float"),
                            ({"mode": 1}, "mode=1 wants str"), ({"flag": 1}, "flag=1 wants bool")]:
        with pytest.raises(graphnet.ParamError, match=message):
            graphnet.build({"t": ("scaled_tanh_values", params)})


def test_a_factory_refusing_its_params_is_a_param_error_naming_the_node():
    graph = graphnet.build({"c": conv(4, 6, groups=4)})  # each value is fine; together they are not
    with pytest.raises(graphnet.ParamError, match="c: op conv cannot be made with these params: .*divisible by groups"):
        graphnet.compile(graph)


def test_frozen_must_name_a_parameter():
    graph = graphnet.build({"c": ("conv", {"c_in": 3, "c_out": 4}, None, {"frozen": ["weights"]})})
    with pytest.raises(graphnet.ParamError, match="c: attr frozen names 'weights', which is no parameter of op conv"):
        graphnet.compile(graph)


class Sum(nn.Module):
    def forward(self, *xs):
        return sum(xs)


def test_a_module_without_its_own_init_compiles_and_runs():
    total = graphnet.register("sum_values", Sum, arity=None)
    assert total.params_str() == "()"
    graph = graphnet.build({"a": relu(), "b": relu(inputs="input"), "s": total(inputs=["a", "b", "input"])})
    x = torch.randn(2, 3)
    assert torch.allclose(graphnet.compile(graph)(x), 2 * x.relu() + x)
    with pytest.raises(graphnet.ParamError, match="s: bad params for op sum_values"):
        graphnet.build({"s": ("sum_values", {"args": ()})})


def two_heads():
    return graphnet.build({"body": linear(4, 8), "head1": linear(8, 2),
                           "head2": {"fc": linear(8, 3, inputs="../body"), "act": relu()}})


def test_unused_nodes_are_named_in_one_warning():
    with pytest.warns(UserWarning, match=r"compile: 1 node\(s\) that no output uses still run: head1 ") as caught:
        graphnet.compile(two_heads())  # the output is the last node, head2/act
    with pytest.warns(UserWarning, match=r"compile: 2 node\(s\) that no output uses still run: head2/fc, head2/act"):
        graphnet.compile(two_heads(), outputs="head1")
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = graphnet.compile(two_heads(), outputs=["head1", "head2/act"])
    out = net(torch.randn(5, 4))
    assert out["head1"].shape == (5, 2) and out["head2/act"].shape == (5, 3)


# -- ops from a user's module ----------------------------------------------------------------

USER_OPS = '''
import torch
import graphnet

@graphnet.register("user_swish")
def user_swish(x, *, beta: float = 1.0):
    return x * torch.sigmoid(beta * x)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_ops_values.py").write_text(textwrap.dedent(USER_OPS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    import user_ops_values
    return user_ops_values


def run(code, cwd):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_json_records_the_modules_of_user_ops(user_module, tmp_path):
    assert graphnet.get_op("user_swish").source == "user_ops_values"
    assert graphnet.get_op("conv").source == "graphnet.ops"
    spec = {"c": conv(3, 4), "s": ("user_swish", {"beta": 2.0})}
    text = graphnet.to_json(spec)
    assert '"imports": [\n  "user_ops_values"\n ]' in text
    assert graphnet.from_json(text) == spec  # the op is registered here already
    assert graphnet.to_json({"c": conv(3, 4)}).startswith('{\n "c"')  # no user ops: the plain spec
    (tmp_path / "spec.json").write_text(text)

    # A fresh process: nothing is imported unless asked.
    load = "import graphnet; spec = graphnet.from_json(open('spec.json').read(){}); print(sorted(spec))"
    refused = run(load.format(""), tmp_path)
    assert "UnknownOpError" in refused.stderr and "user_swish" in refused.stderr
    assert "the spec records its ops' modules: user_ops_values (import them, pass imports=True" in refused.stderr
    assert run(load.format(", imports=True"), tmp_path).stdout.strip() == "['c', 's']"
    cli = [sys.executable, "-m", "graphnet.cli", "summary", "spec.json"]
    no_import = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert no_import.returncode == 1 and "--import MODULE" in no_import.stderr
    imported = subprocess.run([*cli, "--import", "user_ops_values"], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert [line.split()[:2] for line in imported.stdout.splitlines() if line.startswith("s ")] == [["s", "user_swish"]]


def test_an_instance_is_not_json():
    held = graphnet.ops.instance(graphnet.ops.Held(nn.Tanh()))
    graph = graphnet.build({"t": held})
    assert torch.equal(graphnet.compile(graph)(torch.ones(2)), torch.tanh(torch.ones(2)))
    with pytest.raises(graphnet.SpecError, match=r"t: op instance: param module=<Tanh> is not plain data"):
        graphnet.to_json({"t": held})
