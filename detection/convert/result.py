"""What every part of the converter shares: its error, and the result of one conversion."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mocobench.common.errors import UsageError


class ConversionError(UsageError):
    """The input is not a checkpoint this converter can turn into a Detectron2 backbone."""


@dataclass
class Extracted:
    """What an architecture's extractor (detection/convert/archs.py) takes out of a detected layout."""
    backbone: dict[str, torch.Tensor]   # backbone tensors under the architecture's reference names, in order
    depth: int                          # ResNet depth (or the architecture's own size measure)
    dropped: list[str]                  # source tensors deliberately left out (every one)
    sources: dict[str, str]             # reference name -> source key
    classifier: list[int] | None = None  # [classes, features] of a classifier stored with the backbone, if any


@dataclass
class Conversion:
    """The result of converting one checkpoint."""
    format: str
    depth: int
    torchvision_state: dict[str, torch.Tensor]          # backbone tensors under torchvision names
    detectron2_state: dict[str, np.ndarray]             # the same tensors under Detectron2 names
    key_map: list[tuple[str, str]]                      # (source key, detectron2 key), in order
    dropped: list[str]                                  # source tensors deliberately left out (every one)
    meta: dict[str, Any] = field(default_factory=dict)  # epoch, arch, pretraining config, ...
    ignored_objects: list[str] = field(default_factory=list)  # globals read as inert placeholders
    unknown_dropped: list[str] = field(default_factory=list)  # dropped tensors the layout does not name
    arch: str = "resnet"                                # the architecture family (detection/convert/archs.py)
    classifier: list[int] | None = None                 # [classes, features] of a classifier stored with the
                                                        # backbone (evidence of supervised training), if any
