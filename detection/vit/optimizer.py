"""ViTDet's optimizer for yacs configs (Detectron2's yacs solver builds SGD only): AdamW (SOLVER.BASE_LR, BETAS,
WEIGHT_DECAY) with no weight decay on norms (SOLVER.WEIGHT_DECAY_NORM 0) and on the position embeddings, and
layer-wise lr decay MODEL.VIT.LR_DECAY_RATE over the ViT's blocks: the patch embedding and position embeddings
get decay^(depth + 1), block i decay^(depth - i), everything after the ViT (pyramid, RPN, ROI heads) 1, which is
the factor Detectron2's get_vit_lr_decay_rate gives ViTDet's LazyConfig (tests/detection/test_vit_recipe.py).
"""
from __future__ import annotations

import re
from functools import partial

import torch

_BLOCK = re.compile(r"^backbone\.(?:.*\.)?blocks\.(\d+)\.")
_EMBED = re.compile(r"^backbone\.(?:.*\.)?(pos_embed|patch_embed)")


def vit_layer_id(name: str, depth: int) -> int:
    """0 for the embeddings, i + 1 for block i, depth + 1 for every other parameter."""
    if _EMBED.match(name):
        return 0
    m = _BLOCK.match(name)
    return int(m.group(1)) + 1 if m else depth + 1


def vit_lr_factor(name: str, *, decay: float, depth: int) -> float:
    return decay ** (depth + 1 - vit_layer_id(name, depth))


def build_vit_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW with ViTDet's parameter groups (SOLVER.OPTIMIZER "AdamW")."""
    from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping

    if cfg.SOLVER.OPTIMIZER != "AdamW":
        raise ValueError(f"SOLVER.OPTIMIZER {cfg.SOLVER.OPTIMIZER!r}: build_vit_optimizer builds AdamW")
    params = get_default_optimizer_params(
        model, base_lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        lr_factor_func=partial(vit_lr_factor, decay=cfg.MODEL.VIT.LR_DECAY_RATE, depth=cfg.MODEL.VIT.DEPTH),
        overrides={"pos_embed": {"weight_decay": 0.0}})
    adamw = maybe_add_gradient_clipping(cfg, torch.optim.AdamW)
    return adamw(params, lr=cfg.SOLVER.BASE_LR, betas=tuple(cfg.SOLVER.BETAS), weight_decay=cfg.SOLVER.WEIGHT_DECAY)
