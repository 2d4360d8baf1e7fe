"""FCNHead: the semantic segmentation head of the MoCo paper's appendix, which no public repository ships.

On the dilated ResNet's res5 (output stride 16, segmentation/backbone.py):

    res5 (N, C, H/16, W/16)
      -> 3x3 conv, 256 channels, dilation 6 -> norm -> ReLU
      -> 3x3 conv, 256 channels, dilation 6 -> norm -> ReLU
      -> 1x1 conv, num_classes                         logits (N, K, H/16, W/16)
      -> bilinear x16                                  logits (N, K, H, W) at the padded input size

Training loss: per-pixel cross-entropy, pixels of the ignore value (255) left out. The norm is the
backbone's (MODEL.RESNETS.NORM, inherited from the shared Base-*-BN.yaml: one switch for all), so the
recipe's "BN" is synchronised exactly where the backbone's is. Registered in Detectron2's
SEM_SEG_HEADS_REGISTRY on `import mocobench.segmentation` (every entry point of this project).
"""
from __future__ import annotations

import torch
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from fvcore.nn import weight_init
from torch import nn
from torch.nn import functional as F

CONV_DILATION = 6
NUM_CONVS = 2


@SEM_SEG_HEADS_REGISTRY.register()
class FCNHead(nn.Module):
    @configurable
    def __init__(self, *, in_feature: str, in_channels: int, stride: int, num_classes: int, conv_dims: int = 256,
                 num_convs: int = NUM_CONVS, dilation: int = CONV_DILATION, norm: str = "BN",
                 ignore_value: int = 255, loss_weight: float = 1.0):
        super().__init__()
        self.in_feature, self.stride = in_feature, stride
        self.ignore_value, self.loss_weight = ignore_value, loss_weight
        convs = []
        for k in range(num_convs):
            conv = Conv2d(in_channels if k == 0 else conv_dims, conv_dims, kernel_size=3, padding=dilation,
                          dilation=dilation, bias=not norm, norm=get_norm(norm, conv_dims), activation=F.relu)
            weight_init.c2_msra_fill(conv)
            convs.append(conv)
        self.convs = nn.Sequential(*convs)
        self.predictor = Conv2d(conv_dims, num_classes, kernel_size=1)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.constant_(self.predictor.bias, 0)

    @classmethod
    def from_config(cls, cfg, input_shape: dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        if len(head.IN_FEATURES) != 1:
            raise ValueError(f"FCNHead reads one feature map (res5), not MODEL.SEM_SEG_HEAD.IN_FEATURES "
                             f"{head.IN_FEATURES}")
        name = head.IN_FEATURES[0]
        return {"in_feature": name, "in_channels": input_shape[name].channels, "stride": input_shape[name].stride,
                "num_classes": head.NUM_CLASSES, "conv_dims": head.CONVS_DIM, "norm": cfg.MODEL.RESNETS.NORM,
                "ignore_value": head.IGNORE_VALUE, "loss_weight": head.LOSS_WEIGHT}

    def layers(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.predictor(self.convs(features[self.in_feature]))      # (N, K, H/stride, W/stride)
        return F.interpolate(x, scale_factor=self.stride, mode="bilinear", align_corners=False)  # (N, K, H, W)

    def forward(self, features: dict[str, torch.Tensor], targets: torch.Tensor | None = None):
        """Training: ({}, {"loss_sem_seg": loss}); inference: (logits (N, K, H, W), {})."""
        logits = self.layers(features)
        if not self.training:
            return logits, {}
        if logits.shape[-2:] != targets.shape[-2:]:
            raise ValueError(f"logits {tuple(logits.shape[-2:])} vs targets {tuple(targets.shape[-2:])}: the backbone "
                             f"must pad its input to a multiple of the stride {self.stride} (size_divisibility)")
        loss = F.cross_entropy(logits.float(), targets, reduction="mean", ignore_index=self.ignore_value)
        return None, {"loss_sem_seg": loss * self.loss_weight}
