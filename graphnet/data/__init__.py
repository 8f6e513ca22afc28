"""Data sets for training: loading and caching, on-device storage, vectorised batch augmentation."""

from .augment import cutout, random_crop, random_flip
from .batches import CIFAR10_MEAN, CIFAR10_STD
from .errors import DataError
from .loader import DeviceData
from .sources import Dataset, decoded_sizes, default_cache_dir, load_dataset

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DataError",
    "Dataset",
    "DeviceData",
    "cutout",
    "decoded_sizes",
    "default_cache_dir",
    "load_dataset",
    "random_crop",
    "random_flip",
]
