"""graphnet: networks as dict specs, compiled to torch.fx code, transformed by graph rewrites."""

from .compile import Network, compile
from .errors import (CycleError, DuplicatePathError, EmptyNamespaceError, ParamError, ShapeError, SpecError,
                     UnknownInputError, UnknownOpError)
from .graph import Graph, Node, build, replace_op
from .ops import REGISTRY, get_op, register
from .render import render
from .rewrites import ANY, any_of, bound, explain, initialise, match, pat, register_pass, rewrite, rule
from .spec import from_json, load_spec, to_json
from .summary import Row, Summary, summary
from .trace import from_module

__all__ = [
    "CycleError", "DuplicatePathError", "EmptyNamespaceError", "Graph", "Network", "Node", "ParamError",
    "REGISTRY", "Row", "ShapeError", "SpecError", "Summary", "UnknownInputError", "UnknownOpError", "build",
    "compile", "from_json", "get_op", "initialise", "load_spec", "register", "render", "rewrite", "summary",
    "to_json",
    "ANY", "any_of", "bound", "explain", "match", "pat", "register_pass", "replace_op", "rule",
    "from_module",
]

from .diff import GraphDiff, diff  # noqa: E402

__all__ += ["GraphDiff", "diff"]
