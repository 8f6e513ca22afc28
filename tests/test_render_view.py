"""Diff drawings, trainer hints, --depth boxes, --fold and --rankdir (graphnet.view and graphnet.render)."""
import re
import struct
from pathlib import Path

import pytest

import graphnet
from graphnet.cli import main
from graphnet.ops import add, batch_norm, conv, identity, relu
from graphnet.render import RenderError, render, to_dot
from graphnet.view import collapse, view
from test_diff import ACTS, NORMS

CHANGED = "#d95f02"


def styled(dot_text: str, colour: str) -> list[str]:
    """The ids of the nodes (not legend entries) drawn with this border colour."""
    return sorted(m for m, attrs in re.findall(r'^"([^"]+)" \[(.*)\];$', dot_text, re.M)
                  if f'color="{colour}"' in attrs and not m.startswith("legend:"))


def test_diff_drawing_marks_exactly_the_changed_nodes(resnet9_spec, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["render", str(Path(__file__).parents[1] / "specs" / "resnet9.py"),
            "--rewrite", "celu", "--rewrite", "ghost_bn", "--diff"]
    assert main([*args, "-o", "d.dot"]) == 0 and main([*args, "-o", "d.svg"]) == 0
    text = (tmp_path / "d.dot").read_text(encoding="utf-8")
    assert styled(text, CHANGED) == sorted(ACTS + NORMS)
    assert "relu → celu(0.075)" in text and "batch_norm → ghost_batch_norm(num_splits=16)" in text
    assert all(f'"legend:{s}"' in text for s in ("added", "removed", "changed", "unchanged"))
    svg = (tmp_path / "d.svg").read_text(encoding="utf-8")
    nodes = re.findall(r'<g id="node\d+" class="node">\s*<title>([^<]+)</title>(.*?)</g>', svg, re.S)
    assert sorted(t for t, body in nodes if f'stroke="{CHANGED}"' in body and not t.startswith("legend:")) == \
        sorted(ACTS + NORMS)
    assert len(nodes) == 1 + 35 + 4  # input, the nodes, the legend


def test_diff_styles_added_removed(resnet9_spec):
    a = graphnet.build(resnet9_spec)
    b = graphnet.rewrite(a, ["whiten_input"])
    text = to_dot(graphnet.diff(a, b)).to_string()
    assert styled(text, "#1a9850") == ["prep/whiten"]
    assert re.search(r'"input" -> "prep/whiten" \[color="#1a9850"', text)  # an added edge
    assert re.search(r'"input" -> "prep/conv" \[color="#b0b0b0", style=dashed', text)  # a removed one
    back = to_dot(graphnet.diff(b, a)).to_string()
    assert re.search(r'"prep/whiten" \[.*style="rounded,filled,dashed"', back)


def test_trainer_hints_on_nodes(resnet9_spec):
    g = graphnet.rewrite(graphnet.build(resnet9_spec), ["whiten_input", "freeze_bn_scale"])
    v = view(g)
    assert v.items["prep/bn"].lines[-3:] == ("frozen weight", "lr ×64 bias", "wd ×0.015625 bias")
    assert v.items["prep/whiten"].lines[-2:] == ("frozen weight", "init whitening(eps=0.01)")
    assert v.items["prep/bn"].hinted and not v.items["prep/conv"].hinted
    assert "frozen weight; lr ×64 bias" in v.items["prep/bn"].info["hints"]
    assert styled(to_dot(g).to_string(), "#2b5797") == sorted(["prep/whiten", *NORMS])


def test_depth_boxes(resnet9_spec):
    g = graphnet.build(resnet9_spec)
    table = graphnet.summary(g, (1, 3, 32, 32))
    dot = to_dot(g, summary=table, depth=1)
    boxes = {n.get_name().strip('"'): n.get("label") for n in dot.get_nodes() if n.get("shape") == "box3d"}
    assert sorted(boxes) == ["layer1", "layer2", "layer3", "prep"]
    assert boxes["layer3"] == "layer3\n12 nodes\n5.9M params · 302M FLOPs"
    edges = sorted((e.get_source().strip('"'), e.get_destination().strip('"')) for e in dot.get_edges())
    assert ("prep", "layer1") in edges and ("layer3", "pool") in edges and len(edges) == 8
    two = to_dot(g, depth=2).to_string()
    assert "cluster_layer1" in two and '"layer1/residual" [label="residual\\n8 nodes"' in two
    with pytest.raises(RenderError, match="depth must be at least 1"):
        to_dot(g, depth=0)


def block(c):
    return {"conv": conv(c, c), "bn": batch_norm(c), "relu": relu()}


def test_fold_chains_of_identical_blocks():
    spec = {"stem": conv(3, 8), "stage": {str(i): block(8) for i in range(4)}, "wide": block(8)}
    spec["stage"]["0"] = {**block(8), "extra": relu()}  # the first differs
    g = graphnet.build(spec)
    v = view(g, fold=True)
    assert v.clusters["stage/1"].label == "1…3 ×3" and v.clusters["stage/1"].fold == 3
    assert "stage/2" not in v.clusters and not any(p.startswith(("stage/2/", "stage/3/")) for p in v.items)
    edges = {(e.src, e.dst) for e in v.edges}
    assert ("stage/0/extra", "stage/1/conv") in edges and ("stage/1/relu", "wide/conv") in edges
    assert "wide" in v.clusters and v.clusters["wide"].fold == 1  # identical but in another namespace
    assert v.clusters["stage"].box_lines == ("13 nodes",) and v.clusters["stage/1"].box_lines == ("9 nodes",)
    # folds inside folds: two identical stages of two identical blocks
    nested = view(graphnet.build({"s1": {"0": block(8), "1": block(8)}, "s2": {"0": block(8), "1": block(8)}}),
                  fold=True)
    assert [(c.label, c.box_lines[0]) for c in nested.clusters.values()] == [("s1…s2 ×2", "12 nodes"),
                                                                            ("0…1 ×2", "6 nodes")]
    assert {(e.src, e.dst) for e in nested.edges} == {("input", "s1/0/conv"), ("s1/0/conv", "s1/0/bn"),
                                                       ("s1/0/bn", "s1/0/relu")}
    # identical siblings that are not chained (parallel branches) stay apart
    par = graphnet.build({"a": block(8), "b": {**block(8), "conv": conv(8, 8, inputs=["/input"])},
                          "sum": add(inputs=["a", "b"])}, inputs="input")
    assert all(c.fold == 1 for c in view(par, fold=True).clusters.values())
    assert len(collapse(view(g, fold=True), ["stage"]).items) == 1 + 1 + 1 + 3


def test_rankdir_and_fold_make_bag_of_tricks_short(tmp_path):
    import bag_of_tricks
    g = graphnet.build(bag_of_tricks.net)
    tall = render(g, tmp_path / "b0.png", prog="graphviz-pure")
    short = render(g, tmp_path / "b.png", prog="graphviz-pure", rankdir="LR", fold=True)
    heights = [struct.unpack(">II", p.read_bytes()[16:24])[1] for p in (tall, short)]
    assert heights[1] * 3 <= heights[0], heights
    assert "rankdir=LR" in to_dot(g, rankdir="LR").to_string()
    with pytest.raises(RenderError, match="unknown rankdir"):
        to_dot(g, rankdir="BT")


def test_diff_command(capsys, tmp_path):
    spec = str(Path(__file__).parents[1] / "specs" / "resnet9.py")
    assert main(["diff", spec, "--rewrite", "celu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["~", "prep/relu", "relu", "→", "celu(0.075)"] and out[-1].startswith("8 changed")
    tricks = str(Path(__file__).parents[1] / "specs" / "bag_of_tricks.py")
    assert main(["diff", spec, tricks]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "24 changed, 1 added, 0 removed, 11 unchanged"
    assert main(["diff", spec]) == 1
    assert capsys.readouterr().err == ("graphnet diff: error: nothing to compare: give a second spec or --rewrite "
                                       "passes\n")
    assert main(["render", spec, "--diff", tricks, "-o", str(tmp_path / "d.dot")]) == 0
    assert styled((tmp_path / "d.dot").read_text(encoding="utf-8"), "#1a9850") == ["prep/whiten"]
