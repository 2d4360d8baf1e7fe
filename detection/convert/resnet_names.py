"""torchvision ResNet names -> Detectron2 ResNet names (conv1/bn1 -> stem, layerN -> res{N+1}, bnK -> convK.norm,
downsample -> shortcut), tensors as numpy arrays as Detectron2's pickles hold them."""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np
import torch

from mocobench.detection.convert.result import ConversionError


def rename(key: str) -> str:
    """torchvision ResNet key -> Detectron2 ResNet key."""
    if key.startswith("conv1."):
        return "stem." + key
    if key.startswith("bn1."):
        return "stem.conv1.norm." + key[len("bn1."):]
    m = re.match(r"layer(\d)\.(\d+)\.(.+)$", key)
    if not m:
        raise ConversionError(f"cannot rename {key!r}: not a torchvision ResNet backbone key")
    stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
    rest = re.sub(r"^bn(\d)\.", r"conv\1.norm.", rest)
    rest = re.sub(r"^downsample\.0\.", "shortcut.", rest)
    rest = re.sub(r"^downsample\.1\.", "shortcut.norm.", rest)
    return f"res{stage}.{block}.{rest}"


def torchvision_to_detectron2(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """(Detectron2 state as numpy arrays, [(torchvision key, Detectron2 key)] in order)."""
    out, key_map = {}, []
    for key, value in state.items():
        new = rename(key)
        if new in out:
            raise ConversionError(f"two tensors map onto {new!r}")
        out[new] = value.numpy()
        key_map.append((key, new))
    return out, key_map
