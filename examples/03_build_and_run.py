"""Compile ResNet-9 to a plain nn.Module, train one step, save and load its weights.

Run: python examples/03_build_and_run.py [OUT_DIR]      (default out/)
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import graphnet

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
torch.manual_seed(0)
spec = graphnet.load_spec(Path(__file__).resolve().parents[1] / "specs" / "resnet9.py")
graph = graphnet.build(spec)
print(graphnet.summary(graph, (1, 3, 32, 32)))

net = graphnet.compile(graph)       # a torch.fx GraphModule: straight-line code, one call per node
print(net.code)                     # the generated forward

x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
loss = F.cross_entropy(net(x), y)
loss.backward()
optimizer.step()
print(f"one step: loss {loss.item():.3f}")

# Submodules sit at their node paths, so state_dict keys read like the spec.
print("a few state_dict keys:", list(net.state_dict())[:3])
out.mkdir(parents=True, exist_ok=True)
torch.save(net.state_dict(), out / "resnet9.pt")
fresh = graphnet.compile(graph)
fresh.load_state_dict(torch.load(out / "resnet9.pt"))
net.eval()
fresh.eval()
with torch.no_grad():
    assert torch.equal(net(x), fresh(x))
print("saved and reloaded:", out / "resnet9.pt")
