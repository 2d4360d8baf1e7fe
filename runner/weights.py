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
    msra: bool = False              # MSRA caffe weights: Detectron2's MSRA input settings (from the file)
    depth: int | None = None        # ResNet depth of the weights, when known (checked against the config)
    format: str | None = None       # the checkpoint layout the converter detected (detection/formats.py)
    vit: dict[str, Any] | None = None  # a Vision Transformer's MODEL.VIT keys (detection/vit), from the weights
    kind_reason: str = ""           # why this kind: declared, or the evidence in the file
    declared: bool = False          # the kind was given by the user (--kind, --supervised)
    input_reason: str = ""          # why these input settings (MSRA or torchvision RGB)

    def record_field(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "pretrain": self.pretrain, "detectron2_weights": self.pkl,
                "msra": self.msra, "format": self.format, "kind_reason": self.kind_reason,
                "kind_declared": self.declared, "input_reason": self.input_reason}

    def describe(self) -> str:
        """One line for the plan: how this row was classified and which input settings it gets, and why."""
        vit = self.vit or {}
        arch = (f"; ViT width {vit['EMBED_DIM']}, depth {vit['DEPTH']}, patch {vit['PATCH_SIZE']}, {vit['NUM_HEADS']} "
                f"heads ({vit.get('heads_source', '?')})" if vit else "")
        return f"{self.label}: kind {self.kind} ({self.kind_reason}); input {self.input_reason}{arch}"


MSRA_INPUT = "MSRA caffe settings (BGR, caffe mean, std 1, STRIDE_IN_1X1 True)"
RGB_INPUT = "torchvision settings (RGB, torchvision mean/std, STRIDE_IN_1X1 False)"
NO_EVIDENCE = ("no evidence of supervised training in the file (no classifier, not MSRA, not this suite's "
               "supervised pretraining): declare it with --kind supervised / --supervised if it is")


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
    kind: the declared kind (--kind, --supervised), else the evidence in the file decides (classify).
    msra: --msra, accepted only for a file whose content is MSRA/Caffe2 (which needs no flag).
    A Vision Transformer checkpoint goes through the ViT converter (detection/vit/convert.py); vit_heads
    (--vit-heads) overrides its head count."""
    from mocobench.detection.convert import LAYOUTS, ConversionError, load_checkpoint_report

    if kind is not None and kind not in INIT_KINDS:
        raise RunnerError(f"--kind must be one of {INIT_KINDS}")
    if spec == "random":
        return _random_init(label=label, kind=kind, msra=msra)
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
        return _pkl_init(path, sha, label=label, kind=kind, msra=msra)
    if msra:
        raise RunnerError(f"--msra with --weights {spec}: a checkpoint converted here is torchvision-style (RGB, "
                          f"torchvision's mean/std, stride in the 3x3 conv); MSRA caffe weights are a Caffe2 .pkl, "
                          f"recognised without the flag. Drop --msra.")
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
    pkl, fmt, depth, classifier = _converted(spec, path, sha, cache_dir=cache_dir, fmt=fmt)
    layout_kind = LAYOUTS[fmt].kind if fmt in LAYOUTS else "other"
    found, why = classify_checkpoint(fmt, layout_kind, mode, classifier)
    if label is None:
        label = f"{run_dir.name}-ep{epoch}" if run_dir is not None and epoch is not None else path.name.split(".")[0]
    return Init(_label(label), kind or found, str(path), sha, str(pkl),
                {"run": str(run_dir) if run_dir else None, "epoch": epoch}, depth=depth, format=fmt,
                kind_reason="declared" if kind else why, declared=kind is not None,
                input_reason=f"{RGB_INPUT}: a torchvision-style ResNet converted here")


def _random_init(*, label: str | None, kind: str | None, msra: bool) -> Init:
    """--weights random: no file; the protocol's input settings."""
    if msra:
        raise RunnerError("--msra with --weights random: random init has no input settings to take")
    return Init(label or "random", kind or "random", None, None, None, kind_reason="declared" if kind else
                "random init", declared=kind is not None, input_reason="the protocol's (random init)")


def _converted(spec: str, path: Path, sha: str, *, cache_dir: Path,
               fmt: str) -> tuple[Path, str, int | None, list[int] | None]:
    """A ResNet checkpoint converted to a Detectron2 .pkl (with its proof), or its cached conversion (named by the
    file's hash and the --format): (the .pkl, the layout, the ResNet depth, the stored classifier's shape)."""
    from mocobench.detection.convert import ConversionError, convert_file

    pkl = cache_dir / f"{_label(path.name.split('.')[0])}-{sha[:12]}{'' if fmt == 'auto' else '-' + fmt}.pkl"
    if pkl.exists():
        log.info("using the cached conversion %s", pkl)
        source = _pkl_source(pkl)
        return pkl, source.get("format", "unknown"), source.get("depth"), source.get("classifier")
    try:
        conv = convert_file(path, pkl, fmt=fmt, list_tensors=False)[0]
    except ConversionError as e:
        raise RunnerError(f"--weights {spec}: {e}") from None
    return pkl, conv.format, conv.depth, conv.classifier


