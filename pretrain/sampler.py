"""Global-batch sampling: every epoch, one seeded permutation cut into global batches; rank r takes the
r-th contiguous slice of each. One process (world 1) therefore sees exactly the batches that N ranks
see together, in rank order -- which is what the queue (keys gathered in rank order) and the
sub-batch BN of the single-process path rely on."""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class GlobalBatchSampler(Sampler[list[int]]):
    def __init__(self, num_samples: int, *, global_batch: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle: bool = True) -> None:
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by the world size {world_size}")
        if num_samples < global_batch:
            raise ValueError(f"the dataset has {num_samples} images, fewer than one global batch of "
                             f"{global_batch}: lower optim.batch_size or add images")
        self.num_samples, self.global_batch = num_samples, global_batch
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        self.local_batch = global_batch // world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples // self.global_batch  # incomplete last batch dropped (MoCo needs fixed batches)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.num_samples)
        lo = self.rank * self.local_batch
        for i in range(len(self)):
            batch = order[i * self.global_batch:(i + 1) * self.global_batch]
            yield batch[lo:lo + self.local_batch].tolist()
