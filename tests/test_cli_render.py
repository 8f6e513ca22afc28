import argparse
import importlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import graphnet.rewrites
from graphnet.cli import main
from graphnet.cli.args import parse_rewrite, parse_shape

ROOT = Path(__file__).resolve().parents[1]
RESNET9 = str(ROOT / "specs" / "resnet9.py")


def test_render_subprocess(tmp_path):
    out = subprocess.run([sys.executable, "-m", "graphnet.cli", "render", RESNET9, "-o", "r9.svg"],
                         cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "r9.svg"
    assert "<title>cluster_layer1/residual</title>" in (tmp_path / "r9.svg").read_text(encoding="utf-8")


def test_default_output_and_formats(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["render", RESNET9]) == 0
    assert capsys.readouterr().out.strip() == "resnet9.svg" and (tmp_path / "resnet9.svg").is_file()
    assert main(["render", "resnet9:build", "-o", "out/net.png", "--engine", "graphviz-pure"]) == 0
    assert (tmp_path / "out" / "net.png").read_bytes().startswith(b"\x89PNG")
    assert main(["render", RESNET9, "-o", "net.dot"]) == 0
    assert (tmp_path / "net.dot").read_text(encoding="utf-8").startswith("digraph")


def test_shapes_summary_width(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["render", RESNET9, "-o", "r9.dot", "--shapes", "--summary", "--width-mult", "0.5",
                 "--input-shape", "3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "layer1/residual/add" in out and out.strip().endswith("r9.dot")
    assert '"layer1/residual/in" -> "layer1/residual/add" [label="1×64×16×16"]' in (
        tmp_path / "r9.dot").read_text(encoding="utf-8")  # layer1's residual at width 0.5


def test_summary_command(capsys):
    assert main(["summary", RESNET9]) == 0
    lines = capsys.readouterr().out.splitlines()
    total = lines[-3].split()
    assert total[0] == "total" and total[-2:] == ["6,573,120", "379,261,952"]  # multiply-adds
    assert lines[-2].endswith("0.76 GFLOPs counting both")
    assert lines[-1].startswith("input 0.01 MB, forward/backward pass 6.03 MB, params 26.29 MB")


def test_rewrite_passes_reach_rewrite(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("graphnet.rewrites")
    fake.NoMatchError, fake.PassNote = graphnet.rewrites.NoMatchError, graphnet.rewrites.PassNote
    fake.rewrite = lambda graph, passes: seen.append(passes) or graph
    fake.split_passes = lambda passes: {"net": [p for p in passes if p != "smooth"], "loss": ["smooth"], "eval": []}
    monkeypatch.setitem(sys.modules, "graphnet.rewrites", fake)
    assert main(["summary", RESNET9, "--rewrite", "celu:alpha=0.075", "--rewrite", "smooth", "--rewrite", "gbn"]) == 0
    assert seen == [[("celu", {"alpha": 0.075}), "gbn"]]
    assert capsys.readouterr().err == "graphnet summary: note: skipped passes for the loss or eval graph: smooth\n"


def test_rewrite_real_passes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["render", RESNET9, "-o", "r9.dot", "--rewrite", "celu:alpha=0.075"]) == 0
    assert "celu 0.075" in (tmp_path / "r9.dot").read_text(encoding="utf-8")
    assert main(["render", RESNET9, "--rewrite", "no_such_pass"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphnet render: error: ") and "no_such_pass" in err and len(err.splitlines()) == 1


def test_bad_json_spec_one_line(tmp_path):
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"a": ["conv", {"c_in": 3, "c_out": 8}], "b": ["relu", {}, ["nope"]]}))
    out = subprocess.run([sys.executable, "-m", "graphnet.cli", "render", str(spec)], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines() == ["graphnet render: error: b: input 'nope' is no node, namespace or graph input"]
    assert not (tmp_path / "bad.svg").exists()


@pytest.mark.parametrize("name", ["missing.py", "missing.json"])
def test_missing_spec(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)
    assert main(["render", name]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphnet render: error: ") and "missing" in err and len(err.splitlines()) == 1


def test_missing_engine(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(importlib.import_module("graphnet.render").shutil, "which", lambda name: None)
    assert main(["render", RESNET9, "--engine", "dot"]) == 1
    assert capsys.readouterr().err == ("graphnet render: error: the 'dot' layout engine was not found: install "
                                       "Graphviz (the `dot` program, e.g. `apt-get install graphviz`) or "
                                       "`pip install graphviz-pure`\n")


def test_shape_error_names_node(capsys):
    assert main(["summary", RESNET9, "--input-shape", "3,8"]) == 1
    assert capsys.readouterr().err.startswith("graphnet summary: error: prep/conv: op 'conv' failed")


def test_parse_rewrite():
    assert parse_rewrite("celu") == "celu"
    assert parse_rewrite("celu:alpha=0.075") == ("celu", {"alpha": 0.075})
    assert parse_rewrite("x:size=(1, 2),mode=fast,names='a,b',n=[1,2]") == (
        "x", {"size": (1, 2), "mode": "fast", "names": "a,b", "n": [1, 2]})
    assert parse_rewrite("x:") == ("x", {})
    for bad in (":a=1", "x:a", "x:=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_rewrite(bad)


def test_parse_shape():
    assert parse_shape("3,32,32") == (3, 32, 32)
    for bad in ("", "3,x", "3,0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_shape(bad)


def test_bad_rewrite_argument_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["render", RESNET9, "--rewrite", "celu:alpha"])
    assert exit_info.value.code == 2 and "not key=value" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--width-mult", "0"], ["--width-mult", "-1"], ["--batch", "0"]])
def test_non_positive_sizes_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["summary", "specs/resnet9.py", *argv] if "--batch" not in argv else ["render", "specs/resnet9.py", *argv])
    assert info.value.code == 2
    assert "must be" in capsys.readouterr().err
