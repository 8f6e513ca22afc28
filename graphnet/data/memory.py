"""Where a data set lives: :func:`plan` keeps it on the device while its estimated peak memory
fits in half of what is free there (on the CPU: of the RAM available), else streams it
(:class:`~graphnet.data.stream.StreamData`)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .imagefolder import NAMED_SETS, Source, image_shape, index_source, is_torchvision
from .sources import decoded_sizes

FREE_FRACTION = 0.5  # of free device memory (or available RAM) the on-device path may take


def device_bytes(num_train: int, num_test: int, shape: Sequence[int], dtype: torch.dtype,
                 pad: int = 4) -> int:
    """An estimate of the on-device path's peak memory: its steady set (padded train and test
    images in ``dtype``) plus, while preparing the train split, the uint8 copy and float32
    normalised and padded temporaries."""
    c, h, w = shape
    padded, plain = c * (h + 2 * pad) * (w + 2 * pad), c * h * w
    size = torch.empty((), dtype=dtype).element_size()
    steady = (num_train * padded + num_test * plain) * size
    temporaries = num_train * (plain * (1 + 4) + (padded * 4 if size != 4 else 0))
    return steady + temporaries


def free_bytes(device: torch.device | str) -> int:
    """Free memory on a CUDA device, or the RAM available to a new process (CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def plan(source: str | Path | Source, device: torch.device | str, dtype: torch.dtype = torch.float32,
         pad: int = 4, free: int | None = None) -> tuple[bool, str]:
    """``(stream, note)``: whether ``source`` should be streamed to ``device`` (its decoded set,
    by :func:`device_bytes`, needs more than FREE_FRACTION of ``free``, default
    :func:`free_bytes`), and a one-line note saying so. torchvision's sets (``cifar10``, ...,
    or CIFAR-10's folder) are never streamed: StreamData reads ImageFolder trees only. On the CPU the
    loader's uint8 copy of the set counts too, since it sits in the same RAM. A path is
    sized from the decode cache when the set is there (:func:`decoded_sizes`), else indexed;
    an indexed :class:`Source` (:func:`index_source`) saves reading an archive twice."""
    device = torch.device(device)
    torchvision = not isinstance(source, Source) and is_torchvision(source)
    cached = None if torchvision or isinstance(source, Source) else decoded_sizes(source)
    if torchvision:
        named = NAMED_SETS.get(str(source), NAMED_SETS["cifar10"])
        counts, shape = (named.train, named.test), named.shape
    elif cached:
        counts, shape = cached[:2], cached[2]
    else:
        indexed = source if isinstance(source, Source) else index_source(source)
        counts, shape = (len(indexed.files["train"]), len(indexed.files["test"])), image_shape(indexed)
    need = device_bytes(*counts, shape, dtype, pad)
    if device.type == "cpu":
        need += (counts[0] + counts[1]) * math.prod(shape)
    free = free_bytes(device) if free is None else free
    stream = not torchvision and need > FREE_FRACTION * free
    where = "streamed from the source by DataLoader workers" if stream else "kept on the device"
    return stream, (f"data: {counts[0]} train + {counts[1]} test images of {'x'.join(map(str, shape))} need about "
                    f"{need / 2**30:.2f} GiB on {device.type} ({free / 2**30:.1f} GiB free): {where}")


def streamed_source(source: str | Path, device: torch.device | str, dtype: torch.dtype = torch.float32,
                    stream: bool | None = None) -> tuple[Source | None, str]:
    """``(indexed, note)``: ``source`` indexed to be streamed (``stream`` True, or None and
    :func:`plan` finds that its decoded set would not fit), else None (decode it); ``note`` is
    the plan's line ('' when ``stream`` is given). The source is indexed at most once (decoding
    reads it again)."""
    if stream:
        return index_source(source), ""
    if stream is False or is_torchvision(source):
        return None, ""
    indexed = None if decoded_sizes(source) else index_source(source)  # a decoded set is sized from the cache
    streamed, note = plan(indexed or source, device, dtype)
    if not streamed:
        return None, note
    return indexed or index_source(source), note  # decoded before, on a machine with more memory
