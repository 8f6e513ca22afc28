"""``graphnet train --nproc N``: start ``torchrun`` on this machine for the user.

The launcher checks ``N`` against the machine (GPUs on CUDA, cores on the CPU) before
anything starts, runs torchrun's own agent (``torch.distributed.run``) in this process with
graphnet's command line less ``--nproc``, and when a rank fails (torchrun then stops the
others) says in one line which rank failed first and why.

The cause comes from torchrun's per-rank error file (``TORCHELASTIC_ERROR_FILE``): a rank
records its failure with :func:`record_error` or :func:`report_errors`, in the JSON form of
torch's ``ErrorHandler`` plus a nanosecond time, so the first failure is found even when the
others fail within the same second (a peer's broken connection). A rank killed by a signal
writes nothing; the line then names the signal.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .errors import DistributedError

NPROC = "--nproc"
ERROR_FILE = "TORCHELASTIC_ERROR_FILE"  # set by torchrun for each rank
LAUNCHED = "GRAPHNET_LAUNCHED"  # set by the launcher: it reports a rank's failure, so the rank need not


def available_processes(device: torch.device | str) -> tuple[int, str]:
    """``(most, what)``: how many processes ``--nproc`` may start on the (resolved) ``device``:
    one per GPU on CUDA, else one per CPU core."""
    if torch.device(device).type == "cuda":
        return torch.cuda.device_count(), "GPUs"
    return os.cpu_count() or 1, "CPU cores"


def check_nproc(nproc: int, device: torch.device | str) -> None:
    """Refuse ``nproc`` below 1 or above :func:`available_processes`, in one line."""
    most, what = available_processes(device)
    if not 1 <= nproc <= most:
        raise DistributedError(f"{NPROC} {nproc}: this machine has {most} {what}, so 1 to {most} processes")


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` less ``--nproc N`` / ``--nproc=N`` (what each rank runs)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == NPROC:
            skip = True
        elif not arg.startswith(NPROC + "="):
            out.append(arg)
    return out


def torchrun_args(argv: Sequence[str], nproc: int, log_dir: str, module: str = "graphnet.cli") -> list[str]:
    """torchrun's arguments that run ``python -m <module> <argv less --nproc>`` in ``nproc``
    processes on this machine (``--standalone``: a rendezvous on a free local port)."""
    return ["--standalone", f"--nproc-per-node={nproc}", f"--log-dir={log_dir}", "-m", module, *without_nproc(argv)]


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run graphnet's ``argv`` under torchrun in ``nproc`` processes (:func:`check_nproc` checks
    them first) and return the exit status: 0, or 1 after the one line of :func:`run_torchrun`.
    Each CPU rank gets ``cores // nproc`` threads unless ``OMP_NUM_THREADS`` is set."""
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    with tempfile.TemporaryDirectory(prefix="graphnet-torchrun-") as log_dir:
        return run_torchrun(torchrun_args(argv, nproc, log_dir))


def run_torchrun(args: Sequence[str], console=None) -> int:
    """Run torchrun (``torch.distributed.run``) with ``args`` in this process. On a rank's
    failure print ``graphnet: rank R failed: CAUSE; the other ranks were stopped`` on
    ``console`` (default stderr) and return 1."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    console = console or sys.stderr
    os.environ[LAUNCHED] = "1"
    agent_log = logging.getLogger("torch.distributed.elastic")
    level = agent_log.level
    agent_log.setLevel(logging.CRITICAL)  # its failure report is the line below
    try:
        run(get_args_parser().parse_args(list(args)))
    except ChildFailedError as e:
        rank, cause = first_failure(e.failures)
        print(f"graphnet: rank {rank} failed: {cause}; the other ranks were stopped", file=console, flush=True)
        return 1
    finally:
        agent_log.setLevel(level)
        os.environ.pop(LAUNCHED, None)
    return 0


def first_failure(failures: dict[int, Any]) -> tuple[int, str]:
    """``(rank, cause)`` of the failure that came first, from torchrun's ``ProcessFailure``s.

    By torch's timestamp (seconds); within one second a failure with no record (a signal, a
    crash outside Python: a cause, not a peer's broken connection) before recorded ones, and
    recorded ones by the nanosecond time of :func:`record_error`.
    """
    def when(item: tuple[int, Any]) -> tuple[int, int, int]:
        ns = _extra(item[1]).get("time_ns")
        return (int(item[1].timestamp), 1, int(ns)) if ns else (int(item[1].timestamp), 0, 0)

    rank, failure = min(failures.items(), key=when)
    message = failure.message
    if isinstance(message, dict):
        return rank, str(message.get("message", "")) or f"exit code {failure.exitcode}"
    if failure.exitcode < 0:
        return rank, f"killed by signal {-failure.exitcode} ({failure.signal_name()})"
    return rank, f"exit code {failure.exitcode} (it recorded no cause)"


def _extra(failure: Any) -> dict[str, Any]:
    message = failure.message
    return message.get("extraInfo", {}) if isinstance(message, dict) else {}


# -- in each rank ------------------------------------------------------------------------------

def record_error(message: str, trace: str = "") -> bool:
    """Write this rank's failure ``message`` (one line) to torchrun's error file for the
    launcher; ``trace`` is the traceback torchrun's own report shows. False when not under
    torchrun (no error file to write)."""
    path = os.environ.get(ERROR_FILE)
    if not path:
        return False
    extra = {"py_callstack": trace or message, "timestamp": str(int(time.time())), "time_ns": str(time.time_ns())}
    with open(path, "w") as f:
        json.dump({"message": {"message": message, "extraInfo": extra}}, f)
    return True


def launched() -> bool:
    """Whether graphnet's launcher reports this rank's failures (so the rank need not print them)."""
    return os.environ.get(LAUNCHED) == "1"


def report_errors(fn: Callable) -> Callable:
    """Decorate a rank's main: an exception it raises is recorded (``Type: message``) and re-raised."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            record_error(f"{type(e).__name__}: {e}".splitlines()[0], traceback.format_exc())
            raise

    return wrapper
