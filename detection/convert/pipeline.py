"""One conversion from end to end: load -> detect the layout -> the layout's architecture extracts and renames
-> save -> the forward-pass proof (the output is removed when the proof fails)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from mocobench.detection.convert.archs import architecture
from mocobench.detection.convert.detect import detect_layout, known_drop
from mocobench.detection.convert.load import load_checkpoint_report, meta_of
from mocobench.detection.convert.result import Conversion, ConversionError, Extracted
from mocobench.detection.convert.save import prove_or_remove, save_detectron2
from mocobench.detection.formats import Layout
from mocobench.detection.proof import ProofError, VerifyReport

log = logging.getLogger(__name__)


def VIT_LAYOUT_NAMES() -> list[str]:  # noqa: N802  (the ViT family's layout names, read lazily)
    from mocobench.detection.vit.layouts import VIT_LAYOUTS

    return list(VIT_LAYOUTS)


def _refuse_small_image_pretraining(meta: Mapping[str, Any]) -> None:
    """This suite's own checkpoints state their stem: a small-image one cannot become a Detectron2 stem."""
    stem = (meta.get("config") or {}).get("stem") if isinstance(meta.get("config"), Mapping) else None
    if stem not in (None, "standard"):
        raise ConversionError(f"the checkpoint was pretrained with stem {stem!r} (3x3 conv1, no max-pool, for "
                              f"small images): Detectron2's ResNet stem is a 7x7 stride-2 conv + max-pool, "
                              f"so these weights cannot map onto it. Pretrain with the standard stem to transfer.")


def _extract(ckpt: Mapping[str, Any], fmt: str) -> tuple[Extracted, Layout, dict[str, Any]]:
    meta = meta_of(ckpt)
    _refuse_small_image_pretraining(meta)
    found = detect_layout(ckpt, fmt)
    return architecture(found.layout.arch).extract(found, ckpt), found.layout, meta


def extract_backbone(ckpt: Mapping[str, Any], fmt: str = "auto"
                     ) -> tuple[dict[str, torch.Tensor], int, Layout, list[str], dict[str, Any]]:
    """Backbone tensors (torchvision names), depth, layout, dropped keys and meta of a checkpoint."""
    ex, lay, meta = _extract(ckpt, fmt)
    return ex.backbone, ex.depth, lay, ex.dropped, meta


def convert(ckpt: Mapping[str, Any], fmt: str = "auto", *, ignored_objects: list[str] | None = None) -> Conversion:
    """The checkpoint's backbone under Detectron2's names (nothing written)."""
    ex, lay, meta = _extract(ckpt, fmt)
    d2_state, key_map = architecture(lay.arch).to_detectron2(ex.backbone)
    found_unknown = [k for k in ex.dropped if "/" not in k and not known_drop(lay, k)]
    return Conversion(format=lay.name, depth=ex.depth, torchvision_state=ex.backbone, detectron2_state=d2_state,
                      key_map=[(ex.sources[a], b) for a, b in key_map], dropped=ex.dropped, meta=meta,
                      ignored_objects=list(ignored_objects or []), unknown_dropped=found_unknown, arch=lay.arch,
                      classifier=ex.classifier)


def _log_conversion(conv: Conversion, input: str | os.PathLike, list_tensors: bool) -> None:
    each = log.info if list_tensors else log.debug
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


def _prove(conv: Conversion, path: Path, output: str | os.PathLike) -> VerifyReport:
    """The architecture's forward-pass proof of the written file; the file is removed when it fails."""
    report = prove_or_remove(path, lambda: architecture(conv.arch).verify(path, conv.torchvision_state, conv.depth),
                             ConversionError, (ProofError,))
    for stage in report.max_abs_diff:
        log.info(f"proof: {stage} {str(report.shapes[stage]):22s} max|d2 - torchvision| = "
                 f"{report.max_abs_diff[stage]:.3e} (relative {report.max_rel_diff[stage]:.3e})")
    stage, worst = report.largest()
    if not report.ok:
        path.unlink()
        raise ConversionError(f"proof failed: {stage} differs by {worst:.3e} (relative) > {report.tolerance:.0e}; "
                              f"the converted backbone does not compute what the source does. {output} removed.")
    log.info(f"proof OK: largest relative difference {worst:.3e} ({stage}) <= {report.tolerance:.0e}")
    return report


def convert_file(input: str | os.PathLike, output: str | os.PathLike, *, fmt: str = "auto", overwrite: bool = False,
                 check: bool = True, list_tensors: bool = True, vit_heads: int | None = None) -> tuple[Any, Any]:
    """Convert INPUT into OUTPUT, log the key map and (check=True) the forward-pass proof.
    list_tensors: every mapped and dropped tensor at INFO (the convert command), else at DEBUG (a run's console:
    the counts only). Raises ConversionError when the input is wrong or the proof fails (the output is then
    removed). A Vision Transformer checkpoint goes to the ViT family (detection/vit: its layouts, extractor,
    Detectron2 names and proof against timm), which returns (VitConversion, VitProofReport); vit_heads: its
    head count (--vit-heads), overriding the checkpoint's metadata and the standard value for the width."""
    ckpt, ignored = load_checkpoint_report(input)
    from mocobench.detection.vit.layouts import looks_like_vit

    if looks_like_vit(ckpt):  # the ViT family: layouts detected by their keys (detection/vit/layouts.py)
        if fmt != "auto":
            raise ConversionError(f"--format {fmt} names a ResNet layout but {input} holds a Vision Transformer "
                                  f"(its layout is detected: {', '.join(VIT_LAYOUT_NAMES())})")
        from mocobench.detection.vit.convert import convert_vit_file

        return convert_vit_file(input, output, heads=vit_heads, overwrite=overwrite, check=check,
                                list_tensors=list_tensors, ckpt=ckpt)
    if vit_heads is not None:
        raise ConversionError(f"--vit-heads is for Vision Transformer checkpoints; {input} is not one")
    conv = convert(ckpt, fmt, ignored_objects=ignored)
    _log_conversion(conv, input, list_tensors)
    if Path(output).exists() and not overwrite:
        raise ConversionError(f"{output} already exists; pass --overwrite to replace it, or choose another name")
    path = save_detectron2(conv, output, source=str(input), overwrite=overwrite)
    report = _prove(conv, path, output) if check else None
    log.info(f"wrote {path}")
    return conv, report
