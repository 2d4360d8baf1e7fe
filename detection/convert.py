"""Convert a pretrained ResNet checkpoint into a Detectron2 backbone pickle, and prove it right.

    python -m mocobench.detection.convert INPUT OUTPUT          # detect the layout, convert, verify
    python -m mocobench.detection.convert INPUT OUTPUT --format swav
    python -m mocobench.detection.convert --list-formats

Reads every layout of detection/formats.py (ours, MoCo v1/v2/v3, torchvision and timm, SwAV, DINO, Barlow
Twins / VICReg, DenseCL, PixPro, PyContrast, solo-learn, mmselfsup / mmpretrain, VISSL, lightly), from
torch.save files (foreign objects read as inert placeholders, never constructed) or .safetensors. The one
layout that fits the file is used (two that fit: an error naming both; --format NAME decides). Writes
``{"model": {name: ndarray}, "__author__", ..., "matching_heuristics": True}`` holding exactly the backbone
tensors of the detected depth: every dropped tensor listed, every BN statistic present, every shape as
Detectron2's ResNet expects.

Every conversion is checked by the forward-pass proof (``verify``, in detection/proof.py).
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import pickle
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from mocobench.common import safe_pickle
from mocobench.common.atomic import atomic_write
from mocobench.common.errors import UsageError
from mocobench.common.logs import cli_logging
from mocobench.common.resnets import RESNET_DEPTHS
from mocobench.detection.formats import LAYOUTS, TORCHVISION_PIXELS, Detected, Layout
from mocobench.detection.proof import ProofError, VerifyReport, verify
from mocobench.pretrain.checkpoint import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

__all__ = ["ConversionError", "CheckpointFormat", "FORMATS", "LAYOUTS", "Conversion", "VerifyReport",
           "load_checkpoint", "load_checkpoint_report", "detect_layout", "match_layout", "extract_backbone",
           "torchvision_to_detectron2", "convert", "save_detectron2", "verify", "convert_file", "main"]


class ConversionError(UsageError):
    """The input is not a checkpoint this converter can turn into a Detectron2 ResNet backbone."""


FORMATS = LAYOUTS          # name -> Layout (detection/formats.py)
CheckpointFormat = Layout  # the name this module used before the layouts became data


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


# ----------------------------------------------------------------------------------------- reading
def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint as a dict; see `load_checkpoint_report` for what was read as inert placeholders."""
    return load_checkpoint_report(path)[0]


def load_checkpoint_report(path: str | os.PathLike) -> tuple[dict[str, Any], list[str]]:
    """(checkpoint, ignored globals). .safetensors files through safetensors; torch files with
    torch.load(weights_only=True) (pretrain.checkpoint.read_checkpoint), and where that refuses a foreign
    object (an argparse.Namespace, Lightning's or mmengine's metadata) with the inert reader of
    common/safe_pickle.py, which builds tensors and plain data only. Detectron2 .pkl files are refused."""
    path = Path(path)
    if path.suffix == ".pkl" and path.is_file():
        raise ConversionError(f"{path}: a .pkl is already a Detectron2/Caffe2 weight file; pass it to "
                              f"Detectron2 directly (MODEL.WEIGHTS) instead of converting it.")
    if path.is_file() and _is_safetensors(path):
        return _read_safetensors(path), []
    try:
        return read_checkpoint(path), []
    except CheckpointError as e:
        if not path.is_file():
            raise ConversionError(str(e)) from None
        try:
            obj, ignored = safe_pickle.load_inert(path)
        except safe_pickle.InertLoadError:
            raise ConversionError(str(e)) from None
        if not isinstance(obj, dict):
            raise ConversionError(str(e)) from None
        log.info(f"{path}: read with inert placeholders for {len(ignored)} non-tensor object type(s) "
                 f"({', '.join(ignored[:8])}{' ...' if len(ignored) > 8 else ''}); none was constructed")
        return obj, ignored


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: 8-byte little-endian header length, then a JSON header starting with '{'."""
    with open(path, "rb") as f:
        head = f.read(9)
    return path.suffix == ".safetensors" or (len(head) == 9 and head[8:9] == b"{"
                                             and int.from_bytes(head[:8], "little") < path.stat().st_size)


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError, ValueError) as e:
        raise ConversionError(f"{path}: cannot be read as a safetensors file ({e}); is it truncated?") from None


def _at(ckpt: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any] | None:
    node: Any = ckpt
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, Mapping) else None


def _tensors(mapping: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a state dict; numpy arrays (VISSL files converted from Caffe2) become tensors."""
    out = {}
    for k, v in mapping.items():
        if isinstance(v, torch.Tensor):
            out[str(k)] = v
        elif isinstance(v, np.ndarray) and v.dtype.kind in "fiub":
            out[str(k)] = torch.from_numpy(np.ascontiguousarray(v))
    return out


