"""Each export format on each network at full size: the max output difference from the compiled graph, and the
seconds the export took.

    PYTHONPATH=. .venv/bin/python benchmarks/export.py [--batch 16] [--size 32]

.py: the file exec'd in this process (tests/test_export.py runs the small versions in a process without
graphnet), its Network loaded with the compiled graph's state_dict, compared in eval and in train mode
(dropout seeded alike); .pt2: torch.export.load(...).module() in eval mode; .onnx: onnxruntime on the CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torchvision

import graphnet
from graphnet.zoo import airbench94, resnet9

NETWORKS = {
    "resnet9": lambda: graphnet.build(resnet9.build()),
    "bag_of_tricks": lambda: graphnet.build(graphnet.load_spec("specs/bag_of_tricks.py")),
    "airbench94": lambda: graphnet.build(airbench94.build()),
    "mobilenet_v2": lambda: graphnet.from_module(torchvision.models.mobilenet_v2(num_classes=10)),
    "swin_t": lambda: graphnet.from_module(torchvision.models.swin_t(num_classes=10)),
    "vit_b_16": lambda: graphnet.from_module(torchvision.models.vit_b_16(image_size=32, num_classes=10),
                                             example_input=torch.randn(1, 3, 32, 32)),
}


def run(net: torch.nn.Module, x: torch.Tensor, training: bool | None) -> torch.Tensor:
    """``net`` on ``x`` in train or eval mode (None: as it is, for a loaded program), dropout seeded."""
    if training is not None:
        net.train(training)
    torch.manual_seed(0)
    with torch.no_grad():
        return net(x)


def python_difference(net: graphnet.Network, path: Path, x: torch.Tensor) -> str:
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    exported = namespace["build"]()
    state = net.state_dict()
    exported.load_state_dict(state)
    diffs = []
    for training in (False, True):
        saved = {k: v.clone() for k, v in state.items()}
        diffs.append((run(exported, x, training) - run(net, x, training)).abs().max().item())
        net.load_state_dict(saved)
        exported.load_state_dict(saved)
    return f"{diffs[0]:.2g} / {diffs[1]:.2g}"


def program_difference(net: graphnet.Network, path: Path, x: torch.Tensor) -> str:
    if path.suffix == ".pt2":
        got = run(torch.export.load(path).module(), x, None)
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path))
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    return f"{(got - run(net, x, False)).abs().max().item():.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    shape = (args.batch, 3, args.size, args.size)
    print("| network | nodes | .py eval / train | .pt2 | .onnx | seconds (.py, .pt2, .onnx) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make in NETWORKS.items():
            torch.manual_seed(0)
            net = graphnet.compile(make())
            x = torch.randn(shape)
            cells, seconds = [], []
            for suffix in (".py", ".pt2", ".onnx"):
                path = Path(folder) / f"{name}{suffix}"
                start = time.perf_counter()
                try:
                    graphnet.export(net, path, input_shape=shape)
                except graphnet.ExportError as e:
                    cells.append(f"refused: {e}")
                    seconds.append("-")
                    continue
                seconds.append(f"{time.perf_counter() - start:.1f}")
                cells.append(python_difference(net, path, x) if suffix == ".py" else program_difference(net, path, x))
            print(f"| {name} | {len(net.spec_graph)} | {' | '.join(cells)} | {', '.join(seconds)} |", flush=True)


if __name__ == "__main__":
    main()
