"""``graphnet.export``: a network out as a standalone .py file, a torch.export program and ONNX.

The .py files run in one fresh process in which ``import graphnet`` fails, and must give the
compiled graph's outputs (eval and train mode) and running statistics exactly. The networks
are small versions (width 0.25, MobileNetV2's first stages, a two-stage Swin with swin_t's
blocks), so that tracing them
for .pt2 and .onnx stays quick; benchmarks/export.py runs the full-size ones.
"""

import json
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
import torchvision
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

import graphnet
from graphnet.cli import main
from graphnet.ops import add, conv, relu
from graphnet.zoo import airbench94, resnet9

BATCH = (16, 3, 32, 32)  # 16 divides into the bag of tricks' ghost batches


def _mobilenet_v2():
    """torchvision's MobileNetV2 with its first three stages (five inverted residual blocks)."""
    return torchvision.models.MobileNetV2(num_classes=10, inverted_residual_setting=[[1, 16, 1, 1], [6, 24, 2, 2],
                                                                                     [6, 32, 2, 2]])


def _swin():
    """torchvision's SwinTransformer with swin_t's blocks, widths and window, two stages of two blocks."""
    return SwinTransformer(patch_size=[4, 4], embed_dim=96, depths=[2, 2], num_heads=[3, 6], window_size=[7, 7],
                           stochastic_depth_prob=0.2, num_classes=10)


NETWORKS = {
    "resnet9": lambda: graphnet.build(resnet9.build(0.25)),
    "bag_of_tricks": lambda: graphnet.build(graphnet.load_spec("specs/bag_of_tricks.py", width_mult=0.25)),
    "airbench94": lambda: graphnet.build(airbench94.build(0.25)),
    "mobilenet_v2": lambda: graphnet.from_module(_mobilenet_v2()),
    "swin": lambda: graphnet.from_module(_swin()),
}

def _vit():
    """torchvision's VisionTransformer, one layer: a class token and position embedding (parameter nodes)."""
    vit = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64,
                            num_classes=10)
    return graphnet.from_module(vit, example_input=torch.randn(BATCH))


# .py only: graphnet's function ops (the TTA views and their means) written into the file from their source;
# parameter nodes, saved under their own keys; node variables named as the functions they call
PY_ONLY = {"airbench94_tta": lambda: graphnet.rewrite(NETWORKS["airbench94"](), ["tta_flip", "tta_translate"]),
           "vit": _vit}

# Run by the fresh process: each exported file's network, loaded with the compiled graph's
# state_dict, on the same input, in eval then in train mode (dropout seeded alike).
CHILD = textwrap.dedent("""
    import importlib.util, json, sys
    sys.modules["graphnet"] = None  # import graphnet raises ImportError
    import torch
    for job in json.loads(sys.argv[1]):
        spec = importlib.util.spec_from_file_location("exported", job["file"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        net = module.build()
        net.load_state_dict(torch.load(job["state"]))
        x = torch.load(job["input"])
        with torch.no_grad():
            out = {"eval": net.eval()(x)}
            torch.manual_seed(0)
            out["train"] = net.train()(x)
        torch.save({**out, "state": net.state_dict()}, job["out"])
""")


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # compile's note on unused nodes
        return {name: graphnet.compile(make()) for name, make in {**NETWORKS, **PY_ONLY}.items()}


