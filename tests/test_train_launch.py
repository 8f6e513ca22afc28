"""graphnet's torchrun launcher: --nproc checked before start, and a failing rank named in one line."""

import os
import subprocess
import sys
import textwrap

import pytest

from graphnet.train.distributed import DistributedError
from graphnet.train.launch import check_nproc, torchrun_args, without_nproc

RANK_ONE_FAILS = """
    import os
    import torch.distributed as dist
    from graphnet.train.launch import report_errors

    @report_errors
    def main():
        dist.init_process_group("gloo")
        dist.barrier()
        if dist.get_rank() == 1:
            raise ValueError("rank one cannot go on")
        dist.barrier()  # rank 0 waits here for a rank that is gone

    main()
"""

GRAPHNET_RANKS = """
    import torch
    from graphnet.train.distributed import from_env, process_group

    with process_group(from_env("cpu")) as dist:
        assert (dist.world_size, dist.local_rank) == (2, dist.rank) and dist.distributed
        total, = dist.sum_(torch.tensor([dist.rank + 1]))
        assert total.item() == 3
"""


def launcher(args: list[str]) -> subprocess.CompletedProcess:
    """run_torchrun(args) in a fresh process (torchrun's agent installs signal handlers)."""
    code = f"import sys; from graphnet.train.launch import run_torchrun; sys.exit(run_torchrun({args!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_failing_rank_is_named_with_its_cause_in_one_line(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text(textwrap.dedent(RANK_ONE_FAILS))
    done = launcher(["--standalone", "--nproc-per-node=2", f"--log-dir={tmp_path / 'logs'}", str(script)])
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("graphnet:")]
    assert lines == ["graphnet: rank 1 failed: ValueError: rank one cannot go on; the other ranks were stopped"]
    assert "Root Cause" not in done.stderr  # torchrun's own table is replaced by the line


def test_torchruns_ranks_join_graphnets_process_group(tmp_path):
    script = tmp_path / "passes.py"
    script.write_text(textwrap.dedent(GRAPHNET_RANKS))
    done = launcher(["--standalone", "--nproc-per-node=2", f"--log-dir={tmp_path / 'logs'}", str(script)])
    assert done.returncode == 0, done.stderr


def test_nproc_beyond_the_machine_is_refused_before_start(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    check_nproc(2, "cpu")
    with pytest.raises(DistributedError, match="--nproc 3: this machine has 2 CPU cores, so 1 to 2 processes"):
        check_nproc(3, "cpu")
    with pytest.raises(DistributedError, match="--nproc 0"):
        check_nproc(0, "cpu")


def test_torchrun_runs_graphnet_without_nproc():
    argv = ["train", "--nproc", "2", "--epochs", "1", "--nproc=4", "--subset", "100"]
    assert without_nproc(argv) == ["train", "--epochs", "1", "--subset", "100"]
    assert torchrun_args(argv, 2, "/tmp/logs") == [
        "--standalone", "--nproc-per-node=2", "--log-dir=/tmp/logs", "-m", "graphnet.cli",
        "train", "--epochs", "1", "--subset", "100"]


def test_the_first_failure_is_found_and_a_signal_is_named(tmp_path, monkeypatch):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from graphnet.train.launch import first_failure, record_error

    files = {}
    for rank, message in [(1, "ValueError: first"), (0, "RuntimeError: Connection closed by peer")]:
        files[rank] = str(tmp_path / f"error{rank}.json")
        monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", files[rank])
        assert record_error(message)
    failures = {r: ProcessFailure(r, 100 + r, 1, files[r]) for r in (0, 1)}
    assert first_failure(failures) == (1, "ValueError: first")
    killed = {2: ProcessFailure(2, 102, -9, str(tmp_path / "none.json"))}
    assert first_failure(killed) == (2, "killed by signal 9 (SIGKILL)")
    killed[2].timestamp = failures[1].timestamp
    assert first_failure({**killed, **failures})[0] == 2  # within a second, the signal is the cause
    killed[2].timestamp += 1
    assert first_failure({**killed, **failures})[0] == 1
    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE")
    assert not record_error("nowhere to write")