def _strip_wrappers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Remove DataParallel/DDP "module." prefixes (possibly nested) shared by all keys."""
    n = 0
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        n += 1
    return state, n


# ------------------------------------------------------------------------------------- detection
_BACKBONE_NAME = re.compile(r"^(conv1|bn1|layer[1-4]|fc|stem)\.")
_LOOKS_LIKE_RESNET = re.compile(r"(^|\.)(conv1\.weight|bn1\.running_mean|layer[1-4]\.\d+\.conv\d\.weight)$")
_INDEX_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


def _index_rename(name: str) -> str:
    """lightly's nn.Sequential(*resnet.children()[:-1]) names -> torchvision names (0 conv1, 1 bn1, 4-7 layer1-4)."""
    head, _, rest = name.partition(".")
    return f"{_INDEX_NAMES[head]}.{rest}" if head in _INDEX_NAMES else name


def _has_backbone(state: Mapping[str, torch.Tensor], prefix: str, index_names: bool) -> bool:
    if index_names and f"{prefix}0.weight" in state and any(k.startswith(f"{prefix}4.0.") for k in state):
        return True
    return f"{prefix}conv1.weight" in state or any(k.startswith(f"{prefix}layer1.") for k in state) \
        or any(k.startswith(f"{prefix}conv1.") for k in state)


def _accounted(lay: Layout, prefix: str, key: str) -> bool:
    """Is key part of the backbone, or something the layout knows it drops?"""
    if any(key == d or key.startswith(d) for d in lay.drops):
        return True
    if lay.duplicate_of and key.startswith(lay.duplicate_of):
        return True
    if not key.startswith(prefix):
        return False
    if prefix:  # everything under a named prefix is backbone material; extraction refuses what does not fit
        return True
    return bool(_BACKBONE_NAME.match(key))


def match_layout(lay: Layout, ckpt: Mapping[str, Any], *, forced: bool = False) -> Detected | None:
    """How `lay` reads ckpt (its container, backbone prefix, unaccounted tensors), or None if it cannot.
    forced (--format): the layout's `needs` and `signature` are not required."""
    if not forced and any(n not in ckpt for n in lay.needs):
        return None
    for path in lay.container:
        node = _at(ckpt, path)
        if node is None:
            continue
        state, _ = _strip_wrappers(_tensors(node))
        prefix = next((p for p in lay.prefixes if _has_backbone(state, p, lay.index_names)), None)
        if prefix is None:
            continue
        if not forced and lay.signature and not any(k.startswith(lay.signature) for k in state):
            return None
        if lay.duplicate_of and not lay.duplicate_optional and not any(k.startswith(lay.duplicate_of) for k in state):
            return None
        return Detected(lay, state, prefix, [k for k in state if not _accounted(lay, prefix, k)])
    return None


def _all_tensor_keys(ckpt: Mapping[str, Any], depth: int = 4, path: str = "") -> list[str]:
    keys = []
    for k, v in ckpt.items():
        if isinstance(v, (torch.Tensor, np.ndarray)):
            keys.append(f"{path}{k}")
        elif isinstance(v, Mapping) and depth > 0:
            keys += _all_tensor_keys(v, depth - 1, f"{path}{k}/")
    return keys


def _not_a_resnet(ckpt: Mapping[str, Any]) -> ConversionError:
    keys = _all_tensor_keys(ckpt)
    if any(re.search(r"(^|[./])(cls_token|pos_embed|patch_embed\.)", k) for k in keys):
        return ConversionError("this checkpoint holds a Vision Transformer (cls_token / patch_embed tensors), not a "
                               "ResNet: Detectron2's ResNet backbones cannot take it. The converter reads ResNet "
                               "checkpoints only (see --list-formats).")
    if not keys:
        return ConversionError(f"no tensors found: top-level keys are {sorted(map(str, ckpt))[:10]}; expected a "
                               f"state_dict or a checkpoint with 'state_dict'.")
    return ConversionError(f"unknown checkpoint format (not a ResNet?): no layout finds a ResNet backbone (conv1, "
                           f"layer1..4) in it; first tensor keys {keys[:6]}. Known formats:\n" + list_formats())


