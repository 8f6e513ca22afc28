"""``graphnet`` command line: one module per command group, each importing what its commands need
only when they run.

Each command module defines ``add_parsers(subparsers)``, which adds its commands with
``parser.set_defaults(run=handler)``. Errors a user can fix (bad spec, bad data, bad training
options or checkpoint) are raised by the commands and printed here, the one place, as one line
with exit status 1; ``--debug`` (before or after the command) shows the traceback.

Under torchrun a failing rank records its error (``Type: message``) for the launcher; under
graphnet's own launcher (``graphnet train --nproc``), which prints the one line naming the
rank, the rank itself prints nothing unless ``--debug``.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import warnings

from ..data import DataError
from ..errors import SpecError
from ..render import RenderError
from ..train import DistributedError, Stopped, TrainError
from ..train.launch import launched, report_errors
from . import ablate, check, diff, eval, export, render, train, tricks, trim

# the modules that add command groups, in the order --help lists them
COMMAND_MODULES = (render, tricks, check, train, trim, eval, ablate, diff, export)
# exceptions that are the user's to fix: reported in one line
USER_ERRORS = (SpecError, DataError, TrainError, RenderError, FileNotFoundError, DistributedError)


class _Version(argparse.Action):
    """``--version``: the package version, and the git commit when running from a checkout."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from ..train.provenance import git_commit, graphnet_version

        commit = git_commit()
        print(f"graphnet {graphnet_version()}" + (f" (git {commit})" if commit else ""))
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line too (the usage of ``graphnet train`` alone is a screenful); exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphnet", description="Declarative graph networks and the bag of tricks.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    for command in sub.choices.values():  # --debug after the command too; SUPPRESS keeps one given before
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.command_line = shlex.join(["graphnet", *argv])
    args.argv = argv  # as typed: what graphnet train --nproc runs again under torchrun
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _notes(args.command, warnings.showwarning)
            return report_errors(args.run)(args) or 0
    except USER_ERRORS as e:
        if args.debug:
            raise
        if not launched():
            print(f"graphnet {args.command}: error: {e}", file=sys.stderr)
        return 1
    except Exception:
        if args.debug or not launched():
            raise
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C, or a signal that stops a run (Stopped)
        stopped = isinstance(e, Stopped)
        print(f"graphnet {args.command}: {e if stopped else 'interrupted'}", file=sys.stderr)
        return 128 + (e.signum if stopped else signal.SIGINT)


def _notes(command: str, show):
    """``warnings.showwarning`` that prints a pass's note (``PassNote``) as one line on stderr."""
    from ..rewrites import PassNote

    def showwarning(message, category, *args, **kwargs):
        if issubclass(category, PassNote):
            print(f"graphnet {command}: note: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    return showwarning


if __name__ == "__main__":
    sys.exit(main())
