import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import graphnet
from graphnet.ops import batch_norm, conv, linear, max_pool, mul
from graphnet.render import RenderError, op_colour, op_label, render, to_dot, to_svg

render_module = importlib.import_module("graphnet.render")  # `graphnet.render` is the function
ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = ["prep", "layer1", "layer1/residual", "layer1/residual/res1", "layer2", "layer3", "layer3/residual"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="no system Graphviz `dot` on PATH")


@pytest.fixture
def graph(resnet9_spec):
    return graphnet.build(resnet9_spec)


def svg_edges_into(svg: str, path: str) -> int:
    return len(re.findall(rf"<title>[^<]*&#45;&gt;{re.escape(path)}</title>", svg))


def check_svg(svg: str) -> None:
    for ns in CLUSTERS:
        assert f"<title>cluster_{ns}</title>" in svg
    assert svg_edges_into(svg, "layer1/residual/add") == 2
    assert svg_edges_into(svg, "layer3/residual/add") == 2
    assert "conv 64→128" in svg


def test_dot_structure(graph):
    dot = to_dot(graph)
    layer1 = dot.get_subgraph("cluster_layer1")[0]
    residual = layer1.get_subgraph('"cluster_layer1/residual"')[0]  # nested, not at the top level
    assert residual.get_label() == "residual" and layer1.get_label() == "layer1"
    assert residual.get_subgraph('"cluster_layer1/residual/res1"')
    assert not dot.get_subgraph('"cluster_layer1/residual"')
    into_add = [e for e in dot.get_edges() if e.get_destination() == '"layer1/residual/add"']
    assert sorted(e.get_source() for e in into_add) == ['"layer1/residual/in"', '"layer1/residual/res2/relu"']
    assert len(dot.get_edges()) == sum(len(n.inputs) for n in graph.nodes)
    text = dot.to_string()
    assert re.search(r'"input" \[label=input, .*shape=invhouse', text)
    assert "conv 3→64" in text and "linear 512→10 bias=False" in text


def test_labels():
    g = graphnet.build({"c": conv(8, 16, kernel_size=1, stride=2), "bn": batch_norm(16, weight_init=0.25),
                        "max_pool": max_pool(4), "fc": linear(16, 10), "scale": mul(0.125)})
    labels = {n.path: op_label(n) for n in g.nodes}
    assert labels == {"c": "conv 8→16 kernel_size=1 stride=2", "bn": "batch_norm 16 weight_init=0.25",
                      "max_pool": "max_pool 4", "fc": "linear 16→10", "scale": "mul 0.125"}
    text = to_dot(g).to_string()
    assert 'label="c\\nconv 8→16' in text and 'label="max_pool 4"' in text  # the name only where it says more


def test_shapes_label_edges(graph):
    shapes = graphnet.summary(graph, (1, 3, 32, 32)).shapes
    text = to_dot(graph, shapes).to_string()
    assert '"input" -> "prep/conv" [label="1×3×32×32"]' in text
    assert '"layer1/residual/in" -> "layer1/residual/add" [label="1×128×16×16"]' in text


def test_colours_stable():
    assert op_colour("conv") == "#9ecae1"
    assert re.fullmatch(r"#[0-9a-f]{6}", op_colour("my_op")) and op_colour("my_op") != op_colour("my_op2")
    code = "from graphnet.render import op_colour; print(op_colour('ghost_batch_norm'), op_colour('x'))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                           env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}).stdout
            for seed in ("1", "2")}
    assert len(runs) == 1


def test_dot_file_needs_no_engine(graph, tmp_path, monkeypatch):
    monkeypatch.setattr(render_module, "find_engine", lambda prog=None: pytest.fail("engine used"))
    path = render(graph, tmp_path / "sub" / "r9.dot")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("digraph graphnet {")
    for ns in CLUSTERS:
        assert f"cluster_{ns}" in text


def test_svg_graphviz_pure(graph, tmp_path):
    check_svg(render(graph, tmp_path / "r9.svg", prog="graphviz-pure").read_text(encoding="utf-8"))


@needs_dot
def test_svg_system_dot(graph, tmp_path):
    check_svg(render(graph, tmp_path / "r9.svg", prog="dot").read_text(encoding="utf-8"))


@pytest.mark.parametrize("prog", ["graphviz-pure", pytest.param("dot", marks=needs_dot)])
def test_png(graph, tmp_path, prog):
    assert render(graph, tmp_path / "r9.png", prog=prog).read_bytes().startswith(PNG_MAGIC)


def test_to_svg_and_notebook_repr(graph):
    svg = to_svg(graph, prog="graphviz-pure")
    assert "<svg" in svg
    check_svg(graph._repr_svg_())


def test_errors(graph, tmp_path, monkeypatch):
    with pytest.raises(RenderError, match="must end in"):
        render(graph, tmp_path / "r9.pdf")
    with pytest.raises(RenderError, match="unknown layout engine"):
        render(graph, tmp_path / "r9.svg", prog="neato")
    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(render_module, "_graphviz_pure", lambda: None)
    with pytest.raises(RenderError, match="install Graphviz .* or `pip install graphviz-pure`"):
        render(graph, tmp_path / "r9.svg")


def test_import_graphnet_without_pydot():
    code = ("import sys; sys.modules['pydot'] = None\n"  # makes `import pydot` fail
            "import graphnet, graphnet.render, graphnet.cli.render\n"
            "sys.path.insert(0, 'specs'); import resnet9\n"
            "print(graphnet.summary(graphnet.build(resnet9.net), (1, 3, 32, 32)).total_params)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "6573120"
