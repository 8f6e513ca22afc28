"""Every torchvision classification builder through ``graphnet.from_module``: the table in benchmarks/README.md.

    PYTHONPATH=. python benchmarks/trace_sweep.py [NAME ...] [--timm]

For each model of ``torchvision.models.list_models(module=torchvision.models)`` (random
weights; 64x64 inputs, 224 for swin and maxvit, ``image_size=64`` for vit), or each timm model
named in ``TIMM`` with ``--timm`` (at its default input size): whether it imports, the largest
difference from the module in eval and in train mode (the same dropout seed), whether its
spec round-trips through JSON, and how many ``instance`` nodes it has. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import torch

import graphnet

TIMM = ["resnet18", "resnet50d", "efficientnet_b0", "mobilenetv3_small_100", "convnext_atto", "convnext_tiny",
        "vit_tiny_patch16_224", "deit_tiny_patch16_224", "regnetx_002", "densenet121", "mixer_s16_224",
        "levit_128s"]


def torchvision_model(name: str) -> tuple[torch.nn.Module, int]:
    import torchvision

    kwargs = {"image_size": 64} if name.startswith("vit") else {}
    return torchvision.models.get_model(name, weights=None, **kwargs), 224 if name.startswith(("swin", "maxvit")) \
        else 64


def timm_model(name: str) -> tuple[torch.nn.Module, int]:
    import timm

    model = timm.create_model(name, pretrained=False)
    return model, model.pretrained_cfg["input_size"][-1]


def row(name: str, make) -> str:
    torch.manual_seed(0)
    module, size = make(name)
    x = torch.randn(2, 3, size, size)
    start = time.perf_counter()
    try:
        graph = graphnet.from_module(module, example_input=x)
    except graphnet.SpecError as e:
        return f"| {name} | no: {str(e)[:120]} | | | |"
    net = graphnet.compile(graph)
    net.load_state_dict(module.state_dict())
    diff = 0.0
    for training in (False, True):
        module.train(training)
        net.train(training)
        with torch.no_grad():
            torch.manual_seed(1)
            want = module(x)
            torch.manual_seed(1)
            diff = max(diff, (want - net(x)).abs().max().item())
    instances = sum(n.op == "instance" for n in graph.nodes)
    try:
        json_ok = graphnet.build(graphnet.from_json(graphnet.to_json(graph.to_spec()))) == graph
    except graphnet.SpecError:
        json_ok = False
    return (f"| {name} | yes ({len(graph)} nodes, {time.perf_counter() - start:.0f} s) | {diff:.1e} | "
            f"{'yes' if json_ok else 'no'} | {instances} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--timm", action="store_true", help="the timm models of TIMM instead of torchvision's")
    args = parser.parse_args()
    if args.timm:
        names, make = args.names or TIMM, timm_model
    else:
        import torchvision

        names, make = args.names or torchvision.models.list_models(module=torchvision.models), torchvision_model
    print("| model | imports | max difference (eval, train) | JSON | instance nodes |\n|---|---|---|---|---|",
          flush=True)
    for name in names:
        print(row(name, make), flush=True)


if __name__ == "__main__":
    main()
