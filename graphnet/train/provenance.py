"""Where a run's numbers come from: versions, commit, device, precision and command, for every
log.json and checkpoint."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

SOURCE = Path(__file__).resolve().parents[2]  # the repository root, when running from a checkout


def graphnet_version() -> str:
    """The installed package's version, or ``'unknown'`` when running from a source tree without one."""
    try:
        return metadata.version("graphnet")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_commit() -> str | None:
    """``HEAD`` of the checkout graphnet runs from (``+dirty`` with uncommitted changes), or None
    outside a git checkout (an installed wheel)."""
    if not (SOURCE / ".git").exists():
        return None
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()

        return git("rev-parse", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def provenance(device: torch.device | str, precision: str, command: str) -> dict[str, Any]:
    """Plain data: graphnet version and git commit, torch, CUDA and cuDNN versions, device name,
    precision and the full command line."""
    device = torch.device(device)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"graphnet": graphnet_version(), "git_commit": git_commit(), "torch": str(torch.__version__),
            "cuda": torch.version.cuda, "cudnn": cudnn, "device": str(device), "device_name": device_name(device),
            "precision": precision, "command": command}
