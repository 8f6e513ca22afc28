"""One exception family for everything a spec can get wrong; each message names the node."""


class SpecError(ValueError):
    """A spec or graph is invalid. ``path`` is the node (or namespace) at fault, if any."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class UnknownInputError(SpecError):
    """An input reference resolves to no node, namespace or graph input."""


class CycleError(SpecError):
    """The graph has a cycle, so it has no execution order."""


class UnknownOpError(SpecError):
    """A node names an op that is not registered."""


class ParamError(SpecError):
    """A node's params do not bind to its op's signature, or it has the wrong number of inputs."""


class DuplicatePathError(SpecError):
    """Two nodes have the same full path."""


class EmptyNamespaceError(SpecError):
    """A namespace (nested dict) holds no nodes."""


class ShapeError(SpecError):
    """A node failed at the first forward pass (usually mismatched shapes)."""


class ExportError(SpecError):
    """A network cannot be written in the format asked for (``graphnet.export``); ``path`` is the node that stops it."""
