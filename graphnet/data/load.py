"""A data set as the commands load it: decoded (or indexed, to stream), cut to the subsets,
described for the header (its normalisation too), and recorded so that it can be loaded again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .batches import CIFAR10_MEAN
from .errors import DataError
from .imagefolder import NAMED_SETS, Source, image_shape, subset_source
from .sources import Dataset
from .stream import STATS_IMAGES, with_stats


def data_sizes(dataset: Dataset | Source) -> tuple[int, int, tuple[int, int, int], int]:
    """``(train images, test images, C×H×W, classes)`` of a decoded data set or a streamed source."""
    if isinstance(dataset, Source):
        return len(dataset.files["train"]), len(dataset.files["test"]), image_shape(dataset), len(dataset.classes)
    n, height, width, channels = dataset.train_images.shape
    return n, len(dataset.test_images), (channels, height, width), len(dataset.classes)


def load_data(source: str, subset: int | None, test_subset: int | None,
              streamed: Source | None = None) -> tuple[Dataset | Source, dict[str, str], dict[str, Any]]:
    """``(dataset, config entries, record)``: the data set cut to the subsets (a test subset in
    proportion to ``subset`` if not given), its description, and what loads the cut again and
    what a network trained on it assumes (the source as an absolute path and as typed, the
    subsets, the class names and the normalisation). ``streamed``: the source indexed
    (:func:`graphnet.data.imagefolder.index_source`), to cut and stream instead of decoding it;
    its normalisation is computed from a sample of its training images (``with_stats``)."""
    from . import load_dataset  # the package's, looked up when called (tests replace it)

    start = time.perf_counter()
    dataset = load_dataset(source) if streamed is None else with_stats(streamed)
    seconds = time.perf_counter() - start
    full = data_sizes(dataset)[:2]
    for name, n, size, split in (("--subset", subset, full[0], "train"), ("--test-subset", test_subset, full[1], "test")):
        if n is not None and n > size:
            raise DataError(f"{name} {n} is more than the {size} images of the {split} split of {source}")
    if subset is not None and test_subset is None:
        test_subset = min(full[1], max(1, round(subset * full[1] / full[0])))
    if subset is not None or test_subset is not None:
        dataset = dataset.subset(train=subset, test=test_subset) if streamed is None else \
            subset_source(dataset, train=subset, test=test_subset)
    sizes = data_sizes(dataset)
    config = {"data": f"{source} (loaded in {seconds:.1f} s)" if streamed is None else f"{source} (streamed)",
              "subset": (f"{sizes[0]} train, {sizes[1]} test images of {full[0]}, {full[1]} (class-balanced)"
                         if sizes[:2] != full else f"none: {sizes[0]} train, {sizes[1]} test images"),
              "images": f"{'x'.join(map(str, sizes[2]))} (CxHxW), {sizes[3]} classes",
              "normalisation": describe_normalisation(dataset.mean, dataset.std, streamed is not None)}
    absolute = source if source in NAMED_SETS else str(Path(source).expanduser().resolve())
    return dataset, config, {"source": absolute, "typed": source, "subset": subset, "test_subset": test_subset,
                             "classes": list(dataset.classes), "mean": list(dataset.mean), "std": list(dataset.std)}


def describe_normalisation(mean: tuple[float, ...], std: tuple[float, ...], sampled: bool = False) -> str:
    """The header's line: ``mean (125.3, 123.0, 113.9), std (63.0, 62.1, 66.7) per channel (0-255),
    CIFAR-10's published``, or computed from the training images (or, ``sampled``, a sample of them)."""
    def values(v: tuple[float, ...]) -> str:
        return "(" + ", ".join(f"{x:.1f}" for x in v) + ")"

    where = ("CIFAR-10's published" if tuple(mean) == CIFAR10_MEAN else
             f"from {STATS_IMAGES:,} training images at most (class-balanced)" if sampled else
             "from the training images")
    return f"mean {values(mean)}, std {values(std)} per channel (0-255), {where}"
