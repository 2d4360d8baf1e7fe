"""PreciseBN over all processes: every BN layer's population statistics from the images of every rank,
identical on every rank.

Detectron2's PreciseBN hook calls fvcore's `update_bn_stats` in each process. That function averages each
layer's per-batch statistics weighted by the *local* batch size (images x H x W of this rank's batch).
Under naiveSyncBN / SyncBN the per-batch statistics are already the all-reduced ones, but the weights are
not, so with multi-scale training (another image size on each rank) the ranks end with different
running_mean / running_var (detectron2#5398); with plain BN each rank keeps the statistics of its own
images only. Rank 0's are then checkpointed, while every rank evaluates its shard of the test set with
its own: the evaluation mixes models.

`update_bn_stats_all_ranks` measures the statistics directly instead: a forward pre-hook on each BN layer
in training mode adds up, for this rank's input x [N, C, ...], the count N*H*W and the per-channel sums of
x and x^2 (float64). After `num_iter` batches one all-reduce sums them over the ranks:

    mean = sum(x) / count,   var = sum(x^2) / count - mean^2     (per channel, over every rank's pixels)

In one process this is exactly fvcore's population estimate (its batch mean weighted by the batch size,
and mean^2 + biased batch variance = E[x^2]); with several it is the same estimate over the images of
all ranks together, so PreciseBN sees NUM_ITER x IMS_PER_BATCH images whatever the number of processes.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any, Iterable

import torch
import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils.events import EventStorage
from fvcore.nn.precise_bn import get_bn_modules
from torch import nn

log = logging.getLogger("detectron2").getChild("precise_bn")  # into the trial's log.txt (setup_logger)


class _Moments:
    """Per-channel count, sum(x) and sum(x^2) of every input one BN layer received (float64)."""

    def __init__(self, channels: int, device: torch.device):
        self.sums = torch.zeros(2 * channels + 1, dtype=torch.float64, device=device)  # [sum x | sum x^2 | n]
        self.channels = channels

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach()
        c = self.channels
        dims = [d for d in range(x.dim()) if d != 1]  # every axis but the channel one: N, H, W
        self.sums[:c] += x.sum(dim=dims, dtype=torch.float64)
        self.sums[c:2 * c] += x.square().sum(dim=dims, dtype=torch.float64)
        self.sums[2 * c] += x.numel() // c


@torch.no_grad()
def update_bn_stats_all_ranks(model: nn.Module, data: Iterable[Any], num_iter: int) -> int:
    """Set running_mean / running_var of every BN layer of `model` in training mode to its population
    statistics over `num_iter` batches of `data` on every rank (the same values on every rank). Every rank
    must call it with the same num_iter (the forward of a synchronised BN is a collective). Returns the
    number of BN layers updated."""
    layers = get_bn_modules(model)
    if not layers:
        return 0
    moments = [_Moments(bn.num_features, bn.running_mean.device) for bn in layers]
    handles = [bn.register_forward_pre_hook(m) for bn, m in zip(layers, moments)]
    try:
        seen = 0
        for inputs in itertools.islice(data, num_iter):
            model(inputs)
            seen += 1
    finally:
        for h in handles:
            h.remove()
    if seen != num_iter:
        raise RuntimeError(f"PreciseBN: the data loader stopped after {seen} of {num_iter} batches")
    flat = torch.cat([m.sums for m in moments])  # one all-reduce for every layer
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(flat)
    offset = 0
    for bn, m in zip(layers, moments):
        c = m.channels
        sums, offset = flat[offset:offset + 2 * c + 1], offset + 2 * c + 1
        count = sums[2 * c]
        if count == 0:
            continue  # the layer ran on no rank (e.g. a head without inputs): keep its statistics
        mean = sums[:c] / count
        var = (sums[c:2 * c] / count - mean.square()).clamp(min=0)
        bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
        bn.running_var.copy_(var.to(bn.running_var.dtype))
    return len(layers)


class PreciseBNAllRanks(HookBase):
    """Detectron2's PreciseBN schedule (every `period` iterations and after the last one) with the statistics
    of `update_bn_stats_all_ranks`. Registered in every process, before the checkpointer and the evaluation."""

    def __init__(self, period: int, model: nn.Module, data_loader: Iterable[Any], num_iter: int):
        self.period, self.model, self.data_loader, self.num_iter = period, model, data_loader, num_iter
        self._data_iter = None

    def after_step(self):
        next_iter = self.trainer.iter + 1
        if next_iter == self.trainer.max_iter or (self.period > 0 and next_iter % self.period == 0):
            self.update_stats()

    def update_stats(self) -> None:
        if self._data_iter is None:
            self._data_iter = iter(self.data_loader)  # one iterator: later runs see new batches
        log.info(f"PreciseBN over all ranks: {self.num_iter} batches per rank")
        with EventStorage():  # the forward's losses and events are discarded
            update_bn_stats_all_ranks(self.model, self._data_iter, self.num_iter)
