"""Decisions every process of a torch.distributed job takes together: a condition seen by one rank (a
non-finite loss, an output folder it cannot see) stops every rank at the same point, never one rank alone
(the others would wait for it in their next collective until the backend's timeout).

`ranks_with(flag)` is one all-reduce of a one-hot vector: every rank gets the same list of the ranks on
which the flag is true. Outside a process group (one process) it is the flag of this process."""
from __future__ import annotations

import torch
import torch.distributed as dist


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def collective_device(device: torch.device | str | None = None) -> torch.device:
    """Where a collective's tensor must be: the given device, else the current GPU under NCCL, else the CPU."""
    if device is not None:
        return torch.device(device)
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def ranks_with(flag: bool, device: torch.device | str | None = None) -> list[int]:
    """The ranks whose flag is true, the same list on every rank (every rank must call this at the same point)."""
    if not distributed():
        return [0] if flag else []
    world, rank = dist.get_world_size(), dist.get_rank()
    votes = torch.zeros(world, dtype=torch.int32, device=collective_device(device))
    votes[rank] = int(bool(flag))
    dist.all_reduce(votes)
    return [r for r, v in enumerate(votes.tolist()) if v]
