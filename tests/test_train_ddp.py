"""graphnet train on several processes (gloo, 2 ranks) and on streamed data: the one-process
steps, rank 0 alone writing, a checkpoint that loads in graphnet eval, and the streaming path
learning as the on-device path does."""

import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from graphnet import build, load_spec
from graphnet.cli import main
from graphnet.data import Dataset, load_dataset
from graphnet.data.imagefolder import index_source
from graphnet.train import Options, Runtime, Trainer, get_recipe, make_setup, resolve_runtime
from graphnet.train.distributed import process_group
from test_cli_train import SMALL, archive, cache  # noqa: F401 (fixtures)
from test_data_stream import write_folder
from test_train_distributed import free_port
from test_train_loop import coloured_images

ROOT = Path(__file__).resolve().parents[1]
IMAGES = 64  # the global batch too: every step sees every training image, in any order, on any rank


def tiny_setup(name: str = "ema", epochs: int = 3):
    """A recipe at width 1/8 for ``epochs`` epochs of one step on a batch of all IMAGES, without ghost
    batch norm: by default the EMA recipe (whitening, frozen BN scales, CELU, label smoothing,
    EMA; Page's SGD); airbench94's (decoupled SGD, lookahead) and airbench94_muon's (Muon)."""
    recipe = dataclasses.replace(get_recipe(name).with_epochs(epochs), batch_size=IMAGES)
    passes = [p for p in recipe.passes if p[0] != "ghost_bn"]
    network = str(ROOT / "specs/resnet9.py") if name == "ema" else recipe.network
    return make_setup(build(load_spec(network, width_mult=0.125)), recipe, passes)


def tiny_dataset() -> Dataset:
    return Dataset(*coloured_images(IMAGES, 0), *coloured_images(20, 1), [f"c{i}" for i in range(10)])


OPTIONS = Options(device="cpu", precision="fp32", sync_bn=True, augment=False, progress=False)  # exact comparisons


def run(name="ema", epochs=3, runtime=None):
    """One run in float64 (weights and data): the float32 rounding of summing 64 gradients at once
    or as 2 x 32 grows past 1e-4 within a step here (a 1e-7 relative change of each batch norm's
    output moves airbench94_muon's filters by 1e-2 after one step: Muon's update does not scale with
    the gradient, and a filter's gradient behind a batch norm is what is left after the norm's
    backward subtracts its mean and its projection on the output), while float64 holds the ranks'
    difference to the order of summing."""
    runtime = dataclasses.replace(runtime or resolve_runtime(OPTIONS), data_dtype=torch.float64)
    setup = tiny_setup(name, epochs)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the weights graphnet.compile makes
    try:
        trainer = Trainer(setup.graphs, setup.recipe, tiny_dataset(), OPTIONS, io.StringIO(), runtime)
        result = trainer.run(seed=3)
    finally:
        torch.set_default_dtype(default)
    return {"net": {k: v.clone() for k, v in trainer.net.state_dict().items()}, "rows": result.rows,
            "evaluated": result.state}


def _rank(rank: int, world: int, port: int, folder: str, name: str, epochs: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    runtime = resolve_runtime(OPTIONS)
    with process_group(runtime.dist, timeout=timedelta(seconds=60)):
        torch.save(run(name, epochs, runtime), f"{folder}/rank{rank}.pt")


# Each optimizer kind, for three steps (in float64: see run): Page's SGD, airbench's decoupled SGD, Muon.
@pytest.mark.parametrize("name, epochs", [("ema", 3), ("airbench94", 3), ("airbench94_muon", 3)])
def test_two_ranks_train_as_one_process_with_the_same_global_batch(name, epochs, tmp_path):
    mp.spawn(_rank, args=(2, free_port(), str(tmp_path), name, epochs), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    torch.set_num_threads(1)
    one = run(name, epochs)
    for param, value in one["net"].items():  # weights and the synced batch norm statistics
        for rank in ranks:
            torch.testing.assert_close(rank["net"][param], value, atol=1e-4, rtol=1e-4,
                                       msg=lambda m, param=param: f"{param}: {m}")
    for param, value in one["evaluated"].items():  # rank 0's EMA
        torch.testing.assert_close(ranks[0]["evaluated"][param], value, atol=1e-4, rtol=1e-4,
                                   msg=lambda m, param=param: f"{param}: {m}")
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):  # summed over ranks; rank 0's evaluation
        expected = [row[key] for row in one["rows"]]
        for rank in ranks:
            assert [row[key] for row in rank["rows"]] == pytest.approx(expected, rel=1e-4), key
    losses = [row["train_loss"] for row in one["rows"]]
    assert epochs == 1 or losses[-1] < losses[0]  # it learns


def test_nproc_2_trains_writes_from_rank_0_only_and_eval_loads_it(archive, tmp_path):  # noqa: F811
    # no --out: rank 0 makes runs/<time>-train; any other rank writing would write into its cwd
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "graphnet.cli", "train", "--nproc", "2", "--data", str(archive),
                           "--epochs", "2", "--subset", "256", *SMALL[:2], "--batch-size", "64", "--device", "cpu",
                           "--precision", "fp32"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^  processes +2 \(DistributedDataParallel, gloo\), each 32 images of the batch of 64",
                     done.stdout, re.M)
    assert done.stdout.count("final test acc") == 1  # rank 0 alone prints
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    (folder,) = (tmp_path / "runs").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt", "curves.png", "log.json", "log.tsv"]
    log = json.loads((folder / "log.json").read_text())
    assert log["status"] == "done" and [r["epoch"] for r in log["rows"]] == [1, 2]
    assert all(0 < r["train_loss"] < float("inf") for r in log["rows"])
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["eval", str(folder), "--device", "cpu"]) == 0
    assert re.search(r"test acc (\S+) \(TTA\)", stdout.getvalue()).group(1) == f"{log['result']['test_acc']:.4f}"