def classify_checkpoint(fmt: str, layout_kind: str, mode: str | None, classifier: list[int] | None
                        ) -> tuple[str, str]:
    """(kind, why) of a converted checkpoint, on evidence only: this suite's own config, MoCo's own layouts,
    a classifier stored with the backbone. A bare ResNet (hub files of DINO, Barlow Twins, VICReg; released
    DenseCL) is `other`."""
    if mode == "supervised":
        return "supervised", "this suite's supervised pretraining (config mode supervised)"
    if mode == "moco":
        return "moco", "this suite's MoCo pretraining (config mode moco)"
    if layout_kind == "moco":
        return "moco", f"layout {fmt!r}: MoCo's query encoder"
    if classifier is not None:
        return "supervised", (f"a {classifier[0]}-way classifier over the {classifier[1]} features is stored with "
                              f"the backbone (layout {fmt!r})")
    return "other", f"layout {fmt!r}; {NO_EVIDENCE}"


def _pkl_init(path: Path, sha: str, *, label: str | None, kind: str | None, msra: bool) -> Init:
    """A Detectron2 .pkl: its origin (detection/convert/d2_pickles.py) decides the input settings and, with
    the evidence it holds, the kind. --msra must agree with the file."""
    from mocobench.detection.convert.d2_pickles import CAFFE2, MOCOBENCH, inspect_pickle
    from mocobench.detection.formats import LAYOUTS

    info = inspect_pickle(path)
    is_msra = info.origin == CAFFE2
    if msra and not is_msra:
        raise RunnerError(f"--msra with --weights {path}: the file is not MSRA/Caffe2 weights ({info.why}); its "
                          f"weights expect RGB input with torchvision's mean/std. Drop --msra.")
    if is_msra:
        found, why = "supervised", f"MSRA/Caffe2 ImageNet weights: {info.why}"
    elif info.origin == MOCOBENCH and info.format in LAYOUTS and LAYOUTS[info.format].kind == "moco":
        found, why = "moco", f"layout {info.format!r}: MoCo's query encoder ({info.why})"
    elif info.classifier is not None:
        found, why = "supervised", (f"a {info.classifier[0]}-way classifier over the {info.classifier[1]} features "
                                    f"is stored with the backbone ({info.why})")
    else:
        found, why = "other", f"{info.why}; {NO_EVIDENCE}"
    return Init(_label(label or path.stem), kind or found, str(path), sha, str(path), msra=is_msra,
                depth=info.depth, format=info.format if info.origin == MOCOBENCH else info.origin,
                vit=_pkl_source(path).get("vit"),
                kind_reason="declared" if kind else why, declared=kind is not None,
                input_reason=(f"{MSRA_INPUT}: {info.why}" if is_msra else f"{RGB_INPUT}: {info.why}"))


def check_supervised_claims(inits: list[Init], benchmark: str) -> list[Init]:
    """At most one supervised baseline per benchmark. Two undeclared claims: an error naming both. One declared:
    it is the baseline, and the others that only had evidence are recorded as `other`, saying why."""
    claims = [i for i in inits if i.kind == "supervised"]
    if len(claims) < 2:
        return inits
    declared = [i for i in claims if i.declared]
    if len(declared) > 1:
        raise RunnerError(f"{benchmark}: {declared[0].label!r} and {declared[1].label!r} are both declared the "
                          f"supervised baseline; declare one (--supervised / --kind supervised)")
    if not declared:
        a, b = claims[0], claims[1]
        raise RunnerError(f"{benchmark}: two rows claim to be the supervised baseline, {a.label!r} ({a.kind_reason}) "
                          f"and {b.label!r} ({b.kind_reason}); declare the baseline with --supervised SPEC (or "
                          f"--kind supervised), or the other with --kind other")
    for i in claims:
        if not i.declared:
            i.kind = "other"
            i.kind_reason = f"{i.kind_reason}, but {declared[0].label!r} is the declared supervised baseline"
    return inits


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
    why = {"supervised": f"layout {fmt!r}: a classifier head is stored with the ViT",
           "moco": f"layout {fmt!r}: MoCo v3's base encoder"}.get(guessed, f"layout {fmt!r}; {NO_EVIDENCE}")
    return Init(_label(label), kind or guessed, str(path), sha, str(pkl),
                {"run": str(run_dir) if run_dir else None, "epoch": epoch}, format=fmt, vit=vit,
                kind_reason="declared" if kind else why, declared=kind is not None,
                input_reason="RGB, ImageNet mean/std (as every ViT layout here): a Vision Transformer converted here")


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
