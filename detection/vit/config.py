"""The yacs keys of the ViTDet recipe, added to Detectron2's defaults (`add_vit_config`), as Detectron2's own
projects add theirs. Every config that builds a ViT must be loaded after `add_vit_config(cfg)`.

MODEL.VIT        the plain ViT (size from the weights) and its SimpleFeaturePyramid
INPUT.LSJ        large-scale jitter (ResizeScale + FixedSizeCrop), detection/vit/lsj.py
SOLVER.OPTIMIZER "SGD" (Detectron2's yacs default) or "AdamW" with ViTDet's layer-wise lr decay
"""
from __future__ import annotations


def add_vit_config(cfg) -> None:
    """Add the ViT keys with ViTDet's ViT-B values (no-op when already there)."""
    from detectron2.config import CfgNode as CN

    if "VIT" in cfg.MODEL:
        return
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    v = cfg.MODEL.VIT = CN()
    v.EMBED_DIM = 768
    v.DEPTH = 12
    v.NUM_HEADS = 12
    v.PATCH_SIZE = 16
    v.MLP_RATIO = 4.0
    v.QKV_BIAS = True
    v.NORM_EPS = 1e-6
    v.PRETRAIN_IMG_SIZE = 224       # the pretraining grid times the patch: the position embeddings' grid
    v.IMG_SIZE = 1024               # the input the relative positions of global blocks are sized for
    v.WINDOW_SIZE = 14
    v.GLOBAL_BLOCKS = []            # [] = ViTDet's pattern for the depth (global_blocks); else the indexes
    v.DROP_PATH_RATE = 0.1
    v.USE_REL_POS = True
    v.LAYER_SCALE = False           # ls1/ls2 gamma (DINOv2, iBOT/DeiT-III): trained like every other weight
    v.OUT_FEATURE = "last_feat"
    v.FEATURE_STRIDE = 16           # a patch-14 map is resampled to this stride before the pyramid
    v.PYRAMID_SCALES = [4.0, 2.0, 1.0, 0.5]
    v.PYRAMID_NORM = "LN"
    v.SQUARE_PAD = 1024
    v.LR_DECAY_RATE = 0.7           # ViTDet: 0.7 for B, 0.8 for L (only with SOLVER.OPTIMIZER AdamW)
    cfg.INPUT.LSJ = CN()
    cfg.INPUT.LSJ.ENABLED = False
    cfg.INPUT.LSJ.IMAGE_SIZE = 1024
    cfg.INPUT.LSJ.MIN_SCALE = 0.1
    cfg.INPUT.LSJ.MAX_SCALE = 2.0
    cfg.SOLVER.OPTIMIZER = "SGD"
    cfg.SOLVER.BETAS = (0.9, 0.999)
    if was_frozen:
        cfg.freeze()


def global_blocks(depth: int) -> list[int]:
    """ViTDet's global-attention blocks for a depth: the last block of each quarter of the network (ViT-B 12:
    2, 5, 8, 11, i.e. every third block; ViT-L 24: 5, 11, 17, 23; ViT-H 32: 7, 15, 23, 31); a network of
    fewer than 4 blocks: every block is global."""
    parts = min(4, depth)
    return sorted({(k + 1) * depth // parts - 1 for k in range(parts)})


def window_blocks(cfg) -> list[int]:
    v = cfg.MODEL.VIT
    glob = list(v.GLOBAL_BLOCKS) or global_blocks(v.DEPTH)
    bad = [i for i in glob if not 0 <= i < v.DEPTH]
    if bad:
        raise ValueError(f"MODEL.VIT.GLOBAL_BLOCKS {list(v.GLOBAL_BLOCKS)}: {bad} outside 0..{v.DEPTH - 1}")
    return [i for i in range(v.DEPTH) if i not in glob]
