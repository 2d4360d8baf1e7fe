"""Checkpoints in the official MoCo format, written atomically, never over an existing file.

MoCo:       {"epoch": finished epochs, "arch", "state_dict": {"module.encoder_q.*", "module.encoder_k.*",
             "module.queue", "module.queue_ptr"}, "optimizer", "config", ...resume state}
Supervised: {"epoch", "arch", "state_dict": {"module.<torchvision resnet keys incl. fc>"}, "optimizer", "config", ...}
File: <out>/checkpoint_{epoch-1:04d}.pth.tar (the index of the last finished epoch, as the official code names it).

The one reader of checkpoints (`read_checkpoint`: tensors and plain data only, never code) and the one
`latest_checkpoint` of a run folder; the converter and the runner use them too.
"""
from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import warnings
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


# numpy's array reconstructors and torch's version string: the only non-plain objects in checkpoints this
# suite wrote before its RNG state became tensors. Allowed by `upgrade_legacy` alone, a command the user
# runs on a file they trust.
_LEGACY_NUMPY = ("torch.torch_version.TorchVersion", "numpy.core.multiarray._reconstruct",
                 "numpy._core.multiarray._reconstruct", "numpy.ndarray",
                 "numpy.dtype", "numpy.dtypes.UInt32DType", "numpy.core.multiarray.scalar",
                 "numpy._core.multiarray.scalar")
UPGRADE_HINT = "python -m mocobench.pretrain upgrade OLD NEW"


def plain(obj: Any) -> Any:
    """obj as JSON-plain data (dicts, lists, str, numbers, None): e.g. provenance with torch's version type."""
    return json.loads(json.dumps(obj, default=str))


def _refusal(path: Path, error: Exception) -> CheckpointError:
    """Why a file cannot be read with weights_only=True, in words (no traceback)."""
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint (legacy or truncated): fall back on torch's message
        needed = re.findall(r"GLOBAL ([\w.]+)", str(error))
    if needed and all(n in _LEGACY_NUMPY for n in needed):
        return CheckpointError(
            f"{path}: holds numpy objects or version strings ({', '.join(sorted(set(needed)))}), "
            f"which weights-only loading refuses. "
            f"Checkpoints written by mocobench before its RNG state was stored as tensors look like this. If you "
            f"wrote this file yourself (you trust it), convert it once with `{UPGRADE_HINT}` and use NEW.")
    if not needed:  # e.g. a plain pickle (a Detectron2 .pkl): torch names the opcode it stops at
        detail = str(error).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        return CheckpointError(
            f"{path}: refused by weights-only loading ({detail}): it is not a torch.save checkpoint of tensors and "
            f"plain data (a Detectron2 .pkl goes to `python -m mocobench run --weights`, not here). This suite "
            f"never loads checkpoints with weights_only=False (docs/reliability.md, 'Loading policy').")
    what = ", ".join(sorted(set(needed)))
    return CheckpointError(
        f"{path}: refused: loading it would need {what}, which is not a tensor or plain data. This suite loads "
        f"checkpoints with torch.load(weights_only=True) only, so that a downloaded file cannot run code "
        f"(docs/reliability.md, 'Loading policy'). Re-save the weights as a plain state_dict of tensors.")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """torch.load(weights_only=True) on CPU (tensors and plain data only, never code, no extra allowlist),
    with errors that say what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file. Pass a checkpoint (.pth/.pth.tar/.pt).")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights-only refusal: something that is not a tensor or plain data
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise _refusal(path, e) from None
        raise _unreadable(path, e) from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise _unreadable(path, e) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, expected a dict (a state_dict or a "
                              f"checkpoint with a 'state_dict' entry).")
    return obj


def _unreadable(path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}). Is the file truncated (an "
                           f"interrupted copy or download) or not a torch.save file?")


def upgrade_legacy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Rewrite a checkpoint of ours from before the plain RNG format (numpy RNG state) into the current one.

    Allows numpy's array reconstructors and nothing else (refused when the file needs anything more);
    run it only on files you trust. dst is written atomically and never replaces a file."""
    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file")
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(src))
    except Exception as e:
        raise _unreadable(src, e) from None
    if not needed <= set(_LEGACY_NUMPY):
        raise CheckpointError(f"{src}: needs {sorted(needed - set(_LEGACY_NUMPY))}, more than an old mocobench "
                              f"checkpoint does; not upgraded")
    from torch.torch_version import TorchVersion

    allowed = [np.ndarray, np.dtype, np.dtypes.UInt32DType, TorchVersion]
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        m = importlib.import_module(mod)
        allowed += [(m._reconstruct, f"{mod}._reconstruct"), (m.scalar, f"{mod}.scalar")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core is numpy._core's old name
        with torch.serialization.safe_globals(allowed):
            ckpt = torch.load(src, map_location="cpu", weights_only=True)
    state = (ckpt.get("rng") or {}).get("numpy")
    if isinstance(state, tuple):
        kind, key, pos, has_gauss, cached = state
        ckpt["rng"]["numpy"] = {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
                                "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    if "provenance" in ckpt:
        ckpt["provenance"] = plain(ckpt["provenance"])
    return save_atomic(ckpt, dst)


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


def stored_setting(ckpt: dict, key: str, default: Any = None) -> Any:
    """One key of the config a checkpoint stores (possibly partial: old or foreign checkpoints), or default."""
    node: Any = ckpt.get("config") or {}
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def load_backbone(model: nn.Module, ckpt: dict, source: str = "checkpoint") -> None:
    """Load the checkpoint's backbone into a torchvision ResNet, strictly: only fc.* may be missing."""
    state, _ = encoder_state(ckpt, source)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    mismatched = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
                  if k in own and own[k].shape != v.shape]
    if mismatched:
        raise CheckpointError(f"{source} (arch {ckpt.get('arch')!r}, stem "
                              f"{stored_setting(ckpt, 'stem')!r}) does not fit this model: "
                              f"{mismatched[:3]}; use the checkpoint's arch/stem")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"{source}: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")