def test_eval_streams_a_set_that_would_not_fit_decoded(archive, tmp_path, monkeypatch):  # noqa: F811
    out = tmp_path / "out"
    assert main(["train", "--stream", "--data", str(archive), "--epochs", "1", "--subset", "64", *SMALL,
                 "--out", str(out)]) == 0
    logged = json.loads((out / "log.json").read_text())["result"]["test_acc"]

    def undecodable(source, *args, **kwargs):
        raise AssertionError(f"{source} decoded")

    monkeypatch.setattr("graphnet.data.memory.free_bytes", lambda device: 10 ** 6)
    monkeypatch.setattr("graphnet.data.load_dataset", undecodable)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["eval", str(out), "--device", "cpu"]) == 0
    assert re.search(r"test acc (\S+)", stdout.getvalue()).group(1) == f"{logged:.4f}"


def test_nproc_beyond_the_machine_is_refused_before_anything_starts(archive, tmp_path, capsys):  # noqa: F811
    argv = ["train", "--nproc", str((os.cpu_count() or 1) + 1), "--data", str(archive), *SMALL,
            "--out", str(tmp_path / "out")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"graphnet train: error: --nproc \d+: this machine has \d+ CPU cores, so 1 to \d+ "
                        r"processes", err), err
    assert not (tmp_path / "out").exists()


def test_sync_bn_with_ghost_batch_norm_is_refused_before_anything_starts(archive, tmp_path, capsys):  # noqa: F811
    argv = ["train", "--nproc", "2", "--sync-bn", "--data", str(archive), *SMALL, "--out", str(tmp_path / "out")]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        "graphnet train: error: cannot sync batch norm prep.bn (GhostBatchNorm): only plain batch norms sync; "
        "drop the ghost_bn pass or the sync option")
    assert not (tmp_path / "out").exists()


def test_a_launched_rank_records_its_error_for_the_launcher_and_prints_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAPHNET_LAUNCHED", "1")
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(tmp_path / "error.json"))
    missing = tmp_path / "missing.tar.gz"
    assert main(["train", "--data", str(missing), *SMALL, "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == ""
    recorded = json.loads((tmp_path / "error.json").read_text())["message"]["message"]
    assert recorded == f"DataError: data source {missing} does not exist"


def test_stream_refuses_torchvisions_cifar10_in_one_line(tmp_path, capsys):
    assert main(["train", "--stream", "--data", "cifar10", *SMALL, "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == ("graphnet train: error: --stream reads ImageFolder folders and "
                                               "archives, not torchvision's cifar10: leave it out")


@pytest.fixture(scope="module")
def red_and_blue(tmp_path_factory):
    """128 train and 50 test 32x32 JPEGs per class, red or blue under noise."""
    return write_folder(tmp_path_factory.mktemp("red_and_blue"), {"train": 128, "test": 50}, size=32)


def test_the_streaming_path_learns_as_the_on_device_path(red_and_blue):
    import resnet9

    torch.set_num_threads(1)
    recipe = dataclasses.replace(get_recipe("celu").with_epochs(3), batch_size=32)  # no ghost BN, EMA or TTA
    setup = make_setup(build(resnet9.build(width_mult=0.125, num_classes=2)), recipe)
    options = Options(device="cpu", progress=False, workers=1)
    decoded = load_dataset(red_and_blue, cache_dir=red_and_blue.parent / "cache", progress=False)
    accuracy = {}
    for name, data in (("on device", decoded), ("streamed", index_source(red_and_blue))):
        result = Trainer(setup.graphs, recipe, data, options, io.StringIO()).run(seed=0)
        assert result.rows[-1]["train_loss"] < result.rows[0]["train_loss"]
        accuracy[name] = result.test_acc
    # The two paths see the same images (decoded by PIL or torchvision) in different orders
    # and crops, so they are two runs of one recipe: measured at 3 epochs, both paths reach
    # 1.0 on seeds 0 and 1 (chance 0.5). Two images of the 100 test images is the allowance
    # for a run that ends one step short of it; a broken path (labels out of step with the
    # images, unnormalised or misplaced images) stays near 0.5.
    assert accuracy["streamed"] == pytest.approx(accuracy["on device"], abs=0.02), accuracy
    assert accuracy["on device"] >= 0.98, accuracy


def test_streaming_is_chosen_when_the_decoded_set_would_not_fit(red_and_blue, monkeypatch, capsys):
    import argparse

    from graphnet.cli.train import load_train_data
    from graphnet.data.imagefolder import Source

    args = argparse.Namespace(data=str(red_and_blue), subset=100, test_subset=None, stream=None)
    monkeypatch.setattr("graphnet.data.memory.free_bytes", lambda device: 10 ** 6)
    source, config, record = load_train_data(args, Runtime())
    assert isinstance(source, Source) and len(source.files["train"]) == 100 and len(source.files["test"]) == 39
    assert config["data"] == f"{red_and_blue} (streamed)" and record["subset"] == 100
    note = capsys.readouterr().err.strip()
    assert note.startswith("graphnet train: note: data: 256 train + 100 test images of 3x32x32 need about")
    assert note.endswith("streamed from the source by DataLoader workers")
    monkeypatch.setattr("graphnet.data.memory.free_bytes", lambda device: 10 ** 12)
    dataset, _, _ = load_train_data(args, Runtime())
    assert isinstance(dataset, Dataset) and "note" not in capsys.readouterr().err
