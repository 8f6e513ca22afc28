"""Any image-classification data set: grayscale or RGB ImageFolders of any size and class count,
their per-channel normalisation, torchvision's named sets, the zoo networks fitted to the data,
the checks before training, and ``graphnet train``/``eval`` on a grayscale slice of CIFAR-10."""

import contextlib
import io
import json
import re
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from graphnet.cli import main
from graphnet.compile import compile
from graphnet.data import DataError, Dataset, DeviceData, load_dataset
from graphnet.data.imagefolder import NAMED_SETS
from graphnet.data.stream import StreamData
from graphnet.graph import build
from graphnet.ops import max_pool
from graphnet.train import TrainError, check_data, get_recipe
from graphnet.zoo import airbench94, resnet9

CIFAR_JPEG = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
SMALL = ["--width-mult", "0.125", "--batch-size", "32", "--device", "cpu"]


def write_folder(root: Path, classes: int, size: tuple[int, int], mode: str, per_class=(6, 2), seed=0) -> Path:
    """An ImageFolder of PNGs (lossless, so both decoders agree): class ``c``'s images are
    noise around ``40 c``, in PIL ``mode`` (``L`` or ``RGB``)."""
    rng = np.random.default_rng(seed)
    channels = () if mode == "L" else (3,)
    for split, n in zip(("train", "test"), per_class):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 60, (*size, *channels)) + 40 * c
                Image.fromarray(pixels.astype(np.uint8), mode).save(folder / f"{i}.png")
    return root


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHNET_CACHE", str(tmp_path / "cache"))


def _run(argv: list[str]) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return stdout.getvalue()


def header_value(out: str, key: str) -> str:
    return re.search(rf"^  {key} +(.*)$", out, re.M).group(1)


# -- data sets ----------------------------------------------------------------------------------

def test_a_grayscale_folder_of_any_size_decodes_to_one_channel_with_its_statistics(tmp_path):
    root = write_folder(tmp_path / "gray", 3, (12, 20), "L")
    ds = load_dataset(root, progress=False)
    assert ds.train_images.shape == (18, 12, 20, 1) and ds.test_images.shape == (6, 12, 20, 1)
    pixels = ds.train_images.double()
    assert ds.mean == pytest.approx((pixels.mean().item(),))
    assert ds.std == pytest.approx((pixels.std(correction=0).item(),))
    again = load_dataset(root, progress=False)  # from the cache, statistics too
    assert torch.equal(again.train_images, ds.train_images) and (again.mean, again.std) == (ds.mean, ds.std)
    assert ds.subset(train=6, test=3).mean == ds.mean  # a subset keeps the whole set's normalisation


def test_an_rgb_folder_keeps_three_channels_and_its_own_statistics(tmp_path):
    ds = load_dataset(write_folder(tmp_path / "rgb", 2, (10, 10), "RGB"), progress=False)
    assert ds.train_images.shape == (12, 10, 10, 3)
    torch.testing.assert_close(torch.tensor(ds.mean, dtype=torch.float64),
                               ds.train_images.reshape(-1, 3).double().mean(0))


def test_streamed_grayscale_matches_the_decoded_set(tmp_path):
    root = write_folder(tmp_path / "gray", 3, (12, 20), "L")
    decoded = DeviceData(load_dataset(root, progress=False), "cpu")
    streamed = StreamData(root, "cpu", workers=0)
    assert streamed.image_shape == (1, 12, 20) and streamed.source.mean == pytest.approx(decoded_mean(root))
    images = torch.cat([b[0] for b in streamed.test_batches(4)])
    torch.testing.assert_close(images, decoded.test_images)


def decoded_mean(root: Path) -> tuple[float, ...]:
    return load_dataset(root, progress=False).mean


def _idx(path: Path, data: np.ndarray) -> None:
    """An MNIST idx file: magic (uint8, its dimensions), big-endian sizes, the bytes."""
    path.write_bytes(struct.pack(">HBB", 0, 8, data.ndim) + struct.pack(f">{data.ndim}I", *data.shape)
                     + data.astype(np.uint8).tobytes())


