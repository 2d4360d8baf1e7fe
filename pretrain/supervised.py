"""The supervised baseline, trained by the same loop as MoCo: a torchvision ResNet with its classifier.

It is a `PretextModel` (pretext.py): cross-entropy of forward's (logits, targets) is the classification loss,
and its checkpoints hold the torchvision network's own keys, as ImageNet-supervised checkpoints do.
"""
from __future__ import annotations

import torch
from torch import nn


class Supervised(nn.Module):
    """The supervised baseline through the same trainer: forward(images, targets) -> (logits, targets)."""

    def __init__(self, *, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    @property
    def backbone(self) -> nn.Module:
        return self.encoder

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The torchvision network's own keys (conv1.*, ..., fc.*): an ImageNet-style checkpoint."""
        return self.encoder.state_dict()

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        self.encoder.load_state_dict(state, strict=True)

    def encoders(self) -> list[nn.Module]:
        return [self.encoder]

    @staticmethod
    def step_inputs(images: torch.Tensor, targets: torch.Tensor, *,
                    memory_format: torch.memory_format = torch.contiguous_format) -> tuple[torch.Tensor, ...]:
        """(images N x C x H x W, class targets N)."""
        return images.contiguous(memory_format=memory_format), targets

    def forward(self, images: torch.Tensor, targets: torch.Tensor, *, momentum: float | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(images).float(), targets
