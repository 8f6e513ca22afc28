import pytest
import torch
import torchvision

import graphnet
from graphnet.ops import add, conv, linear, product, relu
from graphnet.summary import Row, Summary


@pytest.fixture
def resnet9_graph(resnet9_spec):
    return graphnet.build(resnet9_spec)


def test_resnet9_totals(resnet9_graph):
    s = graphnet.summary(resnet9_graph, (1, 3, 32, 32))
    assert isinstance(s, Summary) and all(isinstance(r, Row) for r in s.rows)
    assert s.total_params == 6_573_120
    # conv: 2 × H_out × W_out × c_in × c_out × 3 × 3, at the resolution it runs at
    convs = [(32, 3, 64), (32, 64, 128), (16, 128, 128), (16, 128, 128),  # prep, layer1 (+ residual)
             (16, 128, 256), (8, 256, 512), (4, 512, 512), (4, 512, 512)]  # layer2, layer3 (+ residual)
    flops = sum(2 * hw * hw * c_in * c_out * 9 for hw, c_in, c_out in convs) + 2 * 512 * 10
    assert s.total_flops == flops == 758_523_904
    assert graphnet.summary(resnet9_graph, (4, 3, 32, 32)).total_flops == 4 * flops


def test_resnet9_shapes(resnet9_graph):
    s = graphnet.summary(resnet9_graph, (2, 3, 32, 32))
    assert s.shapes["input"] == (2, 3, 32, 32)
    assert s.shapes["prep/relu"] == (2, 64, 32, 32)
    assert s.shapes["layer1/pool"] == (2, 128, 16, 16)
    assert s.shapes["layer1/residual/in"] == (2, 128, 16, 16)  # an identity has its input's shape
    assert s.shapes["layer3/residual/add"] == (2, 512, 4, 4)
    assert s.shapes["flatten"] == (2, 512)
    assert s.shapes["logits"] == (2, 10)
    assert [r.path for r in s.rows] == list(resnet9_graph.order)
    rows = {r.path: r for r in s.rows}
    assert rows["layer1/conv"].params == 64 * 128 * 9 and rows["layer1/bn"].params == 2 * 128
    assert rows["layer1/bn"].flops == 0 and rows["logits"].params == 0


def test_table(resnet9_graph):
    text = str(graphnet.summary(resnet9_graph, (1, 3, 32, 32)))
    lines = text.splitlines()
    assert lines[0].split() == ["node", "op", "output", "shape", "output", "bytes", "param", "bytes", "params",
                                "mult-adds"]
    assert "layer1/residual/res2/conv" in text and "1×128×16×16" in text
    assert lines[-3].split() == ["total", "4.92MB", "26.3MB", "6,573,120", f"{758_523_904 // 2:,}"]
    assert "0.38 G mult-adds (a multiply-add counted once" in lines[-2] and "0.76 GFLOPs counting both" in lines[-2]
    assert lines[-1] == ("input 0.01 MB, forward/backward pass 6.03 MB, params 26.29 MB: 32.33 MB in all "
                         "(torchinfo's sizes); every output once: 4.92 MB")
    assert len({len(line) for line in lines[:-2]}) == 1  # aligned columns


def test_memory_per_node_and_in_total(resnet9_graph):
    s = graphnet.summary(resnet9_graph, (2, 3, 32, 32))
    rows = {r.path: r for r in s.rows}
    assert rows["layer1/conv"].param_bytes == 4 * 64 * 128 * 9  # fp32 parameters; a BN's buffers are not counted
    assert rows["layer1/bn"].param_bytes == 4 * 2 * 128
    assert rows["layer1/conv"].activation_bytes == 4 * 2 * 128 * 32 * 32  # its output, batch included
    assert rows["layer1/pool"].activation_bytes == 4 * 2 * 128 * 16 * 16
    assert rows["layer1/residual/in"].activation_bytes == 0  # an identity holds no tensor of its own
    assert s.total_param_bytes == 4 * s.total_params and s.input_bytes == 4 * 2 * 3 * 32 * 32
    assert s.total_activation_bytes == sum(r.activation_bytes for r in s.rows)
    with_params = [r.activation_bytes for r in s.rows if r.params]
    assert s.forward_backward_bytes == 2 * sum(with_params)  # each output and its gradient
    assert s.total_bytes == s.input_bytes + s.forward_backward_bytes + s.total_param_bytes


