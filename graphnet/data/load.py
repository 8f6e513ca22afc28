"""A data set as the commands load it: decoded (or indexed, to stream), cut to the subsets,
described for the header, and recorded so that it can be loaded again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .errors import DataError
from .imagefolder import Source, image_shape, subset_source
from .sources import Dataset


def data_sizes(dataset: Dataset | Source) -> tuple[int, int, tuple[int, int, int], int]:
    """``(train images, test images, C×H×W, classes)`` of a decoded data set or a streamed source."""
    if isinstance(dataset, Source):
        return len(dataset.files["train"]), len(dataset.files["test"]), image_shape(dataset), len(dataset.classes)
    n, height, width, channels = dataset.train_images.shape
    return n, len(dataset.test_images), (channels, height, width), len(dataset.classes)


def load_data(source: str, subset: int | None, test_subset: int | None,
              streamed: Source | None = None) -> tuple[Dataset | Source, dict[str, str], dict[str, Any]]:
    """``(dataset, config entries, record)``: the data set cut to the subsets (a test subset in
    proportion to ``subset`` if not given), its description, and what loads the cut again (the
    source as an absolute path and as typed, the subsets). ``streamed``: the source indexed
    (:func:`graphnet.data.imagefolder.index_source`), to cut and stream instead of decoding it."""
    from . import load_dataset  # the package's, looked up when called (tests replace it)

    start = time.perf_counter()
    dataset = load_dataset(source) if streamed is None else streamed
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
    sizes = data_sizes(dataset)[:2]
    config = {"data": f"{source} (loaded in {seconds:.1f} s)" if streamed is None else f"{source} (streamed)",
              "subset": (f"{sizes[0]} train, {sizes[1]} test images of {full[0]}, {full[1]} (class-balanced)"
                         if sizes != full else f"none: {sizes[0]} train, {sizes[1]} test images")}
    absolute = source if source == "cifar10" else str(Path(source).expanduser().resolve())
    return dataset, config, {"source": absolute, "typed": source, "subset": subset, "test_subset": test_subset}
