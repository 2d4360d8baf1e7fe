"""Batch norm over sub-batches: one process computing BN statistics the way N GPUs do.

The paper trains on 8 GPUs, each normalising its own 32 images. On one device with the whole
batch, BN would see all 256 at once and the query/key pair could "cheat" through the shared
statistics (see the MoCo paper, Shuffle BN). `SplitBatchNorm2d` splits the batch into contiguous
chunks -- chunk r holds what rank r of an r-GPU run would hold -- and normalises each chunk with its
own statistics. Its state dict is a plain BatchNorm2d's, so checkpoints are interchangeable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are computed per contiguous chunk of the batch."""

    def __init__(self, num_features: int, *, num_splits: int = 1, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        if num_splits < 1:
            raise ValueError(f"num_splits must be >= 1, got {num_splits}")
        if self.momentum is None:
            raise ValueError("SplitBatchNorm2d needs a numeric momentum (cumulative averaging is not supported)")
        self.num_splits = num_splits

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_splits={self.num_splits}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.num_splits
        if not self.training or s == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        if n % s:
            raise ValueError(f"batch of {n} cannot be split into {s} BN groups: make the per-process batch "
                             f"a multiple of moco.bn_groups / world size")
        # (N, C, H, W) -> (N/s, s*C, H, W): chunk r of the batch becomes channel block r.
        xs = x.reshape(s, n // s, c, h, w).transpose(0, 1).reshape(n // s, s * c, h, w)
        running_mean = self.running_mean.repeat(s)
        running_var = self.running_var.repeat(s)
        out = F.batch_norm(xs, running_mean, running_var, self.weight.repeat(s), self.bias.repeat(s),
                           True, self.momentum, self.eps)
        with torch.no_grad():
            # each chunk updated its own copy of the running stats; keep their mean, as an average over GPUs would
            self.running_mean.copy_(running_mean.view(s, c).mean(0))
            self.running_var.copy_(running_var.view(s, c).mean(0))
            self.num_batches_tracked.add_(1)
        return out.reshape(n // s, s, c, h, w).transpose(0, 1).reshape(n, c, h, w)
