"""Per-iteration schedules: learning rate (warmup + step or cosine) and key-encoder momentum."""
from __future__ import annotations

import math


def scaled_lr(lr: float, batch_size: int, base_batch: int = 256) -> float:
    """Linear scaling rule: lr for the global batch (lr 0.03 at 256 -> 0.24 at 2048)."""
    return lr * batch_size / base_batch


def learning_rate(step: int, *, steps_per_epoch: int, epochs: int, base_lr: float, schedule: str,
                  milestones: list[int] | tuple[int, ...] = (), warmup_epochs: float = 0) -> float:
    """lr at a global step (0-based): linear warmup from 0, then x0.1 at each milestone epoch or cosine to 0."""
    epoch = step / steps_per_epoch  # fractional epoch
    warmup = warmup_epochs * steps_per_epoch
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "step":
        return base_lr * 0.1 ** sum(epoch >= m for m in milestones)
    if schedule == "cosine":
        total = epochs * steps_per_epoch
        progress = (step - warmup) / max(1.0, total - warmup)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown lr schedule {schedule!r} (cosine | step)")


def key_momentum(step: int, *, total_steps: int, base: float, schedule: str) -> float:
    """m of the key encoder: constant (paper), or cosine from base to 1 (as in BYOL)."""
    if schedule == "constant":
        return base
    if schedule == "cosine":
        return 1.0 - (1.0 - base) * 0.5 * (1.0 + math.cos(math.pi * step / max(1, total_steps)))
    raise ValueError(f"unknown momentum schedule {schedule!r} (constant | cosine)")
