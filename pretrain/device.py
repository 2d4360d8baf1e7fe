"""Host data on the training device without making the host wait for the GPU.

`torch.tensor(values, device="cuda")` and a plain `.to("cuda")` copy synchronously: the host stops until the
GPU has finished all queued work, so the next step's kernels cannot be queued behind this one's. Two cures:
constants are copied once per device and kept (`DeviceConstant`); per-step host tensors (a permutation drawn
on the CPU, the batch's image sizes) go through pinned memory with `non_blocking=True` (`to_device`). The
caching host allocator keeps a pinned block alive until its copy has finished, so the host tensor may be
dropped right away. On a CPU-only machine both are plain copies (nothing is pinned).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A host tensor on `device`, copied asynchronously (from pinned memory) when that is a CUDA device."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


class DeviceConstant:
    """A constant tensor, copied to each device (and dtype) once and then reused: `c.on(device, dtype)`."""

    def __init__(self, values: Sequence[float] | torch.Tensor, dtype: torch.dtype = torch.float32) -> None:
        self.host = torch.as_tensor(values, dtype=dtype).clone()
        self._copies: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def on(self, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The constant on `device` as `dtype` (default: its own); the same tensor object on every call.
        Callers must not modify it in place."""
        key = (torch.device(device), dtype or self.host.dtype)
        if key not in self._copies:
            self._copies[key] = to_device(self.host.to(key[1]), key[0])
        return self._copies[key]