def detect_layout(ckpt: Mapping[str, Any], fmt: str = "auto") -> Detected:
    """The one layout that fits ckpt (or the one --format names). Errors: two layouts fit (both named), none
    does, or tensors outside the backbone that look like a ResNet of their own."""
    if fmt != "auto":
        if fmt not in LAYOUTS:
            raise ConversionError(f"--format {fmt!r} is not known. Known formats:\n{list_formats()}")
        found = match_layout(LAYOUTS[fmt], ckpt, forced=True)
        if found is None:
            lay = LAYOUTS[fmt]
            where = " or ".join(map(repr, lay.prefixes))
            raise ConversionError(f"format {fmt!r} expects a ResNet backbone under {where} "
                                  f"in {' or '.join('/'.join(p) or 'the file itself' for p in lay.container)}; none "
                                  f"found. Known formats:\n{list_formats()}")
        return _check_leftovers(found)
    found = [d for lay in LAYOUTS.values() if (d := match_layout(lay, ckpt)) is not None]
    exact = [d for d in found if not d.unaccounted]
    if len(exact) == 1:
        return exact[0]
    if not exact and len(found) > 1:  # none accounts for everything: the closest ones (fewest unknown tensors)
        fewest = min(len(d.unaccounted) for d in found)
        found = [d for d in found if len(d.unaccounted) == fewest]
    if len(exact) > 1 or len(found) > 1:
        both = exact or found
        names = " and ".join(repr(d.layout.name) for d in both)
        raise ConversionError(f"the checkpoint fits {len(both)} layouts, {names} ("
                              + "; ".join(f"{d.layout.name}: {d.layout.source}" for d in both)
                              + "). Say which with --format NAME.")
    if len(found) == 1:
        return _check_leftovers(found[0])
    raise _not_a_resnet(ckpt)


def _check_leftovers(found: Detected) -> Detected:
    """Tensors the layout does not name are dropped and listed, unless they look like a ResNet themselves."""
    resnetlike = [k for k in found.unaccounted if _LOOKS_LIKE_RESNET.search(k)]
    if resnetlike:
        raise ConversionError(f"layout {found.layout.name!r} reads the backbone under {found.prefix!r}, but "
                              f"{len(resnetlike)} other tensors look like ResNet weights too (e.g. {resnetlike[:4]}): "
                              f"a second backbone that does not fit this layout. Check the file's origin, or name "
                              f"the layout with --format.")
    if found.unaccounted:
        log.warning(f"layout {found.layout.name!r}: {len(found.unaccounted)} tensors it does not know are dropped: "
                    f"{found.unaccounted[:8]}{' ...' if len(found.unaccounted) > 8 else ''}")
    return found


def list_formats() -> str:
    return "\n".join(f"  {lay.name:14s} {lay.source}" for lay in LAYOUTS.values())


def describe_formats() -> str:
    """--list-formats: every layout with its detection rule, prefix, drops and refusals."""
    out = []
    for lay in LAYOUTS.values():
        out.append(f"{lay.name}\n  source:   {lay.source}\n  detect:   {lay.detection}\n  drops:    "
                   + (", ".join(lay.drops) or "nothing but fc.*")
                   + (f"; whole {', '.join('/'.join(s) for s in lay.siblings)}" if lay.siblings else "")
                   + (f"\n  refuses:  {lay.refuses}" if lay.refuses else "")
                   + (f"\n  note:     {lay.notes}" if lay.notes else ""))
    return "\n".join(out) + ("\n(all layouts: fc.* and BN num_batches_tracked are dropped; CIFAR stems, deep "
                              "stems, ViTs, missing or extra backbone tensors are refused; input "
                              f"{TORCHVISION_PIXELS})")


# ------------------------------------------------------------------------------ strict extraction
@functools.lru_cache(maxsize=None)
def _expected_shapes(depth: int) -> dict[str, tuple[int, ...]]:
    """Backbone tensor shapes of torchvision's resnet{depth}, fc and num_batches_tracked excluded."""
    import torchvision

    with torch.device("meta"):  # shapes only, nothing allocated
        model = getattr(torchvision.models, f"resnet{depth}")()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}


def _infer_depth(state: Mapping[str, torch.Tensor]) -> int:
    """The ResNet depth whose key set is closest to the given backbone keys; errors name the gaps."""
    if "conv1.weight" not in state and not any(k.startswith("layer") for k in state):
        raise ConversionError(f"not a ResNet: no conv1.weight and no layer1..layer4 tensors (keys: {list(state)[:6]})")
    bottleneck = any(re.match(r"layer\d\.\d+\.conv3\.weight$", k) for k in state)
    best, best_missing = None, None
    for depth, (_, is_bottleneck) in RESNET_DEPTHS.items():
        if is_bottleneck != bottleneck:
            continue
        missing = sorted(set(_expected_shapes(depth)) - set(state))
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


