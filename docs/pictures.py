"""Draw the diff pictures in docs/img/: each rewrite pass on one block, and the README's picture.

Run from the repository root: ``python docs/pictures.py`` (uses graphviz-pure or the system dot).
Each pass is applied where Page's recipe applies it (after the passes before it), and the picture
shows the block before and after as one diff: added green, removed dashed grey, changed orange.
"""

from pathlib import Path

import graphnet
from graphnet.losses import cross_entropy
from graphnet.rewrites import split_passes

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"


def block(graph: graphnet.Graph, namespace: str) -> graphnet.Graph:
    """The namespace of ``graph`` as a graph of its own, its first node reading the input."""
    return graphnet.build({namespace: graph.to_spec()[namespace]})


def main() -> None:
    base = graphnet.build(graphnet.load_spec(ROOT / "specs" / "resnet9.py"))
    recipe = split_passes([("pool_before_norm", {}), ("celu", {}), ("ghost_bn", {}), ("freeze_bn_scale", {}),
                           ("whiten_input", {})])["net"]
    before = base
    blocks = {"pool_before_norm": "layer2", "celu": "prep", "ghost_bn": "prep", "freeze_bn_scale": "prep",
              "whiten_input": "prep"}
    pictures = {}
    for name, params in recipe:
        after = graphnet.rewrite(before, [(name, params)])
        pictures[name] = graphnet.diff(block(before, blocks[name]), block(after, blocks[name]))
        before = after
    pictures["pool_before_act"] = graphnet.diff(block(base, "layer2"),
                                                block(graphnet.rewrite(base, ["pool_before_act"]), "layer2"))
    loss = graphnet.build(cross_entropy(), inputs=("logits", "target"))
    pictures["label_smoothing"] = graphnet.diff(loss, graphnet.rewrite(loss, ["label_smoothing"]))
    for name, d in pictures.items():
        print(graphnet.render(d, IMG / f"pass_{name}.svg", rankdir="LR"))
    print(graphnet.render(graphnet.diff(base, graphnet.rewrite(base, ["tta_flip"])), IMG / "pass_tta_flip.svg",
                          depth=1, rankdir="LR"))
    final = graphnet.build(graphnet.load_spec(ROOT / "specs" / "bag_of_tricks.py"))
    layer1 = graphnet.diff(block(base, "layer1"), block(final, "layer1"))
    print(graphnet.render(layer1, IMG / "layer1_to_bag_of_tricks.svg", rankdir="LR", fold=True))


if __name__ == "__main__":
    main()
