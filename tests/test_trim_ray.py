"""The Ray engine gives the runs the embedded engine gives, for the same jobs (2 runs on 2 CPUs),
and ``graphnet trim --engine ray`` runs end to end."""

import json

import pytest
import torch

from graphnet.train import Options, make_setup
from graphnet.train.engine import Embedded, make_engine
from graphnet.train.trim import TrialData, train_trial
from test_cli_train import _run, archive, cache  # noqa: F401  (fixtures: the coloured archive, a cache folder)
from test_train_loop import coloured_dataset, small, tiny_net  # noqa: F401  (fixture)
from test_trim_real import TINY


def figures(run):
    """A run's seed, accuracy and per-epoch losses and accuracies: all but its times."""
    return run.seed, run.test_acc, [(r["train_loss"], r["train_acc"], r["test_loss"], r["test_acc"]) for r in run.rows]


def test_embedded_and_ray_give_the_same_runs(tiny_net):  # noqa: F811
    ray = pytest.importorskip("ray")
    setup = make_setup(tiny_net, small("baseline", batch_size=32))
    # fp32 pinned: the Ray workers are processes of their own, outside conftest's fp32 default
    shared = TrialData({"s": setup}, coloured_dataset(96, 40), Options(device="cpu", precision="fp32"))
    jobs = [("s", 2, 0), ("s", 1.5, 1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task (1 core): a sum's order, so the figures' last bits, follow it
    try:
        embedded = Embedded().map(train_trial, shared, jobs)
    finally:
        torch.set_num_threads(threads)
    assert embedded[0].test_acc > 0.1  # it learns
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        engine = make_engine("ray", device="cpu")  # joins the running Ray: 2 slots of 1 core
        assert engine.slots == 2
        assert [figures(run) for run in engine.map(train_trial, shared, jobs)] == [figures(run) for run in embedded]
    finally:
        ray.shutdown()


def test_trim_on_ray_from_the_command_line(archive, tmp_path):  # noqa: F811
    pytest.importorskip("ray")
    out = _run(["trim", "specs/resnet9.py", "--target", "0.05", "--max-epochs", "1", "--resolution", "1",
                "--data", str(archive), "--subset", "64", *TINY, "--precision", "fp32", "--engine", "ray",
                "--out", str(tmp_path)])
    assert "engine ray: 2 runs at once, 1 core(s) each" in out
    record = json.loads((tmp_path / "trim.json").read_text())
    assert record["answer"]["epochs"] == 1 and record["answer"]["seeds"] == [0]
    assert record["train_command"].endswith("--epochs 1")
