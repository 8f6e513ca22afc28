"""Data sets for training: loading and caching, on-device storage, vectorised batch augmentation."""

from .augment import cutout, random_crop, random_flip
from .sources import DataError, Dataset, default_cache_dir, load_dataset

__all__ = [
    "DataError",
    "Dataset",
    "cutout",
    "default_cache_dir",
    "load_dataset",
    "random_crop",
    "random_flip",
]
