"""ViTDet's backbone from a yacs config: Detectron2's own `ViT` inside its `SimpleFeaturePyramid`
(detectron2/modeling/backbone/vit.py), registered as `build_vitdet_backbone`.

Two things a pretrained ViT may need that Detectron2's ViT lacks are added by subclassing, never by patching:

- layer-scale (DINOv2 `ls1`/`ls2`, iBOT and DeiT-III `gamma_1`/`gamma_2`): `LayerScaleBlock` multiplies each
  residual branch by its learnt per-channel gamma, as the pretrained network did. The gammas stay parameters
  and fine-tune with the rest (folding them into proj/fc2 is exact at load but changes what AdamW's updates
  do); their names are `blocks.N.ls1.gamma` / `ls2.gamma`, timm's and DINOv2's own.
- patch 14 (DINOv2): the ViT runs at its own patch size (stride 14, as pretrained) and its last map is
  resampled bilinearly to stride 16 (MODEL.VIT.FEATURE_STRIDE) before the pyramid, whose power-of-two strides
  4..32 then hold. The ViT's computation, hence the conversion proof, is unchanged; the pyramid sees an input
  of 1024/16 = 64 cells where the ViT computed 1024 // 14 = 73 (the last 2 pixels of a 1024 input fall outside
  every patch, as in DINOv2 itself). Recorded in the protocol (docs/vit.md).

Register tokens (DINOv2 `_reg` files) are refused by the converter: they attend with every patch token in every
block, and windowed blocks have no place for them, so no ViTDet computes what the pretrained network computed.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.utils import window_partition, window_unpartition
from detectron2.modeling.backbone.vit import Block, SimpleFeaturePyramid, ViT

from mocobench.detection.vit.config import window_blocks


class LayerScale(nn.Module):
    """x * gamma, one learnt factor per channel (timm's and DINOv2's `ls1`/`ls2`)."""

    def __init__(self, dim: int, init_value: float = 1.0):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x):
        return x * self.gamma


class LayerScaleBlock(Block):
    """Detectron2's ViT block with layer-scale on both residual branches:
    x + drop_path(ls1(attn(norm1(x)))), then + drop_path(ls2(mlp(norm2(x))))."""

    def __init__(self, dim, *args, init_value: float = 1.0, **kwargs):
        if kwargs.get("use_residual_block"):
            raise ValueError("layer-scale blocks with ViTDet's residual conv blocks are not supported")
        super().__init__(dim, *args, **kwargs)
        self.ls1, self.ls2 = LayerScale(dim, init_value), LayerScale(dim, init_value)

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            h, w = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
        x = self.attn(x)
        if self.window_size > 0:
            x = window_unpartition(x, self.window_size, pad_hw, (h, w))
        x = shortcut + self.drop_path(self.ls1(x))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class ViTDetNet(ViT):
    """Detectron2's ViT with optional layer-scale blocks and an output stride of `feature_stride` (the
    patch-14 map resampled; equal to the patch size: the ViT's own output, untouched)."""

    def __init__(self, *, layer_scale: bool = False, feature_stride: int | None = None, **kwargs):
        super().__init__(**kwargs)
        patch, self.patch_size = kwargs.get("patch_size", 16), kwargs.get("patch_size", 16)
        if layer_scale:
            depth, dim = len(self.blocks), kwargs.get("embed_dim", 768)
            dpr = [x.item() for x in torch.linspace(0, kwargs.get("drop_path_rate", 0.0), depth)]
            img = kwargs.get("img_size", 1024)
            for i, old in enumerate(self.blocks):
                self.blocks[i] = LayerScaleBlock(
                    dim, kwargs.get("num_heads", 12), mlp_ratio=kwargs.get("mlp_ratio", 4.0),
                    qkv_bias=kwargs.get("qkv_bias", True), drop_path=dpr[i],
                    norm_layer=kwargs.get("norm_layer", nn.LayerNorm), act_layer=kwargs.get("act_layer", nn.GELU),
                    use_rel_pos=kwargs.get("use_rel_pos", False),
                    rel_pos_zero_init=kwargs.get("rel_pos_zero_init", True), window_size=old.window_size,
                    input_size=(img // patch, img // patch))
            self.apply(self._init_weights)
        self.feature_stride = feature_stride or patch
        self._out_feature_strides = {self._out_features[0]: self.feature_stride}

    def forward(self, x):
        height, width = x.shape[-2:]
        out = super().forward(x)
        if self.feature_stride != self.patch_size:
            name = self._out_features[0]
            size = (height // self.feature_stride, width // self.feature_stride)
            out[name] = F.interpolate(out[name], size=size, mode="bilinear", align_corners=False)
        return out


def build_vit_net(cfg, *, window_size: int | None = None, img_size: int | None = None,
                  drop_path_rate: float | None = None) -> ViTDetNet:
    """The plain ViT of MODEL.VIT. window_size / img_size: the proof's overrides (window = grid, at the
    pretraining size: every block then attends over the whole grid, as the pretrained network did)."""
    v = cfg.MODEL.VIT
    if v.EMBED_DIM % v.NUM_HEADS:
        raise ValueError(f"MODEL.VIT.EMBED_DIM {v.EMBED_DIM} is not divisible by NUM_HEADS {v.NUM_HEADS}")
    window = v.WINDOW_SIZE if window_size is None else window_size
    return ViTDetNet(
        img_size=v.IMG_SIZE if img_size is None else img_size, patch_size=v.PATCH_SIZE, embed_dim=v.EMBED_DIM,
        depth=v.DEPTH, num_heads=v.NUM_HEADS, mlp_ratio=v.MLP_RATIO, qkv_bias=v.QKV_BIAS,
        drop_path_rate=v.DROP_PATH_RATE if drop_path_rate is None else drop_path_rate,
        norm_layer=partial(nn.LayerNorm, eps=v.NORM_EPS), act_layer=nn.GELU, use_abs_pos=True,
        use_rel_pos=v.USE_REL_POS, rel_pos_zero_init=True, window_size=window,
        window_block_indexes=window_blocks(cfg) if window_size is None else list(range(v.DEPTH)),
        residual_block_indexes=[], pretrain_img_size=v.PRETRAIN_IMG_SIZE, pretrain_use_cls_token=False,
        out_feature=v.OUT_FEATURE, layer_scale=v.LAYER_SCALE, feature_stride=v.FEATURE_STRIDE)


@BACKBONE_REGISTRY.register()
def build_vitdet_backbone(cfg, input_shape: ShapeSpec) -> SimpleFeaturePyramid:
    """ViTDet: the plain ViT of MODEL.VIT, then SimpleFeaturePyramid (scales 4, 2, 1, 0.5 and a max-pooled p6,
    MODEL.FPN.OUT_CHANNELS channels, MODEL.VIT.PYRAMID_NORM) with square padding MODEL.VIT.SQUARE_PAD."""
    if input_shape.channels != 3:
        raise ValueError(f"build_vitdet_backbone takes RGB input (3 channels), got {input_shape.channels}")
    v = cfg.MODEL.VIT
    if v.FEATURE_STRIDE & (v.FEATURE_STRIDE - 1):
        raise ValueError(f"MODEL.VIT.FEATURE_STRIDE {v.FEATURE_STRIDE}: the pyramid needs a power of two")
    net = build_vit_net(cfg)
    return SimpleFeaturePyramid(net, in_feature=v.OUT_FEATURE, out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
                                scale_factors=tuple(v.PYRAMID_SCALES), top_block=LastLevelMaxPool(),
                                norm=v.PYRAMID_NORM, square_pad=v.SQUARE_PAD)
