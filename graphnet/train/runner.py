"""Runs with their logs: the configuration header and per-epoch table on the console, and per
run a folder with ``log.tsv``, ``log.json``, ``curves.png`` and ``checkpoint.pt``."""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..data import Dataset
from ..data.imagefolder import Source
from ..data.load import data_sizes
from ..graph import Graph
from .checkpoint import save_checkpoint
from .distributed import Dist
from .environment import MEMORY_FORMATS, Options, Runtime
from .errors import TrainError
from .flops import training_flops
from .graphs import Graphs, check_batch_size, rewrite_graphs
from .log import plot_curves, summarise, table_header, table_row, write_json, write_tsv
from .loop import RunResult, Trainer
from .provenance import provenance
from .recipes import PassStep, Recipe, as_pass

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # what timeout, a scheduler or a dropped ssh session sends


@dataclass(frozen=True)
class Setup:
    """A resolved training configuration: graphs, recipe, the passes, and ``config`` (plain
    data describing all of it, for the header, the logs and the checkpoint)."""

    graphs: Graphs
    recipe: Recipe
    passes: list[PassStep]
    config: dict[str, Any]


def make_setup(net: Graph, recipe: Recipe, passes: Sequence[PassStep] | None = None, spec: str = "",
               world_size: int = 1, **config: Any) -> Setup:
    """Apply ``passes`` (default the recipe's) to ``net`` and describe the run; ``config`` adds
    entries. A pass that finds nothing to rewrite is a NoMatchError that says how to leave it
    out; the batch size is checked against the graphs and the ``world_size`` processes
    (:func:`~.graphs.check_batch_size`)."""
    from ..rewrites import NoMatchError, split_passes

    passes = [as_pass(p) for p in (recipe.passes if passes is None else passes)]
    split = split_passes(passes)
    try:
        graphs = rewrite_graphs(net, split)
    except NoMatchError as e:
        raise NoMatchError(e.pass_name, f"{e.message}; leave it out with --without {e.pass_name}, or use "
                                        f"--recipe baseline", e.path) from None
    check_batch_size(graphs.net, recipe.batch_size, world_size)
    ema, lookahead = recipe.ema, recipe.lookahead
    described = {
        "recipe": f"{recipe.name} ({recipe.title})",
        "spec": spec,
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        **describe_optimizer(recipe),
        "net_passes": describe_passes(split["net"]),
        "loss_passes": describe_passes(split["loss"]),
        "eval_passes": describe_passes(split["eval"]),
        "EMA": f"momentum {ema['momentum']} every {ema['every']} steps" if ema else "off",
        "lookahead": (f"every {lookahead['every']} steps from epoch {lookahead['start_epoch']}, decay "
                      f"{lookahead['decay_base']}^{lookahead['every']} x (step / steps)^{lookahead['decay_pow']:g}"
                      if lookahead else "off"),
        "TTA": f"on ({', '.join(name for name, _ in split['eval'])})" if graphs.tta else "off",
        "augmentation": f"translate ±{recipe.pad} px (reflect), {recipe.flip} flip, "
                        + (f"cutout {recipe.cutout}x{recipe.cutout}" if recipe.cutout else "no cutout"),
        "preprocessing": "on the device" if recipe.gpu_preprocessing else "on the CPU, batches moved to the device",
    }
    return Setup(graphs, recipe, passes, {**described, **config})


def describe_optimizer(recipe: Recipe) -> dict[str, str]:
    """The header's lines for the recipe's optimizer, lr schedule and weight decay."""
    knots = f"at epochs {_numbers(recipe.lr_knots)}"
    params = recipe.optimizer_params
    if recipe.optimizer == "page":
        return {"lr": f"{_numbers(recipe.lr_values)} {knots}, per sample (/ batch size per step on the summed "
                      f"loss), Nesterov momentum {recipe.momentum}",
                "weight_decay": f"{recipe.weight_decay:g} per sample (x batch size per step)"}
    if recipe.optimizer == "decoupled":
        return {"optimizer": f"decoupled Nesterov SGD (airbench94), momentum {params['momentum']}",
                "lr": f"{params['lr']:g} per 1,024 examples x {_numbers(recipe.lr_values)} {knots}",
                "weight_decay": f"{params['weight_decay']:g} per 1,024 examples, decoupled from the lr"}
    return {"optimizer": f"Muon (conv filters: lr {params['filter_lr']:g}, momentum {params['filter_momentum']}, "
                         f"{params['ns_steps']} Newton-Schulz steps) + Nesterov SGD (momentum {params['momentum']}: "
                         f"lr {params['bias_lr']:g} biases, {params['head_lr']:g} head)",
            "lr": f"x {_numbers(recipe.lr_values)} {knots}",
            "weight_decay": f"{params['weight_decay']:g} per example, decoupled from the lr"}


