"""``graphnet`` command line: one module per command group, imported only when used.

Each command module defines ``add_parsers(subparsers)``, which adds its commands with
``parser.set_defaults(run=handler)``. Errors a user can fix (bad spec, bad data) print one
line and exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import SpecError

# command group module -> the commands it adds (for --help before import)
COMMAND_MODULES = ("render", "tricks", "train")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphnet", description="Declarative graph networks and the bag of tricks.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            continue  # a command group not written yet
        module.add_parsers(sub)
    return p


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix: reported in one line."""
    errors: list[type[BaseException]] = [SpecError, FileNotFoundError]
    try:
        from ..data import DataError
        errors.append(DataError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except user_errors() as e:
        if args.debug:
            raise
        print(f"graphnet {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"graphnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