def _meta_of(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in ckpt.items() if k in ("epoch", "arch", "config")}
    inner = ckpt.get("meta")
    if "epoch" not in meta and isinstance(inner, Mapping) and isinstance(inner.get("epoch"), int):
        meta["epoch"] = inner["epoch"]  # mmcv / mmengine
    if not isinstance(meta.get("epoch"), int) or isinstance(meta.get("epoch"), bool):
        meta.pop("epoch", None)
    return meta


def _refuse_stems(backbone: Mapping[str, torch.Tensor], lay: Layout) -> None:
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


def extract_backbone(ckpt: Mapping[str, Any], fmt: str = "auto"
                     ) -> tuple[dict[str, torch.Tensor], int, Layout, list[str], dict[str, Any]]:
    """Backbone tensors (torchvision names), depth, layout, dropped keys and meta of a checkpoint."""
    backbone, depth, lay, dropped, meta, _ = _extract(ckpt, fmt)
    return backbone, depth, lay, dropped, meta


def _extract(ckpt: Mapping[str, Any], fmt: str):
    meta = _meta_of(ckpt)
    stem = (meta.get("config") or {}).get("stem") if isinstance(meta.get("config"), Mapping) else None
    if stem not in (None, "standard"):
        raise ConversionError(f"the checkpoint was pretrained with stem {stem!r} (3x3 conv1, no max-pool, for "
                              f"small images): Detectron2's ResNet stem is a 7x7 stride-2 conv + max-pool, "
                              f"so these weights cannot map onto it. Pretrain with the standard stem to transfer.")
    found = detect_layout(ckpt, fmt)
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
            name = _index_rename(name)
        if not prefix and not _BACKBONE_NAME.match(name):
            dropped.append(key)
            continue
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            dropped.append(key)
            continue
        backbone[name] = value
        sources[name] = key
    for path in lay.siblings:
        node = _at(ckpt, path)
        if node is not None:
            dropped += [f"{'/'.join(path)}/{k}" for k in _tensors(node)]
    if not backbone:
        raise ConversionError(f"format {lay.name!r} expects keys under {prefix!r}, none found. "
                              f"Known formats:\n{list_formats()}")
    _refuse_stems(backbone, lay)
    if lay.duplicate_of and any(k.startswith(lay.duplicate_of) for k in found.state):
        _check_duplicate(found, backbone)
    depth = _infer_depth(backbone)
    expected = _expected_shapes(depth)
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
    return ordered, depth, lay, dropped, meta, {k: sources[k] for k in expected}


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


# --------------------------------------------------------------------------------------- renaming
def _rename(key: str) -> str:
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
    out, key_map = {}, []
    for key, value in state.items():
        new = _rename(key)
        if new in out:
            raise ConversionError(f"two tensors map onto {new!r}")
        out[new] = value.numpy()
        key_map.append((key, new))
    return out, key_map


def convert(ckpt: Mapping[str, Any], fmt: str = "auto", *, ignored_objects: list[str] | None = None) -> Conversion:
    backbone, depth, lay, dropped, meta, sources = _extract(ckpt, fmt)
    d2_state, key_map = torchvision_to_detectron2(backbone)
    found_unknown = [k for k in dropped if "/" not in k and not _known_drop(lay, k)]
    return Conversion(format=lay.name, depth=depth, torchvision_state=backbone, detectron2_state=d2_state,
                      key_map=[(sources[a], b) for a, b in key_map], dropped=dropped, meta=meta,
                      ignored_objects=list(ignored_objects or []), unknown_dropped=found_unknown)


def _known_drop(lay: Layout, key: str) -> bool:
    name = key.rsplit(".", 1)[-1]
    return (any(key == d or key.startswith(d) for d in lay.drops) or name == "num_batches_tracked"
            or (lay.duplicate_of is not None and key.startswith(lay.duplicate_of))
            or bool(re.match(r"^(.*\.)?fc\.", key)))


