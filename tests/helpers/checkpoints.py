"""Checkpoints for the converter and runner tests: a ResNet with distinct BN tensors, and the same backbone
in every checkpoint layout the converter reads."""
from __future__ import annotations

import torch
import torchvision


def randomised_resnet(depth: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state_dict whose BN parameters and statistics are all distinct and far from
    the defaults, so that swapping any two tensors (bn1 <-> bn2, shortcut norm, ...) changes the outputs."""
    torch.manual_seed(seed)
    state = getattr(torchvision.models, f"resnet{depth}")().state_dict()
    g = torch.Generator().manual_seed(seed)
    for key, value in state.items():
        if key.endswith("running_var"):
            value.copy_(torch.rand(value.shape, generator=g) * 1.5 + 0.5)
        elif key.endswith("running_mean"):
            value.copy_(torch.randn(value.shape, generator=g) * 0.2)
        elif ("bn" in key or "downsample.1" in key) and key.endswith("weight"):
            value.copy_(torch.rand(value.shape, generator=g) + 0.5)
        elif key.endswith("bias"):
            value.copy_(torch.randn(value.shape, generator=g) * 0.1)
    return state


def wrap(fmt: str, state: dict[str, torch.Tensor]) -> dict:
    """The same backbone as each known checkpoint layout stores it, with the leftovers each layout has."""
    if fmt == "moco":  # official MoCo v2 / ours: encoder_q + MLP head, encoder_k, queue
        sd = {f"module.encoder_q.{k}": v for k, v in state.items()}
        sd |= {f"module.encoder_k.{k}": v.clone() for k, v in state.items()}
        sd |= {"module.encoder_q.fc.0.weight": torch.zeros(8, 4), "module.encoder_q.fc.2.weight": torch.zeros(4, 8),
               "module.queue": torch.zeros(4, 16), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
        return {"epoch": 7, "arch": "resnet", "state_dict": sd, "optimizer": {}, "config": {"stem": "standard"}}
    if fmt == "moco-v3":
        sd = {f"module.base_encoder.{k}": v for k, v in state.items()}
        sd |= {f"module.momentum_encoder.{k}": v.clone() for k, v in state.items()}
        sd |= {"module.base_encoder.fc.0.weight": torch.zeros(8, 4),
               "module.base_encoder.fc.1.running_mean": torch.zeros(8),
               "module.predictor.0.weight": torch.zeros(4, 4)}
        return {"epoch": 100, "arch": "resnet50", "state_dict": sd}
    if fmt == "torchvision":  # torchvision's published weights: the bare state_dict with fc
        return dict(state)
    if fmt == "ddp-supervised":  # our supervised pretraining: module.<torchvision keys incl. fc>
        return {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()},
                "config": {"mode": "supervised"}}
    if fmt == "dataparallel-in-ddp":
        return {f"module.module.{k}": v for k, v in state.items()}
    raise AssertionError(fmt)
