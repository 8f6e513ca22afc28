"""graphnet's own imports, read with ``ast``: no cycles, none through importlib, every one pointing down.

Every import statement counts, at the top of a module or inside a function. A module's
implicit import of its parent packages (``graphnet/__init__``, ``graphnet/train/__init__``)
is not an edge: Python runs those first whatever the module imports.
"""

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "graphnet"

# The layers, bottom up (the style brief's order, with the modules it leaves out placed between):
# a module imports only modules of its own layer or below.
LAYERS = [
    ["errors", "files"],
    ["ops"],
    ["spec", "losses"],
    ["graph"],
    ["compile", "trace"],
    ["summary", "labels", "diff", "view", "html", "render", "spec_source", "export"],
    ["rewrites"],
    ["", "zoo"],  # "" is the package itself, graphnet/__init__: the public API over the layers below
    ["data"],
    ["train"],
    ["cli"],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path, root: Path) -> str:
    parts = ["graphnet", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The graphnet modules that ``module`` imports anywhere in its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from x import y``: y is a submodule of x, or a name defined in x
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # ``import graphnet.a.b`` names graphnet.a.b
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def import_graph() -> nx.DiGraph:
    found = modules()
    g = nx.DiGraph()
    g.add_nodes_from(found)
    for name, path in found.items():
        g.add_edges_from((name, target) for target in imported(name, path, set(found)))
    return g


def layer(module: str) -> int:
    return LAYER[module.removeprefix("graphnet").removeprefix(".").split(".")[0]]


def test_the_import_reader_sees_every_form_of_import(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub" / "c.py").write_text(
        "from .. import a\nfrom ..b import thing\nimport graphnet.sub\n"
        "def f():\n    from . import missing_name\n    import graphnet.a\n")
    found = modules(tmp_path)
    assert set(found) == {"graphnet", "graphnet.a", "graphnet.b", "graphnet.sub", "graphnet.sub.c"}
    assert imported("graphnet.sub.c", found["graphnet.sub.c"], set(found)) == {
        "graphnet.a", "graphnet.b", "graphnet.sub"}


def test_no_import_cycles():
    g = import_graph()
    assert len(g) > 50 and g.number_of_edges() > 100  # the reader found graphnet's modules and their imports
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)
    if cycles:
        cycle = nx.find_cycle(g.subgraph(cycles[0]))
        raise AssertionError("import cycle: " + " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
                             + f" ({len(cycles)} cycle(s) in all, the first of {len(cycles[0])} modules)")


def test_imports_point_down_the_layers():
    g = import_graph()
    unplaced = sorted(m for m in g if m.removeprefix("graphnet").removeprefix(".").split(".")[0] not in LAYER)
    assert not unplaced, f"modules with no layer in this test: {unplaced}"
    upward = [f"{a} imports {b}" for a, b in g.edges if layer(b) > layer(a)]
    assert not upward, "imports pointing up the layers: " + "; ".join(sorted(upward))


def test_no_graphnet_module_is_imported_through_importlib():
    # importlib imports what a user names (--import MODULE, a JSON spec's recorded modules, a spec
    # file or module:attr); a graphnet module imported that way would be an edge the reader cannot see.
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func not in ("import_module", "__import__", "reload"):
                continue
            where = f"{name} line {node.lineno}"
            assert func != "reload" and not any(k.arg == "package" for k in node.keywords), where
            named = ast.unparse(node.args[0])
            assert "__name__" not in named and "__package__" not in named and "graphnet" not in named, where
