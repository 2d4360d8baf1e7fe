"""ResNet encoders for MoCo: torchvision ResNets, a small-image stem, the v2 MLP head.

Parameter names stay torchvision's (conv1, bn1, layer1..4, fc) so that checkpoints convert to
Detectron2 and load into torchvision. The v2 head replaces fc by Sequential(Linear, ReLU, Linear),
named fc.0 / fc.2 as in the official code.
"""
from __future__ import annotations

import functools
from typing import Callable

import torchvision
from torch import nn

from mocobench.pretrain.norm import SplitBatchNorm2d

ARCHS: dict[str, Callable[..., torchvision.models.ResNet]] = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
    "wide_resnet50_2": torchvision.models.wide_resnet50_2,
    "wide_resnet101_2": torchvision.models.wide_resnet101_2,
}
STEMS = ("standard", "small")


def feature_dim(arch: str) -> int:
    """Width of the pooled backbone feature (input of fc)."""
    check_arch(arch)
    return 512 if arch in ("resnet18", "resnet34") else 2048


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")


def build_resnet(arch: str, *, num_classes: int, stem: str = "standard", mlp: bool = False,
                 bn_splits: int = 1) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet.

    stem="small" (for 32-64 px inputs) replaces the 7x7/2 conv + max-pool by a 3x3/1 conv, as is
    usual for CIFAR-sized images. mlp=True gives fc = Linear(d, d) -> ReLU -> Linear(d, num_classes).
    bn_splits > 1 uses SplitBatchNorm2d (BN statistics per sub-batch) everywhere.
    """
    check_arch(arch)
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {STEMS}")
    norm_layer = nn.BatchNorm2d if bn_splits == 1 else functools.partial(SplitBatchNorm2d, num_splits=bn_splits)
    model = ARCHS[arch](weights=None, num_classes=num_classes, norm_layer=norm_layer)
    if stem == "small":
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    if mlp:
        d = model.fc.in_features
        model.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), model.fc)
    return model