def test_memory_is_what_torchinfo_shows_for_resnet18():
    # torchinfo 1.8.0's summary(resnet18(), (1, 3, 224, 224)): "Forward/backward pass size (MB): 39.75",
    # "Params size (MB): 46.76"; its input size is the data plus 64 bytes of the tensor object
    s = graphnet.summary(graphnet.from_module(torchvision.models.resnet18()), (1, 3, 224, 224))
    assert (s.forward_backward_bytes, s.total_param_bytes, s.input_bytes) == (39_747_392, 46_758_048, 602_112)


def test_memory_follows_the_dtype_the_modules_are_made_in(resnet9_graph):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        s = graphnet.summary(resnet9_graph, (1, 3, 32, 32))
    finally:
        torch.set_default_dtype(previous)
    assert s.total_param_bytes == 8 * s.total_params and s.input_bytes == 8 * 3 * 32 * 32


def test_outputs_limits_rows(resnet9_graph):
    s = graphnet.summary(resnet9_graph, (1, 3, 32, 32), outputs="layer1/pool")
    assert [r.path for r in s.rows][-1] == "layer1/pool" and "layer2/conv" not in s.shapes
    assert s.total_params == 1728 + 128 + 73728 + 256
    with pytest.raises(graphnet.SpecError, match="nope"):
        graphnet.summary(resnet9_graph, (1, 3, 32, 32), outputs="nope")


def test_several_inputs():
    g = graphnet.build({"a": conv(3, 8, inputs="x"), "b": conv(4, 8, kernel_size=1, inputs="y"),
                        "sum": add(inputs=["a", "b"])}, inputs=("x", "y"))
    s = graphnet.summary(g, {"x": (1, 3, 8, 8), "y": (1, 4, 8, 8)})
    assert s.shapes["sum"] == (1, 8, 8, 8)
    assert s.total_flops == 2 * 64 * 8 * (3 * 9 + 4)
    with pytest.raises(ValueError, match="y"):
        graphnet.summary(g, {"x": (1, 3, 8, 8)})


def test_linear_counts_and_shape_error_names_node():
    g = graphnet.build({"fc": linear(16, 4), "act": relu()})
    s = graphnet.summary(g, (5, 16))
    assert s.total_params == 16 * 4 + 4 and s.total_flops == 2 * 5 * 16 * 4
    with pytest.raises(graphnet.ShapeError, match="^fc: "):
        graphnet.summary(g, (5, 15))


class Project(torch.nn.Module):
    """A matmul by a parameter of its own, made from params it does not keep, after a ``len`` that
    torch.fx cannot trace: an ``instance`` node."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(c_in, c_out))

    def forward(self, x):
        return x[: len(x)] @ self.weight


def test_a_matmul_inside_an_instance_node_counts():
    graph = graphnet.from_module(torch.nn.Sequential(Project(16, 8), torch.nn.ReLU()))
    assert [graph[p].op for p in graph] == ["instance", "relu"]
    s = graphnet.summary(graph, (5, 16))
    assert [r.flops for r in s.rows] == [2 * 5 * 16 * 8, 0]
    assert s.total_macs == 5 * 16 * 8 and s.total_params == 16 * 8


def batched_product(a, b):
    return torch.bmm(a, b)


def test_a_bmm_in_a_function_node_counts():
    graphnet.register("test_batched_product", batched_product)
    graph = graphnet.build({"ab": ("test_batched_product", {}, ["a", "b"])}, inputs=("a", "b"))
    s = graphnet.summary(graph, {"a": (4, 3, 5), "b": (4, 5, 6)})
    assert s.shapes["ab"] == (4, 3, 6) and s.total_flops == 2 * 4 * 3 * 5 * 6


def test_a_parameter_node_has_parameter_bytes_and_no_output_of_its_own():
    graph = graphnet.build({"scale": ("parameter", {"shape": (1, 16)}, []), "out": product(inputs=["input", "scale"])})
    rows = {r.path: r for r in graphnet.summary(graph, (5, 16)).rows}
    assert (rows["scale"].param_bytes, rows["scale"].activation_bytes) == (4 * 16, 0)  # its output is its tensor
    assert (rows["out"].param_bytes, rows["out"].activation_bytes) == (0, 4 * 5 * 16)
