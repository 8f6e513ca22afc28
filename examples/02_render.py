"""Draw ResNet-9: namespaces become nested boxes, the residual shows as a second arrow into `add`.

Run: python examples/02_render.py [OUT_DIR]      (default out/)
Needs a layout program: the system Graphviz `dot`, or `graphviz-pure` (installed with graphnet).
"""

import sys
from pathlib import Path

import graphnet

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
spec = graphnet.load_spec(Path(__file__).resolve().parents[1] / "specs" / "resnet9.py")
graph = graphnet.build(spec)

# Edge labels need the tensor shapes; summary finds them without computing anything (meta tensors).
shapes = graphnet.summary(graph, (1, 3, 32, 32)).shapes
for name in ("resnet9.svg", "resnet9.dot"):  # .dot is the Graphviz text: no layout program needed
    print("wrote", graphnet.render(graph, out / name, shapes=shapes))
