"""Batch preparation, chosen once when the trainer is built: a loader batch -> (images, targets) on the device.

`data.aug_device=cpu`: the loader's workers already made the views; they only move to the device.
`data.aug_device=gpu`: the workers decode only; the whole batch is cropped and coloured on the device
(batch_aug.py), seeded per step and rank so that a resumed run draws the same views as an uninterrupted one.
`data.decode=gpu` as well: the workers only read the files; the batch is decoded on the device first (decode.py).
"""
from __future__ import annotations

import torch

from mocobench.pretrain.decode import decode_padded


class DeviceBatch:
    """(views, targets) from the loader -> the device. Views: N x 2 x C x H x W (MoCo) or N x C x H x W."""

    collate_fn = None  # the loader's default collation

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, batch: tuple[torch.Tensor, ...], step: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = batch
        return (images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True))


class DeviceAugmentedBatch:
    """(decoded uint8 images padded to the batch's largest, their sizes, targets) -> views made on the device,
    as the CPU path's loader gives them (MoCo: N x 2 x C x H x W; supervised: N x C x H x W)."""

    def __init__(self, augment, *, device: torch.device, views: int, seed: int, rank: int, collate_fn) -> None:
        self.augment, self.device, self.views, self.seed, self.rank = augment, device, views, seed, rank
        self.collate_fn = collate_fn
        self.generator = torch.Generator(device)

    def augment_views(self, images: torch.Tensor, sizes: torch.Tensor, step: int) -> torch.Tensor:
        """The views of one step's decoded images (already on the device)."""
        self.generator.manual_seed(hash((self.seed, step, self.rank)) & 0x7FFF_FFFF_FFFF)
        views = self.augment.views(images, sizes, self.views, self.generator)
        return views if self.views == 2 else views[:, 0]

    def __call__(self, batch: tuple[torch.Tensor, ...], step: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, sizes, targets = batch
        views = self.augment_views(images.to(self.device, non_blocking=True), sizes, step)
        return views, targets.to(self.device, non_blocking=True)


class DeviceDecodedBatch(DeviceAugmentedBatch):
    """(files as read, targets) -> decoded on the device (nvJPEG on CUDA), padded, then as DeviceAugmentedBatch."""

    def __call__(self, batch: tuple, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        encoded, targets = batch
        views = self.augment_views(decode_padded(encoded, self.device), encoded.sizes, step)
        return views, targets.to(self.device, non_blocking=True)
