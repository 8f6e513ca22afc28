"""``graphnet train``, ``eval`` and ``ablate`` on a small ImageFolder archive of coloured images."""

import contextlib
import io
import json
import re
import tarfile

import pytest
from PIL import Image

from graphnet.cli import main
from test_train_loop import coloured_images

TRICKS = ("pool_before_norm", "label_smoothing", "celu", "ghost_bn", "freeze_bn_scale", "whiten_input", "tta_flip")
SMALL = ["--width-mult", "0.125", "--batch-size", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """320 train and 100 test PNGs as train/<class>/*.png, test/<class>/*.png in a .tar.gz."""
    root = tmp_path_factory.mktemp("coloured")
    for split, n, seed in (("train", 320, 0), ("test", 100, 1)):
        images, labels = coloured_images(n, seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / "tree" / split / f"c{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.numpy()).save(folder / f"{i}.png")
    path = root / "coloured.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root / "tree", arcname=".")
    return path


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """Decoded data sets are cached in a temporary folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHNET_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def header_value(out: str, key: str) -> str:
    return re.search(rf"^  {key} +(.*)$", out, re.M).group(1)


def _run(argv: list[str]) -> str:
    """Run the CLI, which must succeed, and return its stdout."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return stdout.getvalue()


@pytest.fixture(scope="module")
def trained(archive, cache, tmp_path_factory):
    """The default recipe trained 8 epochs (80 steps): (stdout, out folder)."""
    out = tmp_path_factory.mktemp("train")
    return _run(["train", "--data", str(archive), "--epochs", "8", *SMALL, "--out", str(out)]), out


def test_train_header_lists_every_trick(trained):
    out, _ = trained
    for trick in TRICKS:
        assert trick in out
    assert header_value(out, "recipe") == "tta (test-time augmentation)"
    assert header_value(out, "spec") == "graphnet.zoo.resnet9:build (width x0.125)"
    assert header_value(out, "net passes") == ("pool_before_norm, celu(alpha=0.075), ghost_bn(num_splits=16), "
                                               "freeze_bn_scale(weight=1, act_alpha_scale=4, bias_lr_mult=64, "
                                               "bias_wd_mult=0.015625, final_scale=0.0625), whiten_input(patch=3, eps=0.01)")
    assert header_value(out, "loss passes") == "label_smoothing(alpha=0.2)"
    assert header_value(out, "eval passes") == "tta_flip"
    assert header_value(out, "EMA") == "momentum 0.99 every 5 steps"
    assert (header_value(out, "TTA"), header_value(out, "lookahead")) == ("on (tta_flip)", "off")
    assert header_value(out, "augmentation") == "translate ±4 px (reflect), random flip, no cutout"
    # 8 epochs of 10 batches of 32, 3 forward passes each (test_summary checks the forward FLOPs)
    assert re.fullmatch(r"\d\.\d{3} TFLOP \(3 x \d\.\d{3} GFLOP forward x 2,560 images\)",
                        header_value(out, "training compute"))
    assert header_value(out, "preprocessing") == "on the device"
    assert (header_value(out, "precision"), header_value(out, "device")) == ("fp32", "cpu")
    assert header_value(out, "subset").startswith("none: 320 train, 100 test images")
    assert header_value(out, "batch size") == "32" and header_value(out, "epochs") == "8"


def test_train_learns_and_writes_its_logs(trained):
    out, folder = trained
    log = json.loads((folder / "log.json").read_text())
    assert [r["epoch"] for r in log["rows"]] == list(range(1, 9))
    assert log["result"]["test_acc"] > 0.6  # chance is 0.1
    assert f"final test acc {log['result']['test_acc']:.4f} (TTA)" in out
    assert len((folder / "log.tsv").read_text().splitlines()) == 9
    assert (folder / "curves.png").stat().st_size > 0 and (folder / "checkpoint.pt").is_file()


def test_eval_round_trip_gives_the_same_accuracy(trained):
    _, folder = trained
    logged = json.loads((folder / "log.json").read_text())["result"]["test_acc"]
    out = _run(["eval", str(folder), "--device", "cpu"])
    assert re.search(r"test acc (\S+) \(TTA\)", out).group(1) == f"{logged:.4f}"


def test_switches_and_explicit_spec(archive, tmp_path):
    out = _run(["train", "specs/resnet9.py", "--rewrite", "celu:alpha=0.1", "--rewrite", "label_smoothing",
                "--no-ema", "--tta", "--cutout", "4", "--no-gpu-preprocessing", "--epochs", "1",
                "--runs", "2", "--subset", "160", "--data", str(archive), *SMALL, "--out", str(tmp_path),
                "--tensorboard", str(tmp_path / "tb")])
    assert header_value(out, "spec") == "specs/resnet9.py (width x0.125)"
    assert header_value(out, "net passes") == "celu(alpha=0.1)"
    assert header_value(out, "loss passes") == "label_smoothing"
    assert header_value(out, "eval passes") == "tta_flip"
    assert header_value(out, "EMA") == "off" and header_value(out, "augmentation").endswith("cutout 4x4")
    assert header_value(out, "preprocessing") == "on the CPU, batches moved to the device"
    assert header_value(out, "subset").startswith("160 train, 50 test images of 320, 100")
    assert "2 runs: test acc mean" in out
    assert (tmp_path / "run1" / "checkpoint.pt").is_file() and (tmp_path / "run2" / "log.tsv").is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and set(summary["test_acc"]) == {"mean", "min", "max", "std"}
    for seed in (0, 1):  # each run's scalars and hparams for TensorBoard
        assert list((tmp_path / "tb" / "tta" / f"seed{seed}").glob("events.out.tfevents.*"))


def test_without_drops_a_trick_from_the_default(archive, tmp_path):
    out = _run(["train", "--without", "celu", "--no-tta", "--epochs", "1", "--subset", "64", "--data", str(archive),
                *SMALL, "--out", str(tmp_path)])
    assert header_value(out, "spec") == "graphnet.zoo.resnet9:build (width x0.125)"
    assert "celu" not in header_value(out, "net passes") and header_value(out, "TTA") == "off"


def test_ablate_table(archive, tmp_path):
    out = _run(["ablate", "--steps", "baseline,tta", "--epochs-scale", "0.1", "--subset", "64",
                "--data", str(archive), *SMALL, "--out", str(tmp_path)])
    table = out[out.index("ablation (bag_of_tricks):"):]
    assert re.search(r"baseline +2 +\d\.\d{3} +1 +\S+ ± \S+ +\S+ ± \S+ +75 s V100 +0\.9410", table)
    assert re.search(r"tta +1 +\d\.\d{3} +1 +\S+ ± \S+ +\S+ ± \S+ +26 s V100 +0\.9410", table)
    rows = json.loads((tmp_path / "ablate.json").read_text())["rows"]
    assert [r["step"] for r in rows] == ["baseline", "tta"]
    assert (tmp_path / "ablate.png").stat().st_size > 0 and (tmp_path / "tta" / "checkpoint.pt").is_file()


def test_ablate_replays_airbench94_end_to_end(archive, tmp_path):
    out = _run(["ablate", "--recipe", "airbench94", "--epochs-scale", "0.1", "--subset", "64", "--data", str(archive),
                *SMALL, "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "ablate.json").read_text())["rows"]
    names = [r["step"] for r in rows]
    assert names[0] == "bag_of_tricks" and names[-2:] == ["airbench94", "airbench94_muon"] and len(names) == 12
    assert all(r["runs"] == 1 and r["acc_mean"] > 0 for r in rows)  # every step trained
    assert [r["epochs"] for r in rows[-2:]] == [0.99, 1]  # 9.9 epochs keep their fraction
    table = out[out.index("ablation (airbench94):"):]
    assert re.search(r"airbench94 +0\.99 +\d\.\d{3} +1 .* 3\.83 s A100 +0\.9401", table)
    assert "lookahead         every 5 steps from epoch 3" in out and "TTA               on (tta_flip, tta_translate)" in out


def test_user_errors(archive, capsys):
    assert main(["train", "--precision", "fp16", "--device", "cpu", "--data", str(archive)]) == 1
    assert "fp16 needs CUDA" in capsys.readouterr().err
    assert main(["ablate", "--steps", "baseline,nope", "--data", str(archive)]) == 1
    assert "unknown step(s) nope" in capsys.readouterr().err
