"""``graphnet`` command line: one module per command group, imported only when used.

Each command module defines ``add_parsers(subparsers)``, which adds its commands with
``parser.set_defaults(run=handler)``. Errors a user can fix (bad spec, bad data) print one
line and exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..data import DataError
from ..errors import SpecError
from ..render import RenderError

# the modules that add command groups
COMMAND_MODULES = ("render", "tricks", "train", "diff")
# exceptions that are the user's to fix: reported in one line
USER_ERRORS = (SpecError, DataError, RenderError, FileNotFoundError)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphnet", description="Declarative graph networks and the bag of tricks.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(f"graphnet {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"graphnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
