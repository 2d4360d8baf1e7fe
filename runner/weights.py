"""--weights SPEC -> Init: what a trial starts from (random, a Detectron2 .pkl, a checkpoint converted with
its proof and cached, or a pretraining run's latest checkpoint), with what the record says about it."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mocobench.common import safe_pickle
from mocobench.common.hashing import sha256_file
from mocobench.common.naming import safe_name
from mocobench.pretrain.checkpoint import latest_checkpoint
from mocobench.records import INIT_KINDS
from mocobench.runner import RunnerError

log = logging.getLogger(__name__)


@dataclass
class Init:
    label: str
    kind: str                       # moco | supervised | random | other
    weights: str | None             # what the user gave (checkpoint or .pkl), None for random
    weights_sha256: str | None
    pkl: str | None                 # the Detectron2 file MODEL.WEIGHTS points to
    pretrain: dict[str, Any] = field(default_factory=lambda: {"run": None, "epoch": None})
    msra: bool = False
    depth: int | None = None        # ResNet depth of the weights, when known (checked against the config)
    format: str | None = None       # the checkpoint layout the converter detected (detection/formats.py)
    vit: dict[str, Any] | None = None  # a Vision Transformer's MODEL.VIT keys (detection/vit), from the weights

    def record_field(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "pretrain": self.pretrain, "detectron2_weights": self.pkl,
                "msra": self.msra, "format": self.format}


def _label(text: str) -> str:
    return safe_name(text, fallback="init")


def _latest(run_dir: Path) -> Path:
    path = latest_checkpoint(run_dir)
    if path is None:
        raise RunnerError(f"{run_dir} holds no checkpoint_NNNN.pth.tar: pretrain first (make pretrain) or pass "
                          f"a checkpoint file, a .pkl, or 'random' as --weights")
    return path


def resolve_init(spec: str, *, cache_dir: Path, label: str | None = None, kind: str | None = None,
                 msra: bool = False, fmt: str = "auto", vit_heads: int | None = None) -> Init:
    """--weights SPEC -> Init: 'random', a .pkl, a checkpoint (converted with proof, cached), or a
    pretraining output folder (its latest checkpoint). fmt: the checkpoint layout (--format), or "auto".
    A Vision Transformer checkpoint goes through the ViT converter (detection/vit/convert.py); vit_heads
    (--vit-heads) overrides its head count."""
    from mocobench.detection.convert import LAYOUTS, ConversionError, convert_file, load_checkpoint_report

    if kind is not None and kind not in INIT_KINDS:
        raise RunnerError(f"--kind must be one of {INIT_KINDS}")
    if spec == "random":
        return Init(label or "random", kind or "random", None, None, None)
    path = Path(spec)
    if not path.exists():
        raise RunnerError(f"--weights {spec}: no such file or folder (give a pretraining output folder, a "
                          f"checkpoint, a Detectron2 .pkl, or 'random')")
    run_dir = None
    if path.is_dir():
        run_dir, path = path, _latest(path)
        log.info("%s: latest checkpoint %s", run_dir, path.name)
    sha = sha256_file(path)
    if path.suffix == ".pkl":  # Detectron2 loads it with plain pickle: first make sure that runs no code
        safe_pickle.check(path)
        return Init(_label(label or path.stem), kind or ("supervised" if msra else "other"), str(path), sha,
                    str(path), msra=msra, depth=_pkl_depth(path), format=_pkl_source(path).get("format"),
                    vit=_pkl_source(path).get("vit"))
    try:  # any layout of detection/formats.py: torch files (foreign objects inert) or .safetensors
        ckpt = load_checkpoint_report(path)[0]
    except ConversionError as e:
        raise RunnerError(f"--weights {spec}: {e}") from None
    epoch = _epoch(ckpt)
    from mocobench.detection.vit.layouts import looks_like_vit

    if looks_like_vit(ckpt):
        return _vit_init(path, ckpt, sha, cache_dir=cache_dir, label=label, kind=kind, run_dir=run_dir, epoch=epoch,
                         heads=vit_heads)
    if vit_heads is not None:
        raise RunnerError(f"--vit-heads is for Vision Transformer weights; {spec} is not one")
    mode = (ckpt.get("config") or {}).get("mode") if isinstance(ckpt.get("config"), dict) else None
    pkl = cache_dir / f"{_label(path.name.split('.')[0])}-{sha[:12]}{'' if fmt == 'auto' else '-' + fmt}.pkl"
    if pkl.exists():
        log.info("using the cached conversion %s", pkl)
        fmt, depth = _pkl_format(pkl), _pkl_depth(pkl)
    else:
        try:
            conv = convert_file(path, pkl, fmt=fmt, list_tensors=False)[0]
        except ConversionError as e:
            raise RunnerError(f"--weights {spec}: {e}") from None
        fmt, depth = conv.format, conv.depth
    guessed_kind = LAYOUTS[fmt].kind if fmt in LAYOUTS else "other"
    if guessed_kind == "supervised" and mode not in (None, "supervised"):
        guessed_kind = "other"
    if label is None:
        label = f"{run_dir.name}-ep{epoch}" if run_dir is not None and epoch is not None else path.name.split(".")[0]
    return Init(_label(label), kind or guessed_kind, str(path), sha, str(pkl),
                {"run": str(run_dir) if run_dir else None, "epoch": epoch}, depth=depth, format=fmt)


def _vit_init(path: Path, ckpt: dict[str, Any], sha: str, *, cache_dir: Path, label: str | None, kind: str | None,
              run_dir: Path | None, epoch: int | None, heads: int | None) -> Init:
    """A ViT checkpoint converted (with its proof) for ViTDet, cached by content and head count."""
    from mocobench.detection.vit.convert import VitConversionError, convert_vit_file

    pkl = cache_dir / f"{_label(path.name.split('.')[0])}-{sha[:12]}-vit{'' if heads is None else f'-h{heads}'}.pkl"
    if pkl.exists():
        log.info("using the cached conversion %s", pkl)
        source = _pkl_source(pkl)
        fmt, guessed, vit = source.get("format", "unknown"), source.get("kind", "other"), source.get("vit")
    else:
        try:
            conv = convert_vit_file(path, pkl, heads=heads, list_tensors=False, ckpt=ckpt)[0]
        except VitConversionError as e:
            raise RunnerError(f"--weights {path}: {e}") from None
        fmt, guessed, vit = conv.format, conv.kind, conv.spec.cfg_keys()
    log.info(f"{path.name}: ViT {vit['EMBED_DIM']}x{vit['DEPTH']}, {vit['NUM_HEADS']} heads ({vit['heads_source']})")
    if label is None:
        label = f"{run_dir.name}-ep{epoch}" if run_dir is not None and epoch is not None else path.name.split(".")[0]
    return Init(_label(label), kind or guessed, str(path), sha, str(pkl),
                {"run": str(run_dir) if run_dir else None, "epoch": epoch}, format=fmt, vit=vit)


def _epoch(ckpt: dict[str, Any]) -> int | None:
    """The pretraining epoch a checkpoint states (top level, or mmcv/mmengine's meta), if any."""
    for holder in (ckpt, ckpt.get("meta")):
        if isinstance(holder, dict) and isinstance(holder.get("epoch"), int) and not isinstance(holder["epoch"], bool):
            return holder["epoch"]
    return None


def _pkl_source(pkl: Path) -> dict[str, Any]:
    """The "source" entry our converter writes into its pickles ({} for other pickles)."""
    payload = safe_pickle.load(pkl)
    return payload.get("source") or {} if isinstance(payload, dict) else {}


def _pkl_depth(pkl: Path) -> int | None:
    return _pkl_source(pkl).get("depth")


def _pkl_format(pkl: Path) -> str:
    return _pkl_source(pkl).get("format", "unknown")
