"""The optimizer a config names: SGD with momentum (the MoCo recipes) or AdamW (short CPU demos)."""
from __future__ import annotations

from typing import Iterable

import torch

OPTIMIZERS = ("sgd", "adamw")
IMPLS = ("auto", "fused", "foreach", "loop")


def build_optimizer(params: Iterable[torch.nn.Parameter], *, name: str, lr: float, momentum: float,
                    weight_decay: float, impl: str = "loop") -> torch.optim.Optimizer:
    """SGD(lr, momentum, weight_decay), or AdamW(lr, betas=(momentum, 0.999), weight_decay).

    AdamW reaches in a few hundred steps what SGD needs thousands for: the built-in demos, which
    must learn within minutes on 2 CPU cores, use it; the paper's recipes use SGD.
    impl: fused (one kernel for all parameters), foreach (a few multi-tensor kernels), loop (one
    parameter at a time), auto (fused on CUDA, foreach otherwise). The update is the same."""
    params = [p for p in params if p.requires_grad]
    if impl not in IMPLS:
        raise ValueError(f"unknown optimizer implementation {impl!r}; choose one of {IMPLS}")
    if impl == "auto":
        impl = "fused" if params and params[0].is_cuda else "foreach"
    kernels = {"fused": dict(fused=True), "foreach": dict(foreach=True), "loop": dict(foreach=False)}[impl]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **kernels)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay, **kernels)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