def describe_runtime(runtime: Runtime, options: Options) -> dict[str, str]:
    """The header's lines for how the run computes: precision, device, memory format, ghost batch
    norm's method and compilation."""
    from ..rewrites.ghost_bn import GhostBatchNorm

    memory_format = next(name for name, value in MEMORY_FORMATS.items() if value == runtime.memory_format)
    auto = GhostBatchNorm.auto_method(runtime.device.type, memory_format == "channels_last")
    return {"precision": runtime.precision, "device": str(runtime.device), "memory_format": memory_format,
            "ghost_bn_method": options.ghost_bn_method or f"auto ({auto})", "compile": "on" if options.compile else "off"}


def describe_processes(dist: Dist, batch_size: int) -> dict[str, str]:
    """The header's ``processes`` line when there are several: how they share ``batch_size``."""
    if not dist.distributed:
        return {}
    backend = "NCCL" if dist.device.type == "cuda" else "gloo"
    return {"processes": f"{dist.world_size} (DistributedDataParallel, {backend}), each "
                         f"{dist.local_batch(batch_size)} images of the batch of {batch_size} per step"}


def describe_compute(setup: Setup, dataset: Dataset | Source) -> dict[str, str]:
    """The header's line for the run's training FLOPs (``flops.training_flops``) on ``dataset``."""
    n, _, shape, _ = data_sizes(dataset)
    compute = training_flops(setup.graphs.net, setup.recipe.epochs, n, setup.recipe.batch_size, shape)
    return {"training_compute": str(compute)}


def _numbers(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def describe_passes(passes: Sequence[PassStep]) -> str:
    """``celu(alpha=0.075), tta_flip``, or ``none``."""
    def one(name: str, params: dict) -> str:
        args = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in params.items())
        return f"{name}({args})" if args else name

    return ", ".join(one(*p) for p in passes) or "none"


def header(config: dict[str, Any]) -> str:
    """The configuration as aligned ``key  value`` lines."""
    width = max(map(len, config))
    return "\n".join(f"  {key.replace('_', ' ').ljust(width)}  {value}" for key, value in config.items())


# what a run writes into its folder; a folder holding any of them (or a run folder holding them) has a run
RUN_FILES = ("log.json", "log.tsv", "curves.png", "checkpoint.pt", "summary.json",
             "ablate.json", "ablate.tsv", "ablate.png", "trim.json", "trials.tsv")


def earlier_run_files(out: Path) -> list[Path]:
    """The files of earlier runs in ``out``: RUN_FILES in it or in its subfolders (``run<k>``,
    ablation steps and their runs)."""
    return sorted(p for depth in ("", "*/", "*/*/") for name in RUN_FILES for p in out.glob(depth + name))


