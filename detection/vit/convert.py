"""Convert a Vision Transformer checkpoint (detection/vit/layouts.py) into a Detectron2 pickle for ViTDet,
and prove it (detection/vit/proof.py).

    python -m mocobench.detection.convert INPUT OUTPUT.pkl [--vit-heads N]    # the converter sends ViTs here

Writes {"model": {"backbone.net.<timm name>": ndarray}, "__author__", "matching_heuristics": False, "source":
{format, kind, vit: MODEL.VIT keys, ...}}: full Detectron2 names, so Detectron2's suffix matching (which can
attach one tensor to two places) is never used. The class token, its position, the final norm, heads,
decoders and momentum copies are dropped and listed; the position embeddings keep the pretraining grid, from
which ViTDet's ViT resizes them bicubically to its input.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from mocobench.detection.convert.result import ConversionError
from mocobench.detection.convert.save import prove_or_remove, write_pickle
from mocobench.detection.vit.layouts import VitLayoutError, VitSpec, extract_vit, looks_like_vit
from mocobench.detection.vit.proof import VitProofError, VitProofReport, verify_vit

log = logging.getLogger(__name__)
AUTHOR = "moco-transfer-bench detection.vit.convert"
PREFIX = "backbone.net."


class VitConversionError(ConversionError):
    """The input cannot be converted into ViTDet's backbone, or its proof failed."""


@dataclass
class VitConversion:
    format: str
    kind: str
    spec: VitSpec
    source_state: dict[str, torch.Tensor]       # the body under timm names (cls_token and its position kept)
    detectron2_state: dict[str, np.ndarray]      # backbone.net.* names
    dropped: list[str]
    meta: dict[str, Any]


def to_detectron2(body: Mapping[str, torch.Tensor], spec: VitSpec) -> tuple[dict[str, np.ndarray], list[str]]:
    """timm names -> backbone.net.* (Detectron2's ViT inside SimpleFeaturePyramid); the class token and its
    position dropped (returned)."""
    out, dropped = {}, []
    for k, v in body.items():
        if k == "cls_token":
            dropped.append(k)
            continue
        if k == "pos_embed" and v.shape[1] == spec.grid ** 2 + 1:
            v = v[:, 1:]
            dropped.append("pos_embed[:, 0] (the class position)")
        out[PREFIX + k] = v.detach().to(torch.float32).cpu().numpy().copy()
    return out, dropped


def convert_vit(ckpt: Mapping[str, Any], *, heads: int | None = None) -> VitConversion:
    try:
        found, spec = extract_vit(ckpt, heads=heads)
    except VitLayoutError as e:
        raise VitConversionError(str(e)) from None
    state, dropped = to_detectron2(found.state, spec)
    return VitConversion(found.layout, found.kind, spec, found.state, state, found.dropped + dropped, found.meta)


def save_vit(conv: VitConversion, output: str | os.PathLike, *, source: str | None = None,
             overwrite: bool = False) -> Path:
    payload = {"model": conv.detectron2_state, "__author__": AUTHOR, "matching_heuristics": False,
               "source": {"path": source, "format": conv.format, "kind": conv.kind, "depth": None,
                          "vit": conv.spec.cfg_keys(), "epoch": conv.meta.get("epoch"),
                          "arch": conv.spec.arch}}
    return write_pickle(payload, output, overwrite=overwrite, error=VitConversionError)


def convert_vit_file(input: str | os.PathLike, output: str | os.PathLike, *, heads: int | None = None,
                     overwrite: bool = False, check: bool = True, list_tensors: bool = True,
                     ckpt: Mapping[str, Any] | None = None) -> tuple[VitConversion, VitProofReport | None]:
    """Convert INPUT into OUTPUT and prove it; the output is removed when the proof fails."""
    each = log.info if list_tensors else log.debug
    if ckpt is None:
        from mocobench.detection.convert.load import load_checkpoint_report

        try:
            ckpt = load_checkpoint_report(input)[0]
        except ConversionError as e:
            raise VitConversionError(str(e)) from None
    if not looks_like_vit(ckpt):
        raise VitConversionError(f"{input}: no ViT tensors (blocks.N.attn.qkv, patch_embed.proj) found")
    conv = convert_vit(ckpt, heads=heads)
    s = conv.spec
    log.info(f"{input}: format {conv.format} ({conv.kind}), ViT width {s.embed_dim}, depth {s.depth}, patch "
             f"{s.patch_size}, grid {s.grid}x{s.grid} ({s.pretrain_img_size} px), {s.num_heads} heads ["
             f"{s.heads_source}]" + (", layer-scale" if s.layer_scale else ""))
    for k, v in conv.detectron2_state.items():
        each(f"  {k:55s} {tuple(v.shape)}")
    log.info(f"dropped {len(conv.dropped)}: " + ", ".join(conv.dropped[:12]) + (" ..." if len(conv.dropped) > 12
                                                                                else ""))
    path = save_vit(conv, output, source=str(input), overwrite=overwrite)
    report = None
    if check:
        report = prove_or_remove(path, lambda: verify_vit(path, conv.source_state, s), VitConversionError,
                                 (VitProofError,))
        if not report.ok:
            path.unlink()
            raise VitConversionError(f"proof failed: the converted ViT differs from timm's by {report.max_rel_diff:.3e}"
                                     f" (relative) > {report.tolerance:.0e}; {output} removed")
        log.info(f"proof OK: {report.shape} max|d2 - timm| = {report.max_abs_diff:.3e} (relative "
                 f"{report.max_rel_diff:.3e}) at the pretraining grid, window = grid")
    log.info(f"wrote {path}")
    return conv, report
