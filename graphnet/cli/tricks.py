"""``graphnet tricks``: the rewrite passes, by family (Page's, airbench's, the user's), and the training-loop tricks."""

from __future__ import annotations

import argparse

# What each contract (``Pass.keeps``) says, for ``graphnet tricks PASS``.
KEEPS = {"exact": "exact (the same function in train and eval mode, weights carried over)",
         "eval": "eval (the same eval-mode function, weights carried over)",
         "changes": "changes (the function changes on purpose; the output shape is kept)"}

# Page's tricks that live in the training loop, not in the graph: (name, what it does).
TRAINING_TRICKS = (
    ("gpu_preprocessing", "keep the data set on the GPU and normalise and pad it there, once"),
    ("batch_augmentation", "draw random crops, flips and cutout for a whole batch at once, on the GPU"),
    ("ema", "evaluate an exponential moving average of the weights and BN stats (momentum 0.99 every 5 steps)"),
)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tricks", help="list the rewrite passes (Page's, airbench's) and training-loop tricks",
                              description="List the rewrite passes (for --rewrite and recipes) by family with their "
                                          "params, the graph each applies to and what it changes; then the "
                                          "tricks that are trainer options.")
    p.add_argument("name", nargs="?", metavar="PASS", help="show this pass's full documentation")
    p.add_argument("--explain", nargs=2, metavar=("PASS", "SPEC"),
                   help="where a rule pass matches SPEC, and its near misses: which node broke the pattern and why")
    p.set_defaults(run=run_tricks)


def run_tricks(args: argparse.Namespace) -> int:
    from ..rewrites import FAMILIES, PASSES
    from ..rewrites.registry import get_pass

    if args.explain:
        return explain_pass(*args.explain)
    if args.name:
        p = get_pass(args.name)
        after = f"; after {', '.join(p.after)} where both apply" if p.after else ""
        print(f"{p.name}{p.params_str()}  [applies to the {p.applies_to} graph{after}; keeps: {KEEPS[p.keeps]}]"
              f"\n\n{p.doc}")
        return 0
    print("Rewrite passes (graphnet.rewrite, --rewrite NAME[:k=v,...]), by family, with the graph each applies to "
          "and what it keeps (graphnet check PASS SPEC verifies it):")
    shipped = {name for names in FAMILIES.values() for name in names}
    families = {**FAMILIES, "registered by your code": tuple(n for n in PASSES if n not in shipped)}
    for family, names in families.items():
        if names:
            print(f"\n {family}:")
        for p in map(get_pass, names):
            print(f"  {p.applies_to:<5} {p.keeps:<7} {p.name}{p.params_str()}\n                {p.doc.splitlines()[0]}")
    print("\nTraining-loop tricks (trainer options, not rewrites):")
    width = max(len(name) for name, _ in TRAINING_TRICKS)
    for name, doc in TRAINING_TRICKS:
        print(f"  {name:<{width}}  {doc} (trainer option)")
    return 0


def explain_pass(name: str, spec: str) -> int:
    """Print where the rule pass ``name`` matches ``spec`` and its near misses, nearest first."""
    from ..graph import build
    from ..rewrites import explain, match
    from ..rewrites.rules import pattern_str, rule_of
    from ..spec_source import load_spec

    pattern = rule_of(name).pattern
    graph = build(load_spec(spec))
    found = match(graph, pattern)
    print(f"{name}: {pattern_str(pattern)}")
    print(f"matches in {spec}: " + ("; ".join(" -> ".join(m.nodes) for m in found) or "none"))
    misses = explain(graph, pattern)
    if misses:
        print("near misses, nearest first:")
        for miss in misses:
            print(f"  {miss}")
    return 0
