"""A network's loss and accuracy on a test set, batch by batch, timed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from .errors import TrainError


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a clock read after it is true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device`` (CUDA or CPU); None: none."""
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def loss_and_correct(network: nn.Module, loss_net: nn.Module, device: torch.device,
                     autocast_dtype: torch.dtype | None = None):
    """``f(images, labels) -> (loss, correct)``, per sample (N floats, N bools; no sync);
    the network's forward under :func:`autocast` to ``autocast_dtype`` on ``device``."""
    def f(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(device, autocast_dtype):
            logits = network(images)
        logits = logits.float()
        return loss_net(logits, labels), logits.argmax(1) == labels

    return f


@torch.no_grad()
def evaluate(fn: Callable[..., Any], batches: Iterable[tuple[torch.Tensor, torch.Tensor, int]],
             device: torch.device) -> tuple[float, float, float]:
    """(mean loss, accuracy, seconds) of ``fn`` (see :func:`loss_and_correct`) over ``batches``
    of ``(images, labels, count)``: only the first ``count`` samples of a batch count (the rest
    pad it to the batch size, so every call has one shape)."""
    sync(device)
    start = time.perf_counter()
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n = 0
    for images, labels, count in batches:
        batch_loss, batch_correct = fn(images, labels)
        loss += batch_loss[:count].sum()
        correct += batch_correct[:count].sum()
        n += count
    sync(device)
    seconds = time.perf_counter() - start
    if n == 0:
        raise TrainError("the test set is empty")
    return loss.item() / n, correct.item() / n, seconds