def prepare_out(out: Path, overwrite: bool = False) -> Path:
    """Make ``out`` ready for a run's files, before anything is loaded. A folder that holds an
    earlier run is refused (runs are never mixed), unless ``overwrite``: then that run's files
    go first. TrainError if ``out`` is a file or cannot be written."""
    if str(out) == "":
        raise TrainError("the output folder is empty: give --out a folder")
    if out.exists() and not out.is_dir():
        raise TrainError(f"output folder {out} is a file")
    earlier = earlier_run_files(out) if out.is_dir() else []
    if earlier and not overwrite:
        raise TrainError(f"output folder {out} holds an earlier run ({earlier[0].relative_to(out)}): "
                         f"choose another --out, or add --overwrite to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
        for path in earlier:
            path.unlink()
    except OSError as e:
        raise TrainError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    return out


class Stopped(KeyboardInterrupt):
    """A run stopped by ``signal`` (a :data:`STOP_SIGNALS` name): it ends as Ctrl-C ends it."""

    def __init__(self, signum: int):
        self.signum, self.signal = signum, signal.Signals(signum).name
        super().__init__(f"stopped by {self.signal}")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """For the body, each of :data:`STOP_SIGNALS` raises :class:`Stopped` (as SIGINT raises
    KeyboardInterrupt); the handlers before are restored after. Off the main thread, where
    Python takes no signal handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    before = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def train_runs(setup: Setup, dataset: Dataset | Source, options: Options, seeds: Sequence[int], out: Path,
               console: TextIO, data_record: dict[str, Any] | None = None, command: str = "",
               runtime: Runtime | None = None) -> list[RunResult]:
    """Train one run per seed (one trainer, so compilation and warm-up happen once), logging
    each into ``out`` (``out/run<k>`` for several). ``data_record`` tells ``graphnet eval`` how
    to load the data set again (its source and subsets); ``command`` is recorded with the
    versions and device. Each log.json says its ``status``: ``running``, ``done``, or ``failed``
    / ``interrupted`` (Ctrl-C, or one of :data:`STOP_SIGNALS`) with the ``reason``; the exception
    then propagates, the log kept. With several processes (``runtime.dist``) every rank trains,
    and rank 0 alone prints and writes."""
    trainer = Trainer(setup.graphs, setup.recipe, dataset, options, console, runtime)
    runtime = trainer.runtime
    main = runtime.dist.is_main

    def say(text: str = "") -> None:
        if main:
            print(text, file=console, flush=True)

    def save(write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return write(*args, **kwargs) if main else None

    origin = provenance(runtime.device, runtime.precision, command)
    results = []
    for k, seed in enumerate(seeds, 1):
        folder = out / f"run{k}" if len(seeds) > 1 else out
        save(folder.mkdir, parents=True, exist_ok=True)
        rows: list[dict[str, Any]] = []
        log = {"status": "running", "config": {**setup.config, "seed": seed}, "provenance": origin, "rows": rows}

        def on_epoch(row: dict[str, Any]) -> None:
            rows.append(row)
            say(table_row(row))
            save(write_tsv, rows, folder / "log.tsv")
            save(write_json, log, folder / "log.json")

        if len(seeds) > 1:
            say(f"run {k}/{len(seeds)}: seed {seed}")
        say(table_header())
        save(write_json, log, folder / "log.json")
        try:
            with stop_on_signals():
                result = trainer.run(seed, on_epoch)
        except KeyboardInterrupt as e:
            reason = str(e) if isinstance(e, Stopped) else "interrupted by the user (KeyboardInterrupt)"
            save(write_json, {**log, "status": "interrupted", "reason": reason}, folder / "log.json")
            raise
        except Exception as e:
            save(write_json, {**log, "status": "failed", "reason": f"{type(e).__name__}: {e}"}, folder / "log.json")
            raise
        log["status"] = "done"
        log["result"] = {"test_acc": result.test_acc, "test_loss": result.test_loss,
                         "train_time": result.train_time, "prep_time": result.prep_time,
                         "eval_time": result.eval_time, "images_per_s": result.images_per_s}
        if save(plot_curves, rows, folder / "curves.png", title=f"{setup.recipe.name}, seed {seed}") is False:
            say("(curves.png not drawn: matplotlib is not installed)")
        save(save_checkpoint, folder, setup.graphs, setup.recipe, setup.passes, log["config"], result, data_record,
             origin)
        save(write_json, log, folder / "log.json")
        say(f"final test acc {result.test_acc:.4f}{' (TTA)' if setup.graphs.tta else ''} | "
            f"train time {result.train_time:.2f} s (preprocessing {result.prep_time:.2f} s) | "
            f"final eval {result.eval_time:.2f} s | {result.images_per_s:.0f} train images/s")
        say(f"written: {folder / 'log.json'}, {folder / 'checkpoint.pt'}"
            + (f"; curves: {folder / 'curves.png'}" if (folder / "curves.png").is_file() else ""))
        results.append(result)
    if len(results) > 1:
        acc, time = summarise([r.test_acc for r in results]), summarise([r.train_time for r in results])
        say(f"{len(results)} runs: test acc mean {acc['mean']:.4f} min {acc['min']:.4f} max {acc['max']:.4f} "
            f"std {acc['std']:.4f} | train time mean {time['mean']:.2f} s min {time['min']:.2f} "
            f"max {time['max']:.2f} std {time['std']:.2f}")
        save(write_json, {"config": setup.config, "provenance": origin, "seeds": list(seeds), "test_acc": acc,
                          "train_time": time}, out / "summary.json")
    return results
