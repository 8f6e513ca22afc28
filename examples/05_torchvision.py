"""Page's tricks on a torchvision ResNet-18: trace it into a spec, rewrite it, draw both, train it briefly.

Run: python examples/05_torchvision.py [OUT_DIR] [DATA]      (default out/; DATA: an ImageFolder
.tar.gz such as ../shared/data/cifar10-jpeg.tar.gz, whose class-balanced slice it trains on;
without DATA, random images, so that the example runs anywhere in seconds)
"""

import dataclasses
import sys
from pathlib import Path

import torch
import torchvision

import graphnet
from graphnet.data import Dataset, load_dataset
from graphnet.train import Options, Trainer, get_recipe, make_setup

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
torch.manual_seed(0)

# 1. Any nn.Module becomes an editable graph; node paths are the module's own names.
resnet = torchvision.models.resnet18(num_classes=10)
graph = graphnet.from_module(resnet)
print(graph)
print("a block:", [n.path for n in graph.nodes if n.path.startswith("layer1/0/")])

# 2. Page's tricks are graph rewrites (resnet18 has no output scale: final_scale=None skips it).
# Ghost batches of 16 samples: the batch of 32 below splits in two.
tricks = graphnet.rewrite(graph, [("ghost_bn", {"num_splits": 2}), "celu", ("freeze_bn_scale", {"final_scale": None})])
print(tricks)

# 3. The same weights load into both: the state_dict keys are the module's.
net = graphnet.compile(graph)
net.load_state_dict(resnet.state_dict())
x = torch.randn(2, 3, 32, 32)
with torch.no_grad():
    print("max difference to torchvision (eval):", (net.eval()(x) - resnet.eval()(x)).abs().max().item())

# 4. Draw the two graphs (.dot: no layout program needed; .svg with Graphviz or graphviz-pure).
for g, name in ((graph, "resnet18.dot"), (tricks, "resnet18_tricks.dot")):
    print("wrote", graphnet.render(g, out / name))

# 5. Two tiny epochs on the CPU with graphnet's trainer.
if len(sys.argv) > 2:
    data = load_dataset(sys.argv[2]).subset(train=256, test=64)
else:
    g = torch.Generator().manual_seed(0)
    images = lambda n: torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)  # noqa: E731
    labels = lambda n: torch.arange(n) % 10  # noqa: E731
    data = Dataset(images(64), labels(64), images(32), labels(32), [str(i) for i in range(10)])
# The baseline recipe cut to 2 epochs of batches of 32, at a peak lr for a net that Page did not tune.
recipe = dataclasses.replace(get_recipe("baseline").with_epochs(2), batch_size=32, lr_values=(0.0, 0.05, 0.0))
setup = make_setup(tricks, recipe)
result = Trainer(setup.graphs, recipe, data, Options(device="cpu")).run(seed=0)
for row in result.rows:
    print(f"epoch {row['epoch']}: train loss {row['train_loss']:.3f}, test accuracy {row['test_acc']:.3f}")
