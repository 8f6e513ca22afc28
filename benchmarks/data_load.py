"""Time loading an image data set twice into a fresh temporary cache: decode, then cache hit.

    python benchmarks/data_load.py [SOURCE]    (graphnet installed, e.g. by `make install`)

SOURCE defaults to the shared CIFAR-10 JPEG archive, ``../shared/data/cifar10-jpeg.tar.gz``
beside the repository.
"""

import argparse
import tempfile
import time
from pathlib import Path

from graphnet.data import load_dataset

DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10-jpeg.tar.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graphnet-cache-") as cache:
        for label in ("first load (decode)", "second load (cached)"):
            start = time.perf_counter()
            dataset = load_dataset(args.source, cache_dir=cache, progress=False)
            print(f"{label}: {time.perf_counter() - start:.2f} s  {dataset!r}")


if __name__ == "__main__":
    main()
