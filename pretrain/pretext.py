"""The contract between the trainer and what it trains: MoCo (moco.py) and the supervised baseline (supervised.py).

The trainer knows nothing else of a model. Anything that has these members trains, checkpoints, resumes and is
monitored by kNN through the same loop.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class PretextModel(Protocol):
    @property
    def backbone(self) -> nn.Module:
        """The encoder whose features transfer: the kNN monitor's feature extractor, the converter's input."""

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint's state_dict holds (without the `module.` prefix)."""

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        """The inverse of checkpoint_state, strict."""

    def encoders(self) -> list[nn.Module]:
        """The networks `train.compile` compiles in place."""

    def step_inputs(self, images: torch.Tensor, targets: torch.Tensor, *,
                    memory_format: torch.memory_format = torch.contiguous_format) -> tuple[torch.Tensor, ...]:
        """forward's inputs from a prepared batch (views on the device, class targets)."""

    def __call__(self, *inputs: torch.Tensor, momentum: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, labels): their cross-entropy is the step's loss. `momentum`: the key encoder's, this step."""
