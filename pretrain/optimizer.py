"""The optimizer a config names: SGD with momentum (the MoCo recipes) or AdamW (short CPU demos)."""
from __future__ import annotations

from typing import Iterable

import torch

OPTIMIZERS = ("sgd", "adamw")


def build_optimizer(params: Iterable[torch.nn.Parameter], *, name: str, lr: float, momentum: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    """SGD(lr, momentum, weight_decay), or AdamW(lr, betas=(momentum, 0.999), weight_decay).

    AdamW reaches in a few hundred steps what SGD needs thousands for: the built-in demos, which
    must learn within minutes on 2 CPU cores, use it; the paper's recipes use SGD."""
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
