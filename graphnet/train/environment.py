"""How a process runs, resolved once: :class:`Options` are what the user asks for, and
:func:`resolve_runtime` makes from them (and torchrun's environment) the :class:`Runtime`
that the trainer, its data, the header and the checkpoint read.

Every option is checked here, before any data loads: the device (``auto`` is CUDA if available;
a torchrun rank runs on ``cuda:<LOCAL_RANK>``), the precision (``auto`` is bf16 on CUDA and on a CPU
that computes bf16 in hardware, :func:`native_bf16`; fp32 elsewhere: benchmarks/README.md,
``cpu_speed.py``) and the memory format (``auto`` is channels_last: on the CPU the faster layout
for both recipe families in both precisions, measured in ``cpu_speed.py``, ghost batch norm
keeping it by ``GhostBatchNorm``'s ``'auto'`` method; on CUDA the layout airbench trains in).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .distributed import Dist, from_env
from .errors import TrainError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


@dataclass(frozen=True)
class Options:
    """How to run, apart from the recipe. ``device``, ``precision`` and ``memory_format`` are
    resolved by :func:`resolve_runtime`; ``progress`` None shows the step counter only when the
    console is a terminal."""

    device: str = "auto"  # auto, cpu, cuda or cuda:N
    precision: str = "auto"  # PRECISIONS
    compile: bool = False
    progress: bool | None = None
    memory_format: str = "auto"  # auto or a key of MEMORY_FORMATS
    ghost_bn_method: str | None = None  # GhostBatchNorm.METHODS; None keeps the modules' default
    sync_bn: bool = False  # several processes: plain batch norms over the global batch (distributed.py)
    augment: bool = True  # False: no translation, flip or cutout (for exact comparisons of runs)
    workers: int = 2  # DataLoader worker processes of the streaming path


@dataclass(frozen=True)
class Runtime:
    """This process's resolved options: its place among the processes and its device
    (``dist``), the precision (fp32 | bf16: autocast on the device | fp16, CUDA only: Page's
    fp16 weights, batch norms in fp32), the memory format of images and weights, the weights' ``dtype``, the
    ``data_dtype`` the data set is kept in on the device, and the ``autocast`` dtype (None: no
    autocast)."""

    dist: Dist = Dist()
    precision: str = "fp32"
    memory_format: torch.memory_format = torch.contiguous_format
    dtype: torch.dtype = torch.float32
    data_dtype: torch.dtype = torch.float32
    autocast: torch.dtype | None = None

    @property
    def device(self) -> torch.device:
        return self.dist.device


def resolve_runtime(options: Options) -> Runtime:
    """The :class:`Runtime` of ``options`` in this process (see the module doc); TrainError or
    DistributedError, in one line, for an option that cannot be had here."""
    dist = from_env(options.device)
    precision = _precision(options.precision, dist.device)
    return Runtime(dist, precision, _memory_format(options.memory_format),
                   torch.float16 if precision == "fp16" else torch.float32, data_dtype(precision),
                   torch.bfloat16 if precision == "bf16" else None)


def data_dtype(precision: str) -> torch.dtype:
    """The dtype the data set is kept in on the device: 16 bits for bf16 and fp16 runs (half the
    memory and bandwidth, as Page and airbench), fp32 otherwise."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX tiles or AVX512-BF16 instructions), as
    torch reports it (``torch.cpu.get_capabilities``), else as the kernel's CPU flags say."""
    if hasattr(torch.cpu, "get_capabilities"):
        capabilities = torch.cpu.get_capabilities()
        return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def _precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise TrainError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" or (device.type == "cpu" and native_bf16()) else "fp32"
    if device.type != "cuda" and precision == "fp16":
        raise TrainError(f"precision fp16 needs CUDA; on {device.type} use bf16 or fp32")
    return precision


def _memory_format(name: str) -> torch.memory_format:
    name = "channels_last" if name == "auto" else name
    if name not in MEMORY_FORMATS:
        raise TrainError(f"memory format must be one of auto, {', '.join(MEMORY_FORMATS)}, not {name!r}")
    return MEMORY_FORMATS[name]
