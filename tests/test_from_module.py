"""``graphnet.from_module``: torchvision networks traced into specs that compute what the modules compute."""

import collections
import io
import json
from contextlib import redirect_stdout

import pytest
import torch
import torchvision
from torch import nn

import graphnet
from graphnet.cli import main
from graphnet.spec_source import load_spec
from graphnet.trace import max_difference

# model -> (builder kwargs, input size, node count, ops that are not graphnet's own): a network of each family
MODELS = {
    "resnet18": ({}, 32, 69, set()),
    "resnet50": ({}, 32, 175, set()),
    "vgg11_bn": ({}, 32, 38, set()),
    "mobilenet_v2": ({}, 32, 153, set()),
    "densenet121": ({}, 32, 431, set()),
    "squeezenet1_0": ({}, 64, 66, set()),
    "efficientnet_b0": ({}, 32, 249, {"torchvision.ops.stochastic_depth.StochasticDepth"}),
    "convnext_tiny": ({}, 32, 210, {"torchvision.models.convnext.LayerNorm2d",
                                    "torchvision.ops.stochastic_depth.StochasticDepth"}),
    "shufflenet_v2_x0_5": ({}, 32, 210, set()),
    "vit_b_16": ({"image_size": 32}, 32, 144, set()),
    "swin_t": ({}, 224, 245, {"torchvision.ops.stochastic_depth.StochasticDepth"}),
    "maxvit": ({"input_size": (64, 64), "stem_channels": 8, "partition_size": 4, "block_channels": [8, 16],
                "block_layers": [1, 1], "head_dim": 4, "stochastic_depth_prob": 0.2}, 64, 126,
               {"torchvision.ops.stochastic_depth.StochasticDepth", "instance"}),  # a small MaxVit
}


@pytest.fixture(scope="module")
def traced():
    """``traced(name)``: a torchvision model with random weights and its graph, made once for this file."""
    made = {}

    def get(name):
        if name not in made:
            kwargs, size = MODELS[name][:2] if name in MODELS else ({}, 32)
            torch.manual_seed(0)
            module = torchvision.models.MaxVit(**kwargs) if name == "maxvit" else \
                torchvision.models.get_model(name, weights=None, **kwargs)
            made[name] = module, graphnet.from_module(module, example_input=torch.randn(2, 3, size, size))
        return made[name]

    yield get
    made.clear()


OWN_OPS = {"conv", "batch_norm", "linear", "relu", "relu6", "silu", "sigmoid", "gelu", "max_pool", "avg_pool",
           "adaptive_avg_pool", "add", "product", "concat", "flatten", "dropout", "mul", "layer_norm", "parameter",
           "buffer", "mean", "reshape", "permute", "transpose", "chunk", "channel_shuffle", "index", "expand_batch",
           "self_attention", "window_attention", "relative_position_bias", "patch_merging_pad", "softmax", "einsum",
           "unsqueeze", "matmul", "sub", "identity", "tanh"}


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_model_computes_the_same(name, tmp_path, traced):
    _, size, count, foreign = MODELS[name]
    module, graph = traced(name)
    assert len(graph) == count
    assert {n.op for n in graph.nodes} - OWN_OPS == foreign
    net = graphnet.compile(graph)
    assert set(net.state_dict()) == set(module.state_dict())
    net.load_state_dict(module.state_dict())
    x = torch.randn(2, 3, size, size)
    assert max_difference(module, net, x)[0] <= 1e-5  # eval and train mode (batch statistics, dropout alike)
    graphnet.render(graph, tmp_path / f"{name}.dot")
    assert (tmp_path / f"{name}.dot").read_text().count("->") == sum(len(n.inputs) for n in graph.nodes)
    if "instance" in foreign:
        with pytest.raises(graphnet.SpecError, match="op instance: param module=<RelativePositionalMultiHeadAttention> "
                                                     "is not plain"):
            graphnet.to_json(graph.to_spec())
    else:
        assert graphnet.build(graphnet.from_json(graphnet.to_json(graph.to_spec()))) == graph


