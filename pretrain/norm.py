"""Batch norm over sub-batches: one process computing BN statistics the way N GPUs do.

The paper trains on 8 GPUs, each normalising its own 32 images. On one device with the whole
batch, BN would see all 256 at once and the query/key pair could "cheat" through the shared
statistics (see the MoCo paper, Shuffle BN). `SplitBatchNorm2d` splits the batch into contiguous
chunks -- chunk r holds what rank r of an r-GPU run would hold -- and normalises each chunk with its
own statistics. Two equivalent computations:
  fold        the chunks folded into channels, (N, C, H, W) -> (N/s, s*C, H, W), one `F.batch_norm` over
              the whole batch, unfolded. In NCHW one copy each way; in channels_last the fold and unfold
              are copies too and the output comes back contiguous.
  per chunk   one `F.batch_norm` per chunk, on views of the input (splitting the batch dimension is free
              in every format): only the output is written, in the input's memory format.
`per_chunk=None` (the default) takes the per-chunk computation for channels_last activations on CUDA,
where the fold's copies and format changes cost memory traffic, and the fold everywhere else: on a CPU,
PyTorch's batch_norm kernel is several times slower per element on small chunks, in both formats
(benchmarks/perf/results/split_bn.md). Its state dict is a plain BatchNorm2d's, so checkpoints are
interchangeable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are computed per contiguous chunk of the batch."""

    def __init__(self, num_features: int, *, num_splits: int = 1, per_chunk: bool | None = None, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        if num_splits < 1:
            raise ValueError(f"num_splits must be >= 1, got {num_splits}")
        if self.momentum is None:
            raise ValueError("SplitBatchNorm2d needs a numeric momentum (cumulative averaging is not supported)")
        self.num_splits = num_splits
        self.per_chunk = per_chunk  # None: per chunk for channels_last on CUDA, the fold otherwise

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_splits={self.num_splits}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.num_splits
        if not self.training or s == 1:
            return super().forward(x)
        n = x.shape[0]
        if n % s:
            raise ValueError(f"batch of {n} cannot be split into {s} BN groups: make the per-process batch "
                             f"a multiple of its BN groups (pretrain/world.py)")
        per_chunk = self.per_chunk
        if per_chunk is None:
            per_chunk = x.is_cuda and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return self._per_chunk(x, s) if per_chunk else self._folded(x, s)

    def _per_chunk(self, x: torch.Tensor, s: int) -> torch.Tensor:
        # each chunk updates its own copy of the running statistics, all starting from the current ones
        means = self.running_mean.repeat(s, 1)  # s x C
        vars_ = self.running_var.repeat(s, 1)
        # split: views of the input; its backward is one concatenation of the chunks' gradients
        out = [F.batch_norm(chunk, means[r], vars_[r], self.weight, self.bias, True, self.momentum, self.eps)
               for r, chunk in enumerate(x.split(x.shape[0] // s))]
        self._keep_mean(means, vars_)
        return torch.cat(out)  # N x C x H x W, in the input's memory format

    def _folded(self, x: torch.Tensor, s: int) -> torch.Tensor:
        n, c, h, w = x.shape
        # (N, C, H, W) -> (N/s, s*C, H, W): chunk r of the batch becomes channel block r
        xs = x.reshape(s, n // s, c, h, w).transpose(0, 1).reshape(n // s, s * c, h, w)
        means, vars_ = self.running_mean.repeat(s), self.running_var.repeat(s)
        out = F.batch_norm(xs, means, vars_, self.weight.repeat(s), self.bias.repeat(s), True, self.momentum,
                           self.eps)
        self._keep_mean(means.view(s, c), vars_.view(s, c))
        return out.reshape(n // s, s, c, h, w).transpose(0, 1).reshape(n, c, h, w)

    @torch.no_grad()
    def _keep_mean(self, means: torch.Tensor, vars_: torch.Tensor) -> None:
        """Each chunk updated its own copy (s x C) of the running statistics; keep their mean, as an average
        over GPUs would."""
        self.running_mean.copy_(means.mean(0))
        self.running_var.copy_(vars_.mean(0))
        self.num_batches_tracked.add_(1)
