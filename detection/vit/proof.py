"""The proof of a ViT conversion: Detectron2's ViT (the detector's own `ViTDetNet`, built from the same
MODEL.VIT keys the detector gets), loaded with the converted pickle through Detectron2's checkpointer,
computes what timm's `VisionTransformer` holding the source tensors computes, on one image.

The comparison runs where the two networks are the same function: at the pretraining grid, with the window
equal to the grid (one window: every block attends over the whole grid, as in pretraining; ViTDet's
relative positions are new, zero-initialised parameters that add nothing), the class token removed on both
sides (ViTDet has none: timm is built with class_token=False and the position embeddings of the patches), and
without the final norm (ViTDet's pyramid reads the last block's output). A smaller window, a dropped
layer-scale or a wrong head count each change the output, and the proof fails.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn as nn

from mocobench.common import safe_pickle
from mocobench.common.errors import UsageError
from mocobench.detection.vit.layouts import VitSpec


class VitProofError(UsageError):
    """The converted ViT does not load, or does not compute what the source computes."""


@dataclass
class VitProofReport:
    max_abs_diff: float
    max_rel_diff: float
    shape: tuple[int, ...]
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_rel_diff <= self.tolerance


def spec_config(spec: VitSpec, **overrides):
    """A Detectron2 config with MODEL.VIT from the spec (overrides: KEY=value of MODEL.VIT)."""
    from detectron2.config import get_cfg

    from mocobench.detection.vit.config import add_vit_config

    cfg = get_cfg()
    add_vit_config(cfg)
    for k, v in {**spec.cfg_keys(), **overrides}.items():
        if k.isupper():
            setattr(cfg.MODEL.VIT, k, v)
    return cfg


def reference_vit(spec: VitSpec, source: Mapping[str, torch.Tensor]) -> nn.Module:
    """timm's VisionTransformer holding the source tensors: no class token, no final norm, the patches'
    position embeddings (the class position of the source dropped)."""
    from timm.models.vision_transformer import VisionTransformer

    ref = VisionTransformer(img_size=spec.pretrain_img_size, patch_size=spec.patch_size, num_classes=0,
                            global_pool="", embed_dim=spec.embed_dim, depth=spec.depth, num_heads=spec.num_heads,
                            mlp_ratio=spec.mlp_ratio, qkv_bias=spec.qkv_bias,
                            init_values=1.0 if spec.layer_scale else None, class_token=False, final_norm=False)
    state = {k: v for k, v in source.items() if k != "cls_token"}
    pos = state["pos_embed"]
    if pos.shape[1] == spec.grid ** 2 + 1:
        state["pos_embed"] = pos[:, 1:]
    ref.load_state_dict(state, strict=True)
    return ref.eval()


def proof_input(spec: VitSpec, seed: int = 0) -> torch.Tensor:
    """One normalised image at the pretraining size (smooth structure plus noise), 1x3xSxS."""
    size = spec.pretrain_img_size
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    base = torch.stack([torch.sin(xx / 7.0), torch.cos(yy / 5.0), torch.sin((xx + yy) / 11.0)])
    return (base + 0.5 * torch.randn(3, size, size, generator=g))[None]


def verify_vit(pkl_path: str | os.PathLike, source: Mapping[str, torch.Tensor], spec: VitSpec, *,
               window: int | None = None, tolerance: float = 1e-4, **cfg_overrides) -> VitProofReport:
    """Load the pickle into Detectron2's ViT (built from `spec`; window: the grid unless given, cfg_overrides:
    MODEL.VIT keys, e.g. LAYER_SCALE=False or NUM_HEADS=6 to see the proof fail) and compare with timm's."""
    from detectron2.checkpoint import DetectionCheckpointer

    from mocobench.detection.vit.backbone import build_vit_net

    cfg = spec_config(spec, FEATURE_STRIDE=spec.patch_size, **cfg_overrides)
    net = build_vit_net(cfg, window_size=spec.grid if window is None else window, img_size=spec.pretrain_img_size,
                        drop_path_rate=0.0).eval()
    holder = nn.Module()
    holder.backbone = nn.Module()
    holder.backbone.net = net
    DetectionCheckpointer(holder).load(str(pkl_path))
    saved = safe_pickle.load(pkl_path)["model"]
    loaded = holder.state_dict()
    absent = [k for k in loaded if k not in saved and ".rel_pos_" not in k]
    if absent:
        raise VitProofError(f"Detectron2's ViT has tensors the pickle lacks: {absent[:8]}")
    differ = [k for k, v in saved.items() if k not in loaded or tuple(loaded[k].shape) != v.shape
              or not np.array_equal(loaded[k].numpy(), v)]
    if differ:
        raise VitProofError(f"Detectron2's checkpointer did not load these tensors as written: {differ[:8]}")
    x = proof_input(spec)
    with torch.no_grad():
        got = net(x)[cfg.MODEL.VIT.OUT_FEATURE]                             # 1 x C x g x g
        tokens = reference_vit(spec, source).forward_features(x)           # 1 x g*g x C
        ref = tokens.reshape(1, spec.grid, spec.grid, -1).permute(0, 3, 1, 2)
    if got.shape != ref.shape:
        raise VitProofError(f"Detectron2 output {tuple(got.shape)} vs timm {tuple(ref.shape)}")
    diff = (got - ref).abs().max().item()
    return VitProofReport(diff, diff / max(ref.abs().max().item(), 1e-12), tuple(ref.shape), tolerance)
