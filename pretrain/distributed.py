"""Process-group plumbing and the batch exchange MoCo needs (key gathering, Shuffle BN).

The model never asks for a rank or a device: it is handed a `BatchExchange`. `LocalExchange`
is the one-process case (the whole global batch is here); `DistributedExchange` all-gathers over
a torch.distributed process group, in rank order, as the official code does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mocobench.pretrain.device import to_device


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistEnv:
    """Set up from torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK); one process without it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but no CUDA device is visible; use train.device=cpu")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise ValueError(f"train.device must be auto, cpu or cuda, got {device!r}")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


class BatchExchange:
    """How a process sees the global batch: gather keys, shuffle/unshuffle for Shuffle BN."""

    world_size: int = 1
    rank: int = 0

    def gather(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def shuffle(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local inputs -> (this process's part of a randomly permuted global batch, permutation)."""
        x_all = self.gather(x)  # (world*b, ...)
        perm = self._permutation(x_all.shape[0], x_all.device)
        b = x.shape[0]
        return x_all[perm[self.rank * b:(self.rank + 1) * b]], perm

    def unshuffle(self, k: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
        """Keys computed on the shuffled batch -> keys of this process's own inputs, in order."""
        k_all = self.gather(k)
        b = k.shape[0]
        return k_all[torch.argsort(perm)[self.rank * b:(self.rank + 1) * b]]

    def _permutation(self, n: int, device: torch.device) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    # state of the shuffle generator, for exact resume
    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class LocalExchange(BatchExchange):
    """One process holds the global batch; the shuffle is a permutation of it."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _permutation(self, n: int, device: torch.device) -> torch.Tensor:
        # drawn on the host (its generator is checkpointed), copied without making the host wait for the GPU
        return to_device(torch.randperm(n, generator=self.generator), device)


class DistributedExchange(BatchExchange):
    """All-gather in rank order over a process group; rank 0's permutation is broadcast."""

    def __init__(self, seed: int = 0, group: dist.ProcessGroup | None = None) -> None:
        if not dist.is_initialized():
            raise RuntimeError("DistributedExchange needs an initialised torch.distributed process group")
        self.group = group
        self.world_size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def gather(self, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(self.world_size)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts, dim=0)

    def _permutation(self, n: int, device: torch.device) -> torch.Tensor:
        perm = to_device(torch.randperm(n, generator=self.generator), device)  # no host wait (device.py)
        dist.broadcast(perm, src=dist.get_global_rank(self.group, 0) if self.group else 0, group=self.group)
        return perm


def all_reduce_mean(value: float, device: torch.device) -> float:
    """Mean of a scalar over all ranks (the value itself without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
