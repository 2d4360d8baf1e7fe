"""The dilated ResNet of the paper's FCN: res5 ("conv5") with stride 1 and dilation 2, so the backbone's
output stride is 16 instead of 32. Registered in Detectron2's BACKBONE_REGISTRY as
`build_dilated_resnet_backbone`.

Detectron2's own builder dilates res5 for bottleneck ResNets (RESNETS.RES5_DILATION 2: stride 1 and
dilation 2 in every 3x3 conv of res5) but refuses ResNet-18/34; this one builds the same stages from
Detectron2's blocks, with a dilated BasicBlock for ResNet-18/34 (the built-in demo's ResNet-18), so
the converted weights of any depth load under the same names (stem.*, res2.* ... res5.*).
The backbone pads its input to a multiple of 16 (`size_divisibility`), so res5 is exactly 1/16 of the
padded input and the head's x16 upsampling gives back the padded input's size.
"""
from __future__ import annotations

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet

from mocobench.common.resnets import resnet_depth

OUTPUT_STRIDE = 16


class DilatedBasicBlock(BasicBlock):
    """Detectron2's BasicBlock with both 3x3 convs dilated (padding = dilation keeps the size)."""

    def __init__(self, in_channels, out_channels, *, stride=1, norm="BN", dilation=1):
        super().__init__(in_channels, out_channels, stride=stride, norm=norm)
        for conv in (self.conv1, self.conv2):
            conv.dilation, conv.padding = (dilation, dilation), (dilation, dilation)


class DilatedResNet(ResNet):
    """Detectron2's ResNet whose input is padded to a multiple of the output stride (16)."""

    @property
    def size_divisibility(self) -> int:
        return OUTPUT_STRIDE


@BACKBONE_REGISTRY.register()
def build_dilated_resnet_backbone(cfg, input_shape: ShapeSpec) -> DilatedResNet:
    """ResNet-18/34/50/101/152 with res5 at stride 1, dilation 2 (needs MODEL.RESNETS.RES5_DILATION 2)."""
    r = cfg.MODEL.RESNETS
    blocks = resnet_depth(r.DEPTH).blocks
    if r.RES5_DILATION != 2:
        raise ValueError("build_dilated_resnet_backbone is the FCN recipe's conv5 with dilation 2: set "
                         "MODEL.RESNETS.RES5_DILATION 2")
    if any(r.DEFORM_ON_PER_STAGE):
        raise ValueError("deformable convolutions are not supported by build_dilated_resnet_backbone")
    basic = r.DEPTH < 50
    if basic and (r.RES2_OUT_CHANNELS != 64 or r.NUM_GROUPS != 1):
        raise ValueError("ResNet-18/34 need MODEL.RESNETS.RES2_OUT_CHANNELS 64 and NUM_GROUPS 1")
    stem = BasicStem(in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=r.NORM)
    in_ch, out_ch, bottleneck = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS, r.NUM_GROUPS * r.WIDTH_PER_GROUP
    stages = []
    for idx, n in enumerate(blocks):
        dilation = 2 if idx == 3 else 1
        first_stride = 1 if idx in (0, 3) else 2          # res2: after the stem's pool; res5: dilated instead
        kwargs = dict(num_blocks=n, stride_per_block=[first_stride] + [1] * (n - 1), in_channels=in_ch,
                      out_channels=out_ch, norm=r.NORM)
        if basic:
            stage = ResNet.make_stage(DilatedBasicBlock, dilation=dilation, **kwargs)
        else:
            stage = ResNet.make_stage(BottleneckBlock, bottleneck_channels=bottleneck, num_groups=r.NUM_GROUPS,
                                      stride_in_1x1=r.STRIDE_IN_1X1, dilation=dilation, **kwargs)
        stages.append(stage)
        in_ch, out_ch, bottleneck = out_ch, out_ch * 2, bottleneck * 2
    return DilatedResNet(stem, stages, out_features=r.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)
