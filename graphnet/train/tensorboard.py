"""TensorBoard records (``--tensorboard DIR``, the optional extra ``graphnet[tensorboard]``):
per run its per-epoch scalars, and per run or trial its hyperparameters and result, through
torch's ``SummaryWriter``, each in a folder of its own under DIR."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import TrainError

# the per-epoch columns written as scalars (train/…, test/…)
SCALARS = ("lr", "train_loss", "train_acc", "test_loss", "test_acc", "train_time", "total_time")


class Board:
    """A TensorBoard folder; :meth:`record` writes one run or trial into ``folder/name``."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrainError("--tensorboard needs TensorBoard: pip install 'graphnet[tensorboard]'") from None
        self.folder, self.writer = Path(folder), SummaryWriter

    def record(self, name: str, hparams: Mapping[str, Any], metrics: Mapping[str, float],
               rows: Sequence[Mapping[str, Any]] = ()) -> None:
        """``rows``' scalars by epoch, then ``hparams`` (numbers and text; anything else as text)
        with the result ``metrics``."""
        with self.writer(str(self.folder / name)) as writer:
            for row in rows:
                for key in SCALARS:
                    if row.get(key) is not None:
                        split, _, metric = key.partition("_")
                        writer.add_scalar(f"{split}/{metric}" if metric else key, row[key], row["epoch"])
            params = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
            writer.add_hparams(params, {f"result/{k}": v for k, v in metrics.items()}, run_name=".")
