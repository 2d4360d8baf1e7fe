"""The ResNet extractor: which keys of a detected layout are a torchvision-style ResNet backbone, its depth,
and the strict checks (stems, ResNet-D shortcuts, missing/extra tensors, shapes, non-finite values).

The result is the backbone under torchvision's names, in torchvision's order; resnet_names.py renames it
for Detectron2.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Mapping

import torch

from mocobench.common.resnets import RESNET_DEPTHS
from mocobench.detection.convert.load import at, tensors
from mocobench.detection.convert.result import ConversionError, Extracted
from mocobench.detection.formats import Detected

BACKBONE_NAME = re.compile(r"^(conv1|bn1|layer[1-4]|fc|stem)\.")
LOOKS_LIKE_RESNET = re.compile(r"(^|\.)(conv1\.weight|bn1\.running_mean|layer[1-4]\.\d+\.conv\d\.weight)$")
_INDEX_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


def index_rename(name: str) -> str:
    """lightly's nn.Sequential(*resnet.children()[:-1]) names -> torchvision names (0 conv1, 1 bn1, 4-7 layer1-4)."""
    head, _, rest = name.partition(".")
    return f"{_INDEX_NAMES[head]}.{rest}" if head in _INDEX_NAMES else name


def has_backbone(state: Mapping[str, torch.Tensor], prefix: str, index_names: bool) -> bool:
    """Does state hold a ResNet under prefix?"""
    if index_names and f"{prefix}0.weight" in state and any(k.startswith(f"{prefix}4.0.") for k in state):
        return True
    return f"{prefix}conv1.weight" in state or any(k.startswith(f"{prefix}layer1.") for k in state) \
        or any(k.startswith(f"{prefix}conv1.") for k in state)


@functools.lru_cache(maxsize=None)
def expected_shapes(depth: int) -> dict[str, tuple[int, ...]]:
    """Backbone tensor shapes of torchvision's resnet{depth}, fc and num_batches_tracked excluded."""
    import torchvision

    with torch.device("meta"):  # shapes only, nothing allocated
        model = getattr(torchvision.models, f"resnet{depth}")()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}


def infer_depth(state: Mapping[str, torch.Tensor]) -> int:
    """The ResNet depth whose key set is closest to the given backbone keys; errors name the gaps."""
    if "conv1.weight" not in state and not any(k.startswith("layer") for k in state):
        raise ConversionError(f"not a ResNet: no conv1.weight and no layer1..layer4 tensors (keys: {list(state)[:6]})")
    bottleneck = any(re.match(r"layer\d\.\d+\.conv3\.weight$", k) for k in state)
    best, best_missing = None, None
    for depth, (_, is_bottleneck) in RESNET_DEPTHS.items():
        if is_bottleneck != bottleneck:
            continue
        missing = sorted(set(expected_shapes(depth)) - set(state))
        if best_missing is None or len(missing) < len(best_missing):
            best, best_missing = depth, missing
    assert best is not None and best_missing is not None
    if best_missing:
        blocks = [len({m.group(1) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))}) for i in range(1, 5)]
        raise ConversionError(
            f"incomplete ResNet: closest is ResNet-{best} (blocks per layer {list(RESNET_DEPTHS[best][0])}, found "
            f"{blocks}), but {len(best_missing)} tensors are missing, e.g. {best_missing[:8]}. The checkpoint "
            f"is truncated or not a standard torchvision-style ResNet.")
    return best


def _refuse_stems(backbone: Mapping[str, torch.Tensor]) -> None:
    deep = sorted(k for k in backbone if (k.startswith("conv1.") and k != "conv1.weight") or k.startswith("stem."))
    if deep:
        raise ConversionError(f"a deep stem ({deep[:4]}: three 3x3 convs instead of one 7x7, as timm's resnet*d or "
                              f"mmpretrain's deep_stem build it): Detectron2's standard ResNet stem is one 7x7 conv "
                              f"and cannot take it. Use the plain variant's weights (timm resnet50, not resnet50d).")
    avg_down = sorted(k for k in backbone if re.match(r"layer\d\.0\.downsample\.2\.", k))
    if avg_down:
        raise ConversionError(f"a ResNet-D shortcut ({avg_down[:2]}: average pool, 1x1 conv, BN in downsample, as "
                              f"timm's resnet*d and mmpretrain's avg_down build it): Detectron2's ResNet shortcut is a "
                              f"strided 1x1 conv and cannot take it. Use the plain variant's weights (timm resnet50).")
    if "conv1.weight" in backbone and tuple(backbone["conv1.weight"].shape[-2:]) != (7, 7):
        raise ConversionError(f"conv1.weight has shape {tuple(backbone['conv1.weight'].shape)}: a small-image stem "
                              f"(3x3 conv1, as solo-learn and others build for CIFAR) cannot map onto Detectron2's "
                              f"7x7 stride-2 stem. Pretrain with the standard (ImageNet) stem to transfer.")