def test_an_index_buffer_keeps_its_values_so_the_spec_alone_computes_as_the_module(traced):
    module, graph = traced("swin_t")
    index = graph["features/1/0/attn/relative_position_index"]
    assert index.op == "buffer" and index.params["dtype"] == "int64" and len(index.params["values"]) == 49 * 49
    net = graphnet.compile(graphnet.build(graphnet.from_json(graphnet.to_json(graph.to_spec()))))
    learnt = {k: v for k, v in module.state_dict().items() if "relative_position_index" not in k}
    assert [k for k in net.load_state_dict(learnt, strict=False).missing_keys if "index" in k]  # not loaded
    x = torch.randn(2, 3, 224, 224)
    assert max_difference(module, net, x, modes=(False,))[0] <= 1e-5
    assert "values=[84, 83, 82, … 2,401 values]" in graphnet.labels.op_label(index)


def test_a_buffer_the_spec_cannot_hold_starts_at_zeros_until_the_state_dict_loads():
    class Masked(nn.Module):  # a causal mask of -inf: not JSON, so not in the spec
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", torch.full((4, 4), float("-inf")).triu(1))

        def forward(self, x):
            return x + self.mask

    module, x = Masked(), torch.randn(2, 3, 4, 4)
    graph = graphnet.from_module(module, example_input=x)
    assert dict(graph["mask"].params) == {"shape": (4, 4)}
    net = graphnet.compile(graphnet.build(graphnet.from_json(graphnet.to_json(graph.to_spec()))))
    assert torch.equal(net.state_dict()["mask"], torch.zeros(4, 4))
    net.load_state_dict(module.state_dict())
    assert torch.equal(net(x), module(x))


def test_a_buffers_values_read_short_in_labels_diffs_and_errors():
    graph = graphnet.build({"index": ("buffer", {"shape": (8,), "dtype": "int64", "values": tuple(range(8))}, [])})
    assert graphnet.labels.op_label(graph["index"]) == "buffer 8 dtype=int64 values=[0, 1, 2, … 8 values]"
    changed = graph.replace("index", params={**graph["index"].params, "values": (0, 1, 2, 3, 4, 9, 6, 7)})
    assert graphnet.diff(graph, changed).change_lines("index") == ["values 8 values from entry 5: 5 → 9"]
    with pytest.raises(graphnet.ParamError, match=r"param values=\('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', \.\.\.\) "
                                                  r"wants tuple\[a finite float, \.\.\.\] \| None$"):
        graphnet.build({"index": ("buffer", {"shape": (100,), "values": tuple("abcdefghij" * 10)}, [])})


def test_split_and_reshape_as_become_index_and_reshape_nodes():
    class Heads(nn.Module):  # as timm's LeViT: q, k, v = x.split(sizes, dim); norm(x.flatten(0, 1)).reshape_as(x)
        def __init__(self):
            super().__init__()
            self.qkv, self.norm = nn.Conv2d(3, 9, 1), nn.BatchNorm1d(4)

        def forward(self, x):
            q, k, v = self.qkv(x).split([2, 3, 4], dim=1)
            t = (q[:, :1] * k + v[:, :3]).split((1, 3), -1)[1]
            return self.norm(t.flatten(0, 1)).reshape_as(t)

    module, x = Heads(), torch.randn(2, 3, 4, 4)
    graph = graphnet.from_module(module, example_input=x)
    assert [dict(graph[p].params)["index"] for p in graph.find(op="index")] == [
        ((None, None, None), (0, 2, None)), ((None, None, None), (2, 5, None)), ((None, None, None), (5, 9, None)),
        ((None, None, None), (None, 1, None)), ((None, None, None), (None, 3, None)), ("...", (1, 4, None))]
    assert graph.find(op="reshape")
    net = graphnet.compile(graphnet.build(graphnet.from_json(graphnet.to_json(graph.to_spec()))))
    net.load_state_dict(module.state_dict())
    assert max_difference(module, net, torch.randn(2, 3, 4, 4))[0] <= 1e-6


def test_paths_follow_the_module_names(traced):
    graph = traced("resnet18")[1]
    assert [n.path for n in graph.nodes if n.namespace == "layer2/0"] == [
        "layer2/0/conv1", "layer2/0/bn1", "layer2/0/relu", "layer2/0/conv2", "layer2/0/bn2",
        "layer2/0/add", "layer2/0/relu_1"]  # BasicBlock calls self.relu twice
    assert graph["layer2/0/downsample/0"].params == {"c_in": 64, "c_out": 128, "kernel_size": 1, "stride": 2}
    assert graph["layer2/0/add"].inputs == ("layer2/0/bn2", "layer2/0/downsample/1")
    assert graph["conv1"].params == {"c_in": 3, "c_out": 64, "kernel_size": 7, "stride": 2}  # padding 3 is 'same'
    assert graph["maxpool"].params == {"kernel_size": 3, "stride": 2, "padding": 1}
    mobilenet = traced("mobilenet_v2")[1]
    assert mobilenet["features/2/conv/1/0"].params["groups"] == 96
    squeeze = traced("squeezenet1_0")[1]
    assert squeeze["features/2"].params["ceil_mode"] is True
    assert squeeze["features/3/concat"].inputs == ("features/3/expand1x1_activation", "features/3/expand3x3_activation")


