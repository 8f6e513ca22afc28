"""Where independent runs go: one after another in this process (:class:`Embedded`, the
default), or in parallel on Ray (:class:`RayEngine`, the optional extra ``graphnet[ray]``).

An engine maps ``fn(shared, job)`` over a batch of jobs and returns the results in the jobs'
order; ``shared`` (the data set, the setups) is shipped once per batch. On Ray each job is a
task holding one GPU where the cluster has GPUs, else ``cpus_per_run`` cores (torch runs that
many threads in it); ``slots`` is how many run at once. A run depends only on its job (its
seed, epochs and setup), so both engines give the same results for the same jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import TrainError

ENGINES = ("embedded", "ray")


class Embedded:
    """The runs one after another in this process."""

    slots = 1

    def map(self, fn: Callable[[Any, Any], Any], shared: Any, jobs: Sequence[Any]) -> list[Any]:
        return [fn(shared, job) for job in jobs]

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "embedded: runs one after another in this process"


def _threads_and_call(fn: Callable[[Any, Any], Any], threads: int, shared: Any, job: Any) -> Any:
    """A Ray task: ``fn(shared, job)`` with torch on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    return fn(shared, job)


class RayEngine:
    """The runs as Ray tasks: on the cluster at ``address`` (``auto``, ``ray://host:10001``), or
    on one started here (with ``num_cpus`` cores; default all). ``device`` is the run's
    ``--device``: ``cpu`` asks for cores even where the cluster has GPUs."""

    def __init__(self, address: str | None = None, cpus_per_run: int = 1, device: str = "auto",
                 num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise TrainError("--engine ray needs Ray: pip install 'graphnet[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            try:
                ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                         log_to_driver=False, logging_level="warning")
            except ConnectionError as e:
                raise TrainError(f"--ray-address {address}: {e}") from None
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0)) if device != "cpu" else 0
        self.cpus = int(resources.get("CPU", 1))
        self.cpus_per_run = cpus_per_run
        if self.gpus:
            self.slots, self.task = self.gpus, {"num_gpus": 1, "num_cpus": 1}
        else:
            if cpus_per_run > self.cpus:
                raise TrainError(f"--cpus-per-run {cpus_per_run} is more than the {self.cpus} cores of the Ray cluster")
            self.slots, self.task = self.cpus // cpus_per_run, {"num_cpus": cpus_per_run}
        self.remote = ray.remote(**self.task)(_threads_and_call)

    def map(self, fn: Callable[[Any, Any], Any], shared: Any, jobs: Sequence[Any]) -> list[Any]:
        ray = self.ray
        ref = ray.put(shared)
        threads = self.task["num_cpus"]
        try:
            return ray.get([self.remote.remote(fn, threads, ref, job) for job in jobs])
        except ray.exceptions.RayTaskError as e:  # the run's own error, as in the embedded engine
            raise e.cause from None

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()

    def describe(self) -> str:
        per = "1 GPU" if self.gpus else f"{self.cpus_per_run} core(s)"
        return f"ray: {self.slots} runs at once, {per} each ({self.cpus} cores, {self.gpus} GPUs in the cluster)"


def make_engine(name: str, address: str | None = None, cpus_per_run: int = 1, device: str = "auto"):
    """The engine named ``name`` (:data:`ENGINES`); TrainError for a Ray option without Ray."""
    if name not in ENGINES:
        raise TrainError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    if name == "embedded":
        if address is not None:
            raise TrainError("--ray-address needs --engine ray")
        return Embedded()
    return RayEngine(address, cpus_per_run, device)
