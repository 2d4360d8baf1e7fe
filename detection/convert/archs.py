"""The architecture families the converter reads, as a registry: each layout of detection/formats.py names
its family (`Layout.arch`), and after detection that family's entry extracts, renames and proves.

Today there is one family here, "resnet" (torchvision-style ResNets -> Detectron2's ResNet). A new family adds
its layouts to formats.py with its `arch`, its own extract/rename/proof modules beside resnet.py /
resnet_names.py / proof.py, and one entry here. Vision Transformers are the exception: their layouts are told
apart by their keys and metadata rather than by a container and a prefix, so pipeline.convert_file sends a
checkpoint that holds a ViT to detection/vit (layouts.py, convert.py, proof.py) before layout detection.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

from mocobench.detection.convert import resnet, resnet_names
from mocobench.detection.convert.result import Extracted
from mocobench.detection.formats import Detected
from mocobench.detection.proof import VerifyReport, verify


@dataclass(frozen=True)
class Architecture:
    name: str
    # layout matching (detect.py): does state hold a backbone under prefix (index_names: lightly's Sequential)?
    has_backbone: Callable[[Mapping[str, torch.Tensor], str, bool], bool]
    # with no prefix: is this key part of the backbone (or its classifier), rather than something else?
    is_backbone_key: Callable[[str], bool]
    # a tensor left over by a layout that still looks like this family's weights (a second backbone)
    looks_like_backbone: Callable[[str], bool]
    # the strict extraction of a detected layout: reference names, depth, dropped keys, sources
    extract: Callable[[Detected, Mapping[str, Any]], Extracted]
    # reference names -> Detectron2 names: (state as numpy, [(reference key, detectron2 key)])
    to_detectron2: Callable[[Mapping[str, torch.Tensor]], tuple[dict[str, np.ndarray], list[tuple[str, str]]]]
    # the forward-pass proof: (written pickle, reference state, depth) -> report
    verify: Callable[..., VerifyReport]
    head: re.Pattern = re.compile(r"^(.*\.)?fc\.")  # the classifier's keys (dropped, known)


ARCHITECTURES: dict[str, Architecture] = {
    "resnet": Architecture(
        name="resnet",
        has_backbone=resnet.has_backbone,
        is_backbone_key=lambda key: bool(resnet.BACKBONE_NAME.match(key)),
        looks_like_backbone=lambda key: bool(resnet.LOOKS_LIKE_RESNET.search(key)),
        extract=resnet.extract,
        to_detectron2=resnet_names.torchvision_to_detectron2,
        verify=verify,
    ),
}


def architecture(name: str) -> Architecture:
    return ARCHITECTURES[name]
