"""Res5ROIHeadsExtraNorm: the C4 ROI head of the MoCo detection protocol.

Detectron2's Res5ROIHeads runs the backbone's res5 stage on every ROI. The MoCo protocol adds one
normalisation layer (cfg.MODEL.RESNETS.NORM, naiveSyncBN by default) after res5: in the backbone-only
pretrained ResNet nothing normalises res5's output, and fine-tuning with BN everywhere needs it.

Two differences from Detectron2's own head, both through the registry (nothing patched):
- the extra norm after the res5 blocks (``roi_heads.res5.norm``; the converted pickle has no tensor
  of that name, so it starts as a fresh BN),
- res5 built with BasicBlock for ResNet-18/34 (Detectron2 builds BottleneckBlock only), so the
  small ResNets of the built-in demo can run the same C4 protocol as ResNet-50.

Registered on ``import mocobench.detection`` (every entry point of this package imports it).
"""
from __future__ import annotations

from detectron2.layers import get_norm
from detectron2.modeling.backbone.resnet import BasicBlock, BottleneckBlock, ResNet
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads
from torch import nn

from mocobench.common.resnets import resnet_depth


def build_res5_stage(cfg) -> tuple[nn.Sequential, int]:
    """res5 (stride 2 first block) as the backbone of cfg.MODEL.RESNETS.DEPTH would build it, plus
    the extra norm. Returns (module, output channels)."""
    depth = cfg.MODEL.RESNETS.DEPTH
    num_blocks = resnet_depth(depth).blocks[3]
    norm = cfg.MODEL.RESNETS.NORM
    out_channels = cfg.MODEL.RESNETS.RES2_OUT_CHANNELS * 8  # res5 is 8x res2
    if cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE[-1]:
        raise ValueError("deformable convolutions are not supported in the res5 ROI head")
    common = dict(stride_per_block=[2] + [1] * (num_blocks - 1), in_channels=out_channels // 2,
                  out_channels=out_channels, norm=norm)
    if depth < 50:
        if cfg.MODEL.RESNETS.RES2_OUT_CHANNELS != 64:
            raise ValueError("MODEL.RESNETS.RES2_OUT_CHANNELS must be 64 for ResNet-18/34")
        blocks = ResNet.make_stage(BasicBlock, num_blocks, **common)
    else:
        groups, width = cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP
        blocks = ResNet.make_stage(BottleneckBlock, num_blocks, bottleneck_channels=groups * width * 8,
                                   num_groups=groups, stride_in_1x1=cfg.MODEL.RESNETS.STRIDE_IN_1X1, **common)
    res5 = nn.Sequential(*blocks)
    res5.add_module("norm", get_norm(norm, out_channels))  # the extra norm: roi_heads.res5.norm.*
    return res5, out_channels


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeadsExtraNorm(Res5ROIHeads):
    """Res5ROIHeads with a norm layer after res5 and BasicBlock support (see module doc)."""

    @classmethod
    def _build_res5_block(cls, cfg):
        return build_res5_stage(cfg)
