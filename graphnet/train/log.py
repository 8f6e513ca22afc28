"""Training logs: the per-epoch table on stdout, TSV and JSON files, and PNG plots."""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..files import write_atomically

# (key, header, width, format) of each per-epoch column
COLUMNS = (
    ("epoch", "epoch", 5, "d"),
    ("lr", "lr", 7, ".4f"),
    ("train_time", "train time", 10, ".2f"),
    ("train_loss", "train loss", 10, ".4f"),
    ("train_acc", "train acc", 9, ".4f"),
    ("test_time", "test time", 9, ".2f"),
    ("test_loss", "test loss", 9, ".4f"),
    ("test_acc", "test acc", 8, ".4f"),
    ("tta_acc", "TTA acc", 7, ".4f"),  # the last epoch's, through the eval graph, when it has TTA
    ("total_time", "total time", 10, ".2f"),
)

# the ablation table's columns; a callable format makes its cell from the whole row
ABLATION_COLUMNS = (
    ("step", "step", 17, "s"),
    ("epochs", "epochs", 6, "g"),
    ("pflop", "PFLOP", 6, ".3f"),
    ("runs", "runs", 4, "d"),
    ("time", "train time (s)", 15, lambda r: f"{r['time_mean']:.2f} ± {r['time_std']:.2f}"),
    ("acc", "test acc", 15, lambda r: f"{r['acc_mean']:.4f} ± {r['acc_std']:.4f}"),
    ("published", "published", 15, lambda r: "-" if r.get("published_time") is None else
     f"{r['published_time']:g} s {r['published_on']}"),
    ("published_acc", "acc", 6, ".4f"),
)


def _mean_std(row: dict[str, Any], key: str, fmt: str) -> str:
    mean = row.get(f"{key}_mean")
    return "-" if mean is None or math.isnan(mean) else f"{mean:{fmt}} ± {row[f'{key}_std']:{fmt}}"


# the table at a target accuracy, in Page's form: each step's epochs, accuracy, time and compute there
TARGET_COLUMNS = (
    ("step", "step", 17, "s"),
    ("adds", "adds", 28, "s"),
    ("epochs", "epochs", 6, "g"),
    ("acc", "test acc", 15, lambda r: _mean_std(r, "acc", ".4f")),
    ("time", "train time (s)", 15, lambda r: _mean_std(r, "time", ".2f")),
    ("pflop", "PFLOP", 9, ".3g"),
    ("trials", "trials", 6, "d"),
)


def _cell(row: dict[str, Any], key: str, width: int, fmt: str | Callable[[dict], str]) -> str:
    if callable(fmt):
        return fmt(row).rjust(width)
    if row.get(key) is None:
        return "-".rjust(width)
    return format(row[key], fmt).rjust(width)


def table_header(columns: Sequence[tuple] = COLUMNS) -> str:
    return "  ".join(header.rjust(width) for _, header, width, _ in columns)


def table_row(row: dict[str, Any], columns: Sequence[tuple] = COLUMNS) -> str:
    return "  ".join(_cell(row, key, width, fmt) for key, _, width, fmt in columns)


class Progress:
    """A tqdm progress bar over one epoch's ``total`` steps on ``console``, only when it is a
    terminal (logs stay clean) or ``enabled``; :meth:`close` erases it before the epoch's row."""

    def __init__(self, label: str, total: int, console: TextIO | None = None, enabled: bool | None = None):
        console = console or sys.stdout
        enabled = console.isatty() if enabled is None else enabled
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="step", file=console, leave=False, dynamic_ncols=True)

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def write_tsv(rows: Sequence[dict[str, Any]], path: Path, keys: Sequence[str] | None = None) -> None:
    """``rows`` as tab-separated values with a header line (``keys``: default every key of the
    rows, in order of first use), written atomically."""
    keys = list(keys or dict.fromkeys(k for row in rows for k in row) or [key for key, *_ in COLUMNS])
    lines = ["\t".join(keys)]
    lines += ["\t".join("" if row.get(k) is None else str(row[k]) for k in keys) for row in rows]
    text = "\n".join(lines) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))


def write_json(data: Any, path: Path) -> None:
    """``data`` as indented JSON, written atomically."""
    text = json.dumps(data, indent=1, default=str) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path``, written atomically."""
    import torch

    write_atomically(path, lambda tmp: torch.save(obj, tmp))


def summarise(values: Sequence[float]) -> dict[str, float]:
    """mean, min, max and (sample) std of ``values`` (std 0 for one value)."""
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _figure(width: float, height: float):
    """A matplotlib Figure (no pyplot: no GUI backend), or None where matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure(figsize=(width, height), layout="tight")


def plot_curves(rows: Sequence[dict[str, Any]], path: Path, title: str = "") -> bool:
    """Accuracy and loss (train and test) by epoch, as a PNG; False if matplotlib is missing."""
    fig = _figure(10, 4)
    if fig is None:
        return False
    epochs = [r["epoch"] for r in rows]
    for ax, metric in zip(fig.subplots(1, 2), ("acc", "loss")):
        for split in ("train", "test"):
            values = [r[f"{split}_{metric}"] for r in rows]
            ax.plot(epochs, [v if v is not None and math.isfinite(v) else math.nan for v in values],
                    marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    return True


def plot_ablation(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    """Bars of train time and test accuracy (mean, std as error bars) by step, as a PNG; False
    if matplotlib is missing."""
    fig = _figure(max(6.0, 1.1 * len(rows)), 7)
    if fig is None:
        return False
    ax_time, ax_acc = fig.subplots(2, 1, sharex=True)
    x = range(len(rows))
    ax_time.bar(x, [r["time_mean"] for r in rows], yerr=[r["time_std"] for r in rows], color="tab:blue")
    ax_time.set_ylabel("train time (s)")
    accs = [r["acc_mean"] for r in rows]
    ax_acc.bar(x, accs, yerr=[r["acc_std"] for r in rows], color="tab:green")
    low = min(accs)
    ax_acc.set_ylim(max(0.0, low - 0.1 * (1 - low) - 0.02), min(1.0, max(accs) + 0.02))
    ax_acc.set_ylabel("test accuracy")
    ax_acc.set_xticks(list(x), [r["step"] for r in rows], rotation=30, ha="right")
    for ax in (ax_time, ax_acc):
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=100)
    return True