class Scale(nn.Module):
    """Its constructor param is an attribute, so it becomes an op of its own."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class Shuffle(nn.Module):
    """fx cannot trace data-dependent control flow: this module becomes a leaf."""

    def forward(self, x):
        return x.flip(1) if x.sum() > 0 else x


class Opaque(nn.Module):
    """Untraceable, with a constructor param that is not kept: the node holds the instance."""

    def __init__(self, n: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n))

    def forward(self, x):
        return x * self.w[:, None, None] if x.sum() > 0 else x


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, dilation=1)
        self.scale = Scale(0.5)
        self.shuffle = Shuffle()
        self.opaque = Opaque(4)
        self.norm = nn.LayerNorm([4, 8, 8])

    def forward(self, x):
        x = self.conv(x)
        x = self.opaque(self.shuffle(self.scale(x)))
        x = x * 2.0
        x += torch.relu(x)
        return self.norm(x).mean((2, 3))


def test_other_modules_become_class_ops_or_instances():
    torch.manual_seed(0)
    module = Custom()
    x = torch.randn(2, 3, 8, 8)
    graph = graphnet.from_module(module, example_input=x)  # checked against the module on x
    ops = {n.path: (n.op, dict(n.params)) for n in graph.nodes}
    assert ops["scale/mul"] == ("mul", {"weight": 0.5})  # traced through: x * self.factor
    assert ops["shuffle"] == (f"{__name__}.Shuffle", {})  # untraceable: a leaf, its class an op
    assert ops["opaque"][0] == "instance"  # its param n is no attribute: the instance is held
    assert ops["norm"] == ("layer_norm", {"normalized_shape": (4, 8, 8)})
    assert [o for o, _ in ops.values()] == ["conv", "mul", f"{__name__}.Shuffle", "instance", "mul", "relu",
                                            "add", "layer_norm", "mean"]
    net = graphnet.compile(graph)
    net.load_state_dict(module.state_dict())
    assert torch.allclose(net(x), module(x), atol=1e-6)


def test_what_cannot_be_a_graph_is_a_spec_error():
    class TopCumsum(nn.Module):
        def forward(self, x):
            return x.cumsum(1)

    with pytest.raises(graphnet.SpecError, match=r"no op for the top module: the method \.cumsum\(\)"):
        graphnet.from_module(TopCumsum())

    class TopShape(nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0], -1)

    with pytest.raises(graphnet.SpecError, match=r"the call getattr\(\) \(a shape read: pass example_input"):
        graphnet.from_module(TopShape())
    graph = graphnet.from_module(TopShape(), example_input=torch.randn(2, 3, 4, 4))
    assert [(n.op, dict(n.params)) for n in graph.nodes] == [("reshape", {"shape": (-1, 48)})]

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    with pytest.raises(graphnet.SpecError, match="conv: from_module: module conv has weights and is called twice"):
        graphnet.from_module(Shared())

    class TwoOutputs(nn.Module):
        def forward(self, x):
            return torch.relu(x), torch.sigmoid(x)

    with pytest.raises(graphnet.SpecError, match="returns tuple, not one tensor"):
        graphnet.from_module(TwoOutputs())


def test_weights_that_the_traced_mode_never_reads_are_one_line():
    class AuxHead(nn.Module):  # as googlenet's aux_logits: a head only train mode runs
        def __init__(self):
            super().__init__()
            self.conv, self.aux = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv(x) + self.aux(x) if self.training else self.conv(x)

    for example_input in (torch.randn(2, 3, 4, 4), None):
        with pytest.raises(graphnet.SpecError, match=r"^from_module: AuxHead has weights its traced forward never "
                                                     r"reads: aux\.weight, aux\.bias \(a branch that this mode skips"):
            graphnet.from_module(AuxHead().eval(), example_input=example_input)
    graph = graphnet.from_module(AuxHead())  # traced in train mode, which reads them all
    assert {"conv", "aux"} <= {n.path for n in graph.nodes}


def test_page_tricks_on_a_torchvision_resnet_train():
    graph = graphnet.from_module(torchvision.models.resnet18(num_classes=10))
    tricks = graphnet.rewrite(graph, [("ghost_bn", {"num_splits": 2}), "celu", ("freeze_bn_scale", {"final_scale": None})])
    counts = collections.Counter(n.op for n in tricks.nodes)
    assert counts["ghost_batch_norm"] == 20 and counts["celu"] == 17 and "relu" not in counts
    assert tricks["layer1/0/bn1"].attrs["frozen"] == ["weight"]
    net = graphnet.compile(tricks)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    losses = []
    for _ in range(3):
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert net.node_module("layer1/0/bn1").weight.grad is None  # frozen


def test_summary_counts_what_torchvision_documents(traced):
    # torchvision's docs: ResNet-18 11,689,512 params, 1.81 GFLOPS; ResNet-50 25,557,032, 4.09 (multiply-adds)
    s18 = graphnet.summary(traced("resnet18")[1], (1, 3, 224, 224))
    assert (s18.total_params, s18.total_macs, s18.total_flops) == (11_689_512, 1_814_073_344, 3_628_146_688)
    s50 = graphnet.summary(traced("resnet50")[1], (1, 3, 224, 224))
    assert (s50.total_params, round(s50.total_macs / 1e9, 2)) == (25_557_032, 4.09)
    rows = {r.path: r for r in s18.rows}
    assert rows["fc"].macs == 512 * 1000 and rows["maxpool"].macs == 0 and rows["maxpool"].shape == (1, 64, 56, 56)
    mobilenet = graphnet.summary(traced("mobilenet_v2")[1], (1, 3, 224, 224))
    assert round(mobilenet.total_macs / 1e9, 2) == 0.30  # grouped convs: torchvision documents 0.30
    # convnext traced through its layer scales, permutes and layer norms (torchvision: 4.46)
    convnext = graphnet.summary(traced("convnext_tiny")[1], (1, 3, 224, 224))
    assert round(convnext.total_macs / 1e9, 2) == 4.46


def test_load_spec_takes_torchvision_names_and_modules():
    spec = load_spec("torchvision:resnet18", num_classes=10)
    assert spec["fc"] == ("linear", {"c_in": 512, "c_out": 10})
    assert load_spec("torchvision.models:resnet18", num_classes=10) == spec  # module:attr giving an nn.Module
    vit = load_spec("torchvision:vit_b_16", image_size=32)  # traced on a 32x32 example: its shape reads
    assert vit["class_token"] == ("parameter", {"shape": (1, 1, 768)}, [])
    assert vit["conv_proj"][0] == "conv" and vit["reshape"][1] == {"shape": (-1, 768, 4)}
    with pytest.raises(graphnet.SpecError, match="torchvision has no model 'resnet17'; did you mean resnet18"):
        load_spec("torchvision:resnet17")
    with pytest.raises(graphnet.SpecError, match="torchvision:resnet18 cannot take"):
        load_spec("torchvision:resnet18", nope=1)


def run_cli(*argv):
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(list(argv))
    return code, buffer.getvalue()


def test_cli_summary_and_render_of_torchvision_specs(tmp_path):
    code, out = run_cli("summary", "torchvision:resnet18", "--input-shape", "3,224,224")
    assert code == 0
    assert "11,689,512" in out and "1.81 G mult-adds (a multiply-add counted once, torchvision's 'GFLOPS')" in out
    code, out = run_cli("summary", "torchvision:resnet18", "--num-classes", "10")
    assert code == 0 and [line.split()[-2:] for line in out.splitlines() if line.startswith("fc ")] == [["5,130", "5,120"]]
    code, out = run_cli("render", "torchvision:resnet18", "--rewrite", "ghost_bn", "-o", str(tmp_path / "r18.dot"))
    assert code == 0 and "ghost_batch_norm" in (tmp_path / "r18.dot").read_text()


def test_json_of_a_traced_class_op_records_its_module(traced):
    graph = traced("efficientnet_b0")[1]
    data = json.loads(graphnet.to_json(graph.to_spec()))
    assert data["format"] == "graphnet-spec" and data["imports"] == ["torchvision.ops.stochastic_depth"]
    assert data["spec"]["features"]["2"]["1"]["stochastic_depth"][0] == "torchvision.ops.stochastic_depth.StochasticDepth"