def _outputs(net, x):
    """Eval and train outputs of ``net`` on ``x``, and its state after the train step, leaving ``net`` as it was."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        out = {"eval": net.eval()(x)}
        torch.manual_seed(0)
        out["train"] = net.train()(x)
    out["state"] = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    return out


@pytest.fixture(scope="module")
def python_runs(networks, tmp_path_factory):
    """name -> (the compiled network's outputs, the exported file's outputs in the fresh process)
    or the ExportError that refused the file."""
    folder = tmp_path_factory.mktemp("export_py")
    x = torch.randn(BATCH)
    torch.save(x, folder / "input.pt")
    jobs, results = [], {}
    for name, net in networks.items():
        try:
            graphnet.export(net, folder / f"{name}.py")
        except graphnet.ExportError as e:
            results[name] = e
            continue
        torch.save(net.state_dict(), folder / f"{name}.state.pt")
        jobs.append({"name": name, "file": str(folder / f"{name}.py"), "state": str(folder / f"{name}.state.pt"),
                     "input": str(folder / "input.pt"), "out": str(folder / f"{name}.out.pt")})
    subprocess.run([sys.executable, "-I", "-c", CHILD, json.dumps(jobs)], check=True, cwd=folder)
    for job in jobs:
        results[job["name"]] = _outputs(networks[job["name"]], x), torch.load(job["out"])
    return results


def _instance_nodes(net):
    return [n.path for n in net.spec_graph.nodes if n.op == "instance"]


@pytest.mark.parametrize("name", [*NETWORKS, *PY_ONLY])
def test_the_python_file_computes_what_the_compiled_graph_computes(name, networks, python_runs):
    instances = _instance_nodes(networks[name])
    if instances:
        # A module object from_module could not read back has no source form: the file is refused,
        # naming it (swin's attention was one until from_module traced it to known ops).
        assert isinstance(python_runs[name], graphnet.ExportError)
        assert str(python_runs[name]).startswith(f"{instances[0]}: an instance node holds")
        return
    expected, got = python_runs[name]
    for mode in ("eval", "train"):
        assert torch.equal(got[mode], expected[mode]), mode
    assert got["state"].keys() == expected["state"].keys()
    assert all(torch.equal(got["state"][k], v) for k, v in expected["state"].items())  # running stats


def test_the_python_file_needs_no_graphnet_and_reads_plainly(networks, tmp_path):
    text = graphnet.export(networks["bag_of_tricks"], tmp_path / "net.py").read_text()
    assert "graphnet" not in "".join(line for line in text.splitlines() if "import" in line)
    assert "class GhostBatchNorm(nn.BatchNorm2d):" in text  # graphnet's own op, from its source
    assert "self.layer1.residual.res1.conv = _conv(c_in=32, c_out=32)" in text
    assert "self.prep.whiten.weight.requires_grad_(False)" in text  # frozen, as compile leaves it
    assert "def forward(self, input):" in text and "\ndef build() -> Network:" in text
    text = graphnet.export(networks["airbench94_tta"], tmp_path / "tta.py").read_text()
    assert "def translate_views_fn(x: torch.Tensor, *, shift: int = 1)" in text
    assert "tta_translate = translate_views_fn(input_1, shift = 1)" in text


@pytest.mark.parametrize("name", NETWORKS)
def test_the_pt2_program_computes_what_the_compiled_graph_computes(name, networks, tmp_path):
    net, x = networks[name], torch.randn(BATCH)
    graphnet.export(net, tmp_path / "net.pt2", input_shape=BATCH)
    program = torch.export.load(tmp_path / "net.pt2").module()
    with torch.no_grad():
        assert torch.allclose(program(x), net.eval()(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NETWORKS)
def test_the_onnx_file_runs_in_onnxruntime(name, networks, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net, x = networks[name], torch.randn(BATCH)
    net.train()
    graphnet.export(net, tmp_path / "net.onnx", input_shape=BATCH)
    assert net.training  # the program is the eval-mode network; the network's own mode is kept
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = net.eval()(x)
    assert (torch.from_numpy(got) - expected).abs().max().item() < 1e-4


def test_a_users_ops_are_imported_from_their_modules(tmp_path, monkeypatch):
    (tmp_path / "myops.py").write_text(textwrap.dedent("""
        import torch

        def scaled_tanh(x, *, scale: float = 1.0):
            return scale * torch.tanh(x)

        class Cast(torch.nn.Module):
            def __init__(self, dtype: torch.dtype = torch.float32):
                super().__init__()
                self.dtype = dtype

            def forward(self, x):
                return x.to(self.dtype)
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import myops

    graphnet.register("test_export_scaled_tanh", myops.scaled_tanh)
    graphnet.register("test_export_leaky_relu", torch.nn.LeakyReLU)
    graphnet.register("test_export_cast", myops.Cast)
    graph = graphnet.build({"t": ("test_export_scaled_tanh", {"scale": 2.0}),
                            "l": ("test_export_leaky_relu", {"negative_slope": 0.1}),
                            "c": ("test_export_cast", {"dtype": torch.float64})})
    text = graphnet.export(graph, tmp_path / "net.py").read_text()
    assert "from myops import Cast" in text and "from myops import scaled_tanh" in text
    assert "from torch.nn.modules.activation import LeakyReLU" in text
    assert "self.c = Cast(dtype=torch.float64)" in text
    namespace: dict = {}
    exec(compile(text, "net.py", "exec"), namespace)
    x = torch.randn(4, 3)
    expected = torch.nn.functional.leaky_relu(2 * torch.tanh(x), 0.1).double()
    assert torch.equal(namespace["build"]()(x), expected)


class Branchy(torch.nn.Module):
    """Control flow on the data, which torch.fx cannot trace: from_module holds it as an ``instance`` node."""

    def __init__(self, c):
        super().__init__()
        self.lin = torch.nn.Linear(c, c)

    def forward(self, x):
        return self.lin(x) if x.sum() > 0 else x


def test_what_cannot_be_exported_is_one_error_naming_it(tmp_path, monkeypatch):
    held = graphnet.from_module(torch.nn.Sequential(Branchy(4), torch.nn.ReLU()))
    with pytest.raises(graphnet.ExportError, match=r"^0: an instance node holds a module object \(Branchy\)"):
        graphnet.export(held, tmp_path / "net.py")
    graph = graphnet.build({"a": ("relu", {})})
    with pytest.raises(graphnet.ExportError, match="the suffix must be one of .py, .pt2, .onnx"):
        graphnet.export(graph, tmp_path / "net.tflite")
    graphnet.register("test_export_local", lambda x: x * 2)
    with pytest.raises(graphnet.ExportError, match="^b: .* is not importable by its name"):
        graphnet.export(graphnet.build({"a": ("relu", {}), "b": ("test_export_local", {})}), tmp_path / "net.py")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(graphnet.ExportError, match=r"needs onnx and onnxscript: pip install 'graphnet\[onnx\]'"):
        graphnet.export(graph, tmp_path / "net.onnx", input_shape=(2, 3))


def test_graphnet_export_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "resnet9.py"
    assert main(["export", "specs/resnet9.py", "--width-mult", "0.25", "--rewrite", "celu", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "torch.nn.functional.celu(" in out.read_text()
    assert main(["export", "specs/resnet9.py", "-o", str(tmp_path / "net.txt")]) == 1
    assert "graphnet export: error: cannot export to 'net.txt'" in capsys.readouterr().err


def test_any_node_name_the_spec_allows_is_written_out(tmp_path):
    spec = {"in": conv(3, 4), "class": {"1a": conv(4, 4), "a b": relu()}, "sum": add(inputs=["in", "class"])}
    net = graphnet.compile(graphnet.build(spec))
    namespace: dict = {}
    exec(compile(graphnet.export(net, tmp_path / "net.py").read_text(), "net.py", "exec"), namespace)
    exported = namespace["build"]()
    exported.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 8, 8)
    assert list(exported.state_dict()) == list(net.state_dict()) and torch.equal(exported(x), net(x))
