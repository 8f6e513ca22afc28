"""Every registered pass's contract, checked on the zoo and traced torchvision networks: a markdown table.

    PYTHONPATH=. .venv/bin/python benchmarks/pass_contracts.py [--input-shape 3,32,32] [--batch 2]

Each cell is ``graphnet.check(net, pass)``: ``ok`` (with the largest output difference in eval
mode, and in train mode for exact passes), ``FAILED: ...``, ``no match`` (the pass finds nothing
to rewrite, or finds it already applied) or ``refused`` (the pass cannot rewrite this net; the
reason is printed below the table). The torchvision networks have random weights and 10 classes.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torchvision

import graphnet
from graphnet.rewrites import PASSES, NoMatchError, RewriteError
from graphnet.zoo import airbench94, resnet9

TORCHVISION = ("resnet18", "resnet50", "mobilenet_v2", "vgg11_bn", "squeezenet1_0", "efficientnet_b0")


def networks() -> dict[str, graphnet.Graph]:
    nets = {"resnet9": graphnet.build(resnet9.build()), "airbench94": graphnet.build(airbench94.build()),
            "airbench94 architecture": graphnet.build(airbench94.architecture())}
    for name in TORCHVISION:
        nets[name] = graphnet.from_module(torchvision.models.get_model(name, num_classes=10))
    return nets


def cell(net: graphnet.Graph, name: str, input_shape: tuple[int, ...], batch: int, notes: list[str],
         net_name: str) -> str:
    try:
        result = graphnet.check(net, name, input_shape=input_shape, batch=batch)
    except NoMatchError:
        return "no match"
    except RewriteError as e:
        notes.append(f"{name} on {net_name}: {e.message}")
        return "refused"
    if not result.ok:
        notes.append(f"{name} on {net_name}: {result.summary()}")
        return "**FAILED**"
    differences = " / ".join(f"{d:.1e}" for d in result.differences.values())
    return f"ok ({differences})" if differences else "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-shape", default="3,32,32")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    input_shape = tuple(int(d) for d in args.input_shape.split(","))
    warnings.simplefilter("ignore")  # notes of passes that skip a part
    start = time.perf_counter()
    nets = networks()
    notes: list[str] = []
    print(f"| pass | keeps | {' | '.join(nets)} |")
    print(f"|---|---|{'---|' * len(nets)}")
    for name, p in PASSES.items():
        cells = [cell(net, name, input_shape, args.batch, notes, net_name) for net_name, net in nets.items()]
        print(f"| `{name}` | {p.keeps} | {' | '.join(cells)} |", flush=True)
    print()
    for note in notes:
        print(f"- {note}")
    print(f"\n{len(PASSES)} passes × {len(nets)} networks in {time.perf_counter() - start:.0f} s "
          f"(inputs {args.batch}×{'×'.join(map(str, input_shape))})")


if __name__ == "__main__":
    main()
