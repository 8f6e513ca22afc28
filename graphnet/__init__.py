"""graphnet: networks as dict specs, compiled to torch.fx code, transformed by graph rewrites."""

from .compile import Network, compile
from .diff import GraphDiff, diff
from .errors import (CycleError, DuplicatePathError, EmptyNamespaceError, ExportError, ParamError, ShapeError,
                     SpecError, UnknownInputError, UnknownOpError)
from .export import export
from .graph import Graph, Node, build
from .html import notebook_html
from .ops import REGISTRY, get_op, register
from .render import render, to_svg
from .rewrites import ANY, any_of, bound, check, explain, initialise, match, pat, register_pass, rewrite, rule
from .spec import from_json, to_json
from .spec_source import load_spec
from .summary import Row, Summary, summary
from .trace import from_module

# A Graph in a notebook shows its drawing. Set here, above graph.py and the drawing modules, so that
# graph.py imports no drawing code.
Graph._repr_svg_ = to_svg
Graph._repr_html_ = notebook_html

__all__ = [
    "ANY", "CycleError", "DuplicatePathError", "EmptyNamespaceError", "ExportError", "Graph", "GraphDiff", "Network",
    "Node", "ParamError", "REGISTRY", "Row", "ShapeError", "SpecError", "Summary", "UnknownInputError", "UnknownOpError",
    "any_of", "bound", "build", "check", "compile", "diff", "explain", "export", "from_json", "from_module", "get_op",
    "initialise", "load_spec", "match", "pat", "register", "register_pass", "render", "rewrite", "rule", "summary",
    "to_json",
]
