"""MoCo's augmentations one image at a time, on the CPU in the loader's workers (`data.aug_device=cpu`), and the
evaluation transform. PIL image in, normalised float tensor out (torchvision transforms).

The other augmentation path, the same recipe on a whole batch on the training device (`data.aug_device=gpu`),
is `pretrain/batch_aug.py`; a change to the recipe goes in both, and tests/pretrain/test_batch_aug.py compares
their parameters and output statistics. The recipe's shared settings (normalisation, blur) are defined here.
"""
from __future__ import annotations

from typing import Callable

import torch
from torchvision import transforms as T

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def blur_settings(size: int) -> tuple[int, tuple[float, float]]:
    """Kernel size and sigma range of the v2 blur at this image size.

    Kernel: ~10% of the image, odd. Sigma 0.1-2 px is the recipe's at 224 px; smaller images get proportionally
    less blur (at 64 px, sigma 2 would wipe out the shapes), so that blur removes the same share of detail at
    any size."""
    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
    return kernel, (0.1 * min(1.0, size / 224), 2.0 * min(1.0, size / 224))


class TwoCrops:
    """Two independent augmentations of one image: (query, key)."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform

    def __call__(self, image):
        return torch.stack([self.transform(image), self.transform(image)])


def moco_augmentation(version: str, size: int, min_scale: float = 0.2) -> T.Compose:
    """v1: the paper's; v2: aug+ (jitter p=0.8 with hue 0.1, blur sigma 0.1-2 with p=0.5, scaled by size/224
    below 224 px)."""
    crop = T.RandomResizedCrop(size, scale=(min_scale, 1.0))
    if version == "v1":
        ops = [crop, T.RandomGrayscale(p=0.2), T.ColorJitter(0.4, 0.4, 0.4, 0.4), T.RandomHorizontalFlip()]
    elif version == "v2":
        kernel, sigma = blur_settings(size)
        ops = [crop, T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
               T.RandomApply([T.GaussianBlur(kernel, sigma=sigma)], p=0.5), T.RandomHorizontalFlip()]
    else:
        raise ValueError(f"augmentation must be v1 or v2, got {version!r}")
    return T.Compose(ops + [T.ToTensor(), T.Normalize(MEAN, STD)])


def supervised_augmentation(size: int, min_scale: float = 0.08) -> T.Compose:
    return T.Compose([T.RandomResizedCrop(size, scale=(min_scale, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(),
                      T.Normalize(MEAN, STD)])


def eval_transform(size: int) -> T.Compose:
    """Resize + center crop (256/224 of the size for large images; images <= 64 px: resize only)."""
    resize = size if size <= 64 else int(round(size * 256 / 224))
    return T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(), T.Normalize(MEAN, STD)])
