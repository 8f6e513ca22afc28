"""Data sets for training: loading and caching, on-device storage, vectorised batch augmentation."""

from .sources import DataError, Dataset, default_cache_dir, load_dataset

__all__ = [
    "DataError",
    "Dataset",
    "default_cache_dir",
    "load_dataset",
]
