"""Reading a checkpoint safely: torch files (foreign objects as inert placeholders, never constructed),
.safetensors, and the small helpers that walk what was read (containers, tensors, wrapper prefixes, meta)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from mocobench.common import safe_pickle
from mocobench.detection.convert.result import ConversionError
from mocobench.pretrain.checkpoint import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)


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


def at(ckpt: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any] | None:
    """The mapping at a path of keys (() = ckpt itself), or None."""
    node: Any = ckpt
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, Mapping) else None


def tensors(mapping: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a state dict; numpy arrays (VISSL files converted from Caffe2) become tensors."""
    out = {}
    for k, v in mapping.items():
        if isinstance(v, torch.Tensor):
            out[str(k)] = v
        elif isinstance(v, np.ndarray) and v.dtype.kind in "fiub":
            out[str(k)] = torch.from_numpy(np.ascontiguousarray(v))
    return out


def strip_wrappers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Remove DataParallel/DDP "module." prefixes (possibly nested) shared by all keys."""
    n = 0
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        n += 1
    return state, n


def all_tensor_keys(ckpt: Mapping[str, Any], depth: int = 4, path: str = "") -> list[str]:
    """Every tensor's key path (a/b/c) down to `depth` levels of nesting."""
    keys = []
    for k, v in ckpt.items():
        if isinstance(v, (torch.Tensor, np.ndarray)):
            keys.append(f"{path}{k}")
        elif isinstance(v, Mapping) and depth > 0:
            keys += all_tensor_keys(v, depth - 1, f"{path}{k}/")
    return keys


def meta_of(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint says about itself: epoch (top level, or mmcv/mmengine's meta), arch, config."""
    meta = {k: v for k, v in ckpt.items() if k in ("epoch", "arch", "config")}
    inner = ckpt.get("meta")
    if "epoch" not in meta and isinstance(inner, Mapping) and isinstance(inner.get("epoch"), int):
        meta["epoch"] = inner["epoch"]  # mmcv / mmengine
    if not isinstance(meta.get("epoch"), int) or isinstance(meta.get("epoch"), bool):
        meta.pop("epoch", None)
    return meta
