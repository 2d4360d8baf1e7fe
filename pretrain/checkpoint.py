"""Checkpoints in the official MoCo format, written atomically, never over an existing file.

MoCo:       {"epoch": finished epochs, "arch", "state_dict": {"module.encoder_q.*", "module.encoder_k.*",
             "module.queue", "module.queue_ptr"}, "optimizer", "config", ...resume state}
Supervised: {"epoch", "arch", "state_dict": {"module.<torchvision resnet keys incl. fc>"}, "optimizer", "config", ...}
File: <out>/checkpoint_{epoch-1:04d}.pth.tar (the index of the last finished epoch, as the official code names it).

The one reader of checkpoints (`read_checkpoint`: tensors and plain data only, never code) and the one
`latest_checkpoint` of a run folder; the converter and the runner use them too.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mocobench.common.atomic import atomic_write
from mocobench.common.errors import UsageError

_NAME = re.compile(r"^checkpoint_(\d+)\.pth\.tar$")


class CheckpointError(UsageError):
    """A checkpoint is missing, of the wrong kind, or would overwrite another file."""


def checkpoint_path(output_dir: str | Path, finished_epochs: int) -> Path:
    return Path(output_dir) / f"checkpoint_{finished_epochs - 1:04d}.pth.tar"


def save_atomic(obj: Any, path: str | Path) -> Path:
    """torch.save to a temp file in the same folder, then link into place; refuses to replace a file."""
    path = Path(path)
    try:
        with atomic_write(path, overwrite=False) as f:
            torch.save(obj, f)
    except FileExistsError:
        raise CheckpointError(f"{path} exists already; not overwriting it") from None
    return path


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint_NNNN.pth.tar with the highest index in output_dir (None if there is none)."""
    d = Path(output_dir)
    if not d.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


def _safe_globals() -> list:
    """Plain-data types that training checkpoints carry besides tensors (numpy RNG states and arrays,
    torch version strings), allowed on top of torch's weights_only set. Nothing executable."""
    from torch.torch_version import TorchVersion

    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return [np._core.multiarray._reconstruct, np._core.multiarray.scalar, np.ndarray, np.dtype, TorchVersion, *dtypes]


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """torch.load on CPU (tensors and plain data only, no arbitrary code), with errors that say what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file. Pass a checkpoint (.pth/.pth.tar/.pt).")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, pickled code objects, ...
        raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}). Is the file truncated (an "
                              f"interrupted copy or download) or not a torch.save file?") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, expected a dict (a state_dict or a "
                              f"checkpoint with a 'state_dict' entry).")
    return obj


def load(path: str | Path) -> dict:
    """A MoCo/ImageNet-style checkpoint (one with a 'state_dict')."""
    ckpt = read_checkpoint(path)
    if "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a MoCo/ImageNet-style checkpoint (no 'state_dict')")
    return ckpt


def encoder_state(ckpt: dict, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], str]:
    """The query encoder's (MoCo) or the network's (supervised) torchvision state dict, and its kind."""
    sd = ckpt["state_dict"]
    q = {k[len("module.encoder_q."):]: v for k, v in sd.items() if k.startswith("module.encoder_q.")}
    if q:
        return q, "moco"
    plain = {k[len("module."):]: v for k, v in sd.items() if k.startswith("module.")}
    if plain and "module.conv1.weight" in sd:
        return plain, "supervised"
    raise CheckpointError(f"{source}: no 'module.encoder_q.*' nor 'module.conv1.weight' keys; "
                          f"first keys: {list(sd)[:5]}")


def load_backbone(model: nn.Module, ckpt: dict, source: str = "checkpoint") -> None:
    """Load the checkpoint's backbone into a torchvision ResNet, strictly: only fc.* may be missing."""
    state, _ = encoder_state(ckpt, source)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    mismatched = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
                  if k in own and own[k].shape != v.shape]
    if mismatched:
        raise CheckpointError(f"{source} (arch {ckpt.get('arch')!r}, stem "
                              f"{(ckpt.get('config') or {}).get('stem')!r}) does not fit this model: "
                              f"{mismatched[:3]}; use the checkpoint's arch/stem")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"{source}: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")
