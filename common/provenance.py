"""Provenance of a result or a checkpoint: git SHA, library versions, device, time.

Everything a reader needs to know where a number came from, gathered in one call so that every
record (pretraining checkpoints, detection trials) carries the same fields.
"""
from __future__ import annotations

import datetime as _dt
import importlib
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parent.parent
_LIBRARIES = ("torch", "torchvision", "detectron2", "fvcore", "numpy", "pycocotools", "pandas")


def git_sha(repo: Path = _REPO_ROOT) -> str | None:
    """The commit the code ran at, with a "-dirty" suffix when tracked files were modified."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def library_versions(names: tuple[str, ...] = _LIBRARIES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = getattr(importlib.import_module(name), "__version__", "unknown")
        except ImportError:
            out[name] = None
    return out


def device_info() -> dict[str, Any]:
    """CPU/GPU description of this process's machine (not of other ranks)."""
    import torch

    info: dict[str, Any] = {"hostname": socket.gethostname(), "cpu": platform.processor() or platform.machine(),
                            "cuda_available": torch.cuda.is_available(), "gpus": []}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda"] = torch.version.cuda
    return info


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def collect() -> dict[str, Any]:
    """All provenance fields at once: {"git_sha", "versions", "device", "time"}."""
    return {"git_sha": git_sha(), "versions": library_versions(), "device": device_info(), "time": now_iso()}