def _split(found: Detected) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """(backbone under torchvision names, their source keys, dropped source keys) of a detected layout."""
    lay, prefix = found.layout, found.prefix
    backbone: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    dropped: list[str] = []
    for key, value in found.state.items():
        if not key.startswith(prefix) or any(key == d or key.startswith(d) for d in lay.drops) \
                or (lay.duplicate_of and key.startswith(lay.duplicate_of)):
            dropped.append(key)
            continue
        name = key[len(prefix):]
        if lay.index_names:
            name = index_rename(name)
        if not prefix and not BACKBONE_NAME.match(name):
            dropped.append(key)
            continue
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            dropped.append(key)
            continue
        backbone[name] = value
        sources[name] = key
    return backbone, sources, dropped


def extract(found: Detected, ckpt: Mapping[str, Any]) -> Extracted:
    """The ResNet backbone of a detected layout, strictly checked, in torchvision's order."""
    lay, prefix = found.layout, found.prefix
    backbone, sources, dropped = _split(found)
    for path in lay.siblings:
        node = at(ckpt, path)
        if node is not None:
            dropped += [f"{'/'.join(path)}/{k}" for k in tensors(node)]
    if not backbone:
        from mocobench.detection.convert.detect import list_formats

        raise ConversionError(f"format {lay.name!r} expects keys under {prefix!r}, none found. "
                              f"Known formats:\n{list_formats()}")
    _refuse_stems(backbone)
    if lay.duplicate_of and any(k.startswith(lay.duplicate_of) for k in found.state):
        _check_duplicate(found, backbone)
    depth = infer_depth(backbone)
    expected = expected_shapes(depth)
    extra = sorted(set(backbone) - set(expected))
    if extra:
        raise ConversionError(f"ResNet-{depth} backbone with {len(extra)} unexpected tensors (head leftovers or a "
                              f"non-standard ResNet), e.g. {extra[:8]}")
    bad = [f"{k}: {tuple(v.shape)} (expected {expected[k]})" for k, v in backbone.items()
           if tuple(v.shape) != expected[k]]
    if bad:
        raise ConversionError(f"ResNet-{depth} tensors with wrong shapes (wide/grouped variant?): {bad[:6]}")
    nonfinite = [k for k, v in backbone.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise ConversionError(f"non-finite values (NaN/inf) in {nonfinite[:6]}: the pretraining diverged.")
    ordered = {k: backbone[k].detach().float().contiguous() for k in expected}  # torchvision order
    return Extracted(ordered, depth, dropped, {k: sources[k] for k in expected}, _classifier(found, depth))


# where a classifier sits next to the backbone: torchvision's fc; mmpretrain's ImageClassifier head.fc
_CLASSIFIER_KEYS = ("{prefix}fc.weight", "head.fc.weight")


def _classifier(found: Detected, depth: int) -> list[int] | None:
    """[classes, features] of a linear classifier over the backbone's pooled features stored in the file (a
    2-D weight whose input width is the backbone's output width), or None. MLP heads (fc.0, fc.2) are not one."""
    width = 512 * (4 if RESNET_DEPTHS[depth][1] else 1)
    for pattern in _CLASSIFIER_KEYS:
        w = found.state.get(pattern.format(prefix=found.prefix))
        if isinstance(w, torch.Tensor) and w.dim() == 2 and w.shape[1] == width and w.shape[0] >= 2:
            return [int(w.shape[0]), int(w.shape[1])]
    return None


def _check_duplicate(found: Detected, backbone: Mapping[str, torch.Tensor]) -> None:
    """Raw DenseCL/OpenSelfSup files store the backbone twice (backbone.* and encoder_q.0.*): one module under
    two names. Copies that differ mean the file is not what it claims; refuse rather than pick one."""
    copy_prefix = found.layout.duplicate_of
    assert copy_prefix is not None
    differ, missing = [], []
    for name, value in backbone.items():
        other = found.state.get(copy_prefix + name)
        if other is None:
            missing.append(copy_prefix + name)
        elif other.shape != value.shape or not torch.equal(other, value):
            differ.append(name)
    if differ or missing:
        raise ConversionError(f"{found.layout.name} file: the backbone's two copies ({found.prefix}* and "
                              f"{copy_prefix}*) are one module in the training code and must be equal, but "
                              f"{len(differ)} tensors differ (e.g. {differ[:4]}) and {len(missing)} are missing "
                              f"from the copy (e.g. {missing[:4]}). The file was edited or mixes two checkpoints.")
