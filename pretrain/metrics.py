"""Training metrics that never stop the device: losses are summed where they are computed and read later.

Reading a CUDA tensor's value (`.item()`, `float()`, `if torch.isfinite(...)`) makes the host wait until
the GPU has finished every queued kernel, so a step that reads its loss cannot overlap the next one.
`LossWindow` sums step losses on the device; `read_async()` starts a non-blocking copy of the window's
mean (all-reduced over ranks) into host memory and returns a `Reading`, whose `.value()` is taken one
log interval later, when the copy has long finished. On a CPU everything is immediate.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


class Reading:
    """A scalar on its way to the host; `value()` waits for it (normally already there)."""

    def __init__(self, tensor: torch.Tensor, **meta) -> None:
        self.meta = meta
        if tensor.is_cuda:
            self._host = torch.empty((), dtype=tensor.dtype, pin_memory=True)
            self._host.copy_(tensor, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host, self._event = tensor, None

    def value(self) -> float:
        if self._event is not None:
            self._event.synchronize()
        return float(self._host)


class LossWindow:
    """Sum of step losses over a window of steps, kept on the device (float64)."""

    def __init__(self, device: torch.device) -> None:
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.count = 0

    def add(self, loss: torch.Tensor) -> None:
        self.total += loss.detach().to(torch.float64)
        self.count += 1

    def read_async(self, **meta) -> Reading:
        """Mean over the window and over all ranks, on its way to the host; the window restarts."""
        mean = self.total / max(1, self.count)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(mean)  # queued on the device's stream (NCCL): no host wait
            mean = mean / dist.get_world_size()
        reading = Reading(mean, **meta)
        self.total = torch.zeros_like(self.total)
        self.count = 0
        return reading