def save_detectron2(conv: Conversion, output: str | os.PathLike, *, source: str | None = None,
                    overwrite: bool = False) -> Path:
    """Write the Detectron2 pickle atomically; refuses to replace an existing file unless overwrite."""
    output = Path(output)
    if output.suffix != ".pkl":
        raise ConversionError(f"{output}: the output must end in .pkl (Detectron2 reads .pkl as converted weights)")
    if output.exists() and not overwrite:
        raise ConversionError(f"{output} already exists; pass --overwrite to replace it, or choose another name")
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in conv.meta.items() if k in ("epoch", "arch")}
    payload = {"model": conv.detectron2_state, "__author__": "moco-transfer-bench detection.convert",
               "matching_heuristics": True,
               "source": {"path": source, "format": conv.format, "depth": conv.depth, **meta}}
    with atomic_write(output, overwrite=True) as f:
        pickle.dump(payload, f)
    return output


def convert_file(input: str | os.PathLike, output: str | os.PathLike, *, fmt: str = "auto", overwrite: bool = False,
                 check: bool = True, list_tensors: bool = True) -> tuple[Conversion, VerifyReport | None]:
    """Convert INPUT into OUTPUT, log the key map and (check=True) the forward-pass proof.
    list_tensors: every mapped and dropped tensor at INFO (the convert command), else at DEBUG (a run's console:
    the counts only). Raises ConversionError when the input is wrong or the proof fails (the output is then
    removed)."""
    each = log.info if list_tensors else log.debug
    ckpt, ignored = load_checkpoint_report(input)
    conv = convert(ckpt, fmt, ignored_objects=ignored)
    epoch = conv.meta.get("epoch")
    log.info(f"{input}: format {conv.format}, ResNet-{conv.depth}, {len(conv.key_map)} backbone tensors"
             + (f", epoch {epoch}" if epoch is not None else ""))
    for src, dst in conv.key_map:
        each(f"  {src:55s} -> {dst:40s} {tuple(conv.detectron2_state[dst].shape)}")
    if conv.dropped:
        counters = [k for k in conv.dropped if k.endswith("num_batches_tracked")]
        others = [k for k in conv.dropped if k not in set(counters)]
        log.info(f"dropped {len(others)} non-backbone tensors and {len(counters)} BN num_batches_tracked counters"
                 + (":" if list_tensors else f" (python -m mocobench.detection.convert {input} OUT lists them)"))
        for key in others:
            each(f"  dropped {key}")
    if conv.ignored_objects:
        log.info(f"ignored non-tensor objects (inert placeholders, never constructed): "
                 f"{', '.join(conv.ignored_objects)}")
    if Path(output).exists() and not overwrite:
        raise ConversionError(f"{output} already exists; pass --overwrite to replace it, or choose another name")
    path = save_detectron2(conv, output, source=str(input), overwrite=overwrite)
    report = None
    if check:
        try:
            report = verify(path, conv.torchvision_state, conv.depth)
        except ProofError as e:
            path.unlink()
            raise ConversionError(str(e)) from None
        except BaseException:
            path.unlink()
            raise
        for stage in report.max_abs_diff:
            log.info(f"proof: {stage} {str(report.shapes[stage]):22s} max|d2 - torchvision| = "
                     f"{report.max_abs_diff[stage]:.3e} (relative {report.max_rel_diff[stage]:.3e})")
        stage, worst = report.largest()
        if not report.ok:
            path.unlink()
            raise ConversionError(f"proof failed: {stage} differs by {worst:.3e} (relative) > {report.tolerance:.0e}; "
                                  f"the converted backbone does not compute what the source does. {output} removed.")
        log.info(f"proof OK: largest relative difference {worst:.3e} ({stage}) <= {report.tolerance:.0e}")
    log.info(f"wrote {path}")
    return conv, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocobench.detection.convert", description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?",
                        help="checkpoint (.pth/.pth.tar/.ckpt/.torch/.safetensors) in any layout of --list-formats")
    parser.add_argument("output", nargs="?", help="Detectron2 weight file to write (.pkl); never overwritten "
                                                  "unless --overwrite")
    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS],
                        help="input layout (default: detect it; see --list-formats)")
    parser.add_argument("--list-formats", action="store_true",
                        help="list every layout (source project, detection rule, drops, refusals) and exit")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the forward-pass proof (not recommended: it is what catches a wrong key map)")
    args = parser.parse_args(argv)
    cli_logging()
    if args.list_formats:
        print("Known input layouts:\n" + describe_formats())
        return 0
    if not args.input or not args.output:
        parser.error("INPUT and OUTPUT are required (or --list-formats)")
    try:
        convert_file(args.input, args.output, fmt=args.format, overwrite=args.overwrite, check=not args.no_verify)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