def test_mnist_loads_from_torchvision_files_as_one_channel(tmp_path):
    raw = tmp_path / "cache" / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    ds = load_dataset("mnist")
    assert ds.train_images.shape == (20, 28, 28, 1) and len(ds.test_images) == 10 and len(ds.classes) == 10
    assert ds.mean == pytest.approx((ds.train_images.double().mean().item(),))
    assert NAMED_SETS["mnist"].shape == (1, 28, 28)


@pytest.mark.parametrize("name", [n for n in NAMED_SETS if n != "cifar10"])
def test_a_named_set_offline_is_one_line_naming_it(name, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading x.gz:\nTried https://example.org/, got:\n<urlopen error no network>\n")

    for cls in ("CIFAR100", "SVHN", "MNIST", "FashionMNIST", "STL10"):
        monkeypatch.setattr(torchvision.datasets, cls, offline)
    with pytest.raises(DataError) as e:
        load_dataset(name)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{name} needs a download, which failed (<urlopen error no ")
    assert "--data PATH" in message


# -- networks and checks ------------------------------------------------------------------------

@pytest.mark.parametrize("builder", [resnet9.build, airbench94.build])
@pytest.mark.parametrize("channels,size,classes", [(1, 24, 6), (3, 20, 3), (1, 28, 10), (3, 96, 10)])
def test_zoo_networks_fit_any_channels_size_and_classes(builder, channels, size, classes):
    net = compile(build(builder(width_mult=0.125, num_classes=classes, in_channels=channels)))
    assert net.eval()(torch.randn(2, channels, size, size)).shape == (2, classes)


@pytest.mark.parametrize("builder,kernel", [(resnet9.build, 4), (airbench94.build, 3)])
def test_the_global_pool_gives_the_published_networks_on_32x32(builder, kernel):
    spec = builder(width_mult=0.125)
    torch.manual_seed(0)
    net = compile(build(spec))
    op, params = max_pool(kernel)
    published = compile(build(spec).replace("pool", op=op, params=params))
    published.load_state_dict(net.state_dict())
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(net.eval()(x), published.eval()(x))


def small_dataset(classes: int, size: int, n: int = 64) -> Dataset:
    images = torch.randint(0, 256, (n, size, size, 1), dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return Dataset(images, labels, images[:8], labels[:8], [f"c{i}" for i in range(classes)])


@pytest.mark.parametrize("classes,size,channels,changes,message", [
    (1, 24, 1, {}, r"^the data set has 1 class \(c0\): a classifier needs at least 2$"),
    (3, 24, 1, {}, r"^the network's output logits is 6 per image, but the data has 3 classes: build it for 3 "
                   r"\(--num-classes 3\)$"),
    (6, 4, 1, {"cutout": 0}, r"^crop padding 4 does not fit the 4x4 images \(reflect padding needs less than the "
                             r"image size\)$"),
    (6, 6, 1, {"pad": 2, "cutout": 8}, r"^cutout 8 is larger than the 6x6 images$"),
    (6, 24, 3, {}, r"^prep/conv takes 3 channels, but the images have 1: build the network for 1$"),
])
def test_checks_before_training_are_one_line(classes, size, channels, changes, message):
    from dataclasses import replace

    recipe = replace(get_recipe("baseline"), batch_size=32, **changes)
    net = build(resnet9.build(width_mult=0.125, num_classes=6, in_channels=channels))
    with pytest.raises(TrainError, match=message):
        check_data(recipe, net, small_dataset(classes, size))


# -- the commands on a grayscale slice of CIFAR-10 ----------------------------------------------

def cifar_slice(root: Path, classes: int = 3, train: int = 64, test: int = 16, size: int = 24) -> Path:
    """The first ``classes`` classes of the shared JPEG CIFAR-10, ``train``/``test`` images each,
    grayscale and resized to ``size``×``size``, as an ImageFolder of PNGs."""
    wanted = {"train": train, "test": test}
    kept: dict[tuple[str, str], int] = {}
    names: list[str] = []
    with tarfile.open(CIFAR_JPEG) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 3:
                continue
            split, label, file = parts
            if label not in names:
                if len(names) == classes:
                    continue
                names.append(label)
            if kept.get((split, label), 0) >= wanted[split]:
                continue
            kept[(split, label)] = kept.get((split, label), 0) + 1
            image = Image.open(tar.extractfile(member)).convert("L").resize((size, size), Image.BILINEAR)
            (root / split / label).mkdir(parents=True, exist_ok=True)
            image.save(root / split / label / Path(file).with_suffix(".png"))
            if len(kept) == 2 * classes and all(kept[key] == wanted[key[0]] for key in kept):
                break
    return root


@pytest.fixture(scope="module")
def gray_cifar(tmp_path_factory):
    if not CIFAR_JPEG.is_file():
        pytest.skip("needs the shared JPEG CIFAR-10")
    return cifar_slice(tmp_path_factory.mktemp("slice") / "gray")


def test_train_and_eval_fit_the_recipe_network_to_a_grayscale_slice(gray_cifar, tmp_path, capsys):
    data = gray_cifar
    out = _run(["train", "--data", str(data), "--epochs", "1", *SMALL, "--out", str(tmp_path / "run")])
    assert header_value(out, "images") == "1x24x24 (CxHxW), 3 classes"
    assert re.fullmatch(r"mean \(\d+\.\d\), std \(\d+\.\d\) per channel \(0-255\), from the training images",
                        header_value(out, "normalisation"))
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    ds = load_dataset(data, progress=False)
    assert checkpoint["data"]["classes"] == ds.classes and checkpoint["data"]["mean"] == list(ds.mean)
    logged = re.search(r"final test acc (\d\.\d+)", out).group(1)
    evaluated = _run(["eval", str(tmp_path / "run"), "--device", "cpu"])
    assert f"test acc {logged}" in evaluated

    other = write_folder(tmp_path / "other", 3, (24, 24), "L")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--device", "cpu", "--data", str(other)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"graphnet eval: error: the classes of {other} are not the checkpoint's: class 0 is {ds.classes[0]!r} in "
        "the checkpoint, 'class0' in the data")
    checkpoint["data"]["mean"], checkpoint["data"]["std"] = [0.0], [1.0]  # eval normalises as in training
    torch.save(checkpoint, tmp_path / "run" / "checkpoint.pt")
    loss = re.search(r"loss (\d+\.\d+)", evaluated).group(1)
    assert f"loss {loss}" not in _run(["eval", str(tmp_path / "run"), "--device", "cpu"])


def test_a_users_spec_with_too_few_outputs_fails_before_training(gray_cifar, tmp_path, capsys):
    data = gray_cifar
    spec = tmp_path / "net.py"
    spec.write_text("from graphnet.zoo import resnet9\n\n\ndef build(width_mult=1.0, num_classes=2):\n"
                    "    return resnet9.build(width_mult, num_classes, in_channels=1)\n")
    argv = ["train", str(spec), "--data", str(data), "--epochs", "1", *SMALL, "--out", str(tmp_path / "r")]
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines()[-1] == ("graphnet train: error: the network's output logits is 2 per "
                                                        "image, but the data has 3 classes: build it for 3 "
                                                        "(--num-classes 3)")
    assert "final test acc" in _run([*argv, "--num-classes", "3"])


def test_ablate_fits_each_steps_network_to_the_data(gray_cifar, tmp_path):
    _run(["ablate", "--recipe", "airbench94", "--steps", "bag_of_tricks,airbench_net", "--epochs-scale", "0.1",
          "--data", str(gray_cifar), *SMALL, "--out", str(tmp_path / "ablate")])
    rows = json.loads((tmp_path / "ablate" / "ablate.json").read_text())["rows"]
    assert [(r["step"], r["runs"]) for r in rows] == [("bag_of_tricks", 1), ("airbench_net", 1)]
    assert all(0 <= r["acc_mean"] <= 1 for r in rows)
