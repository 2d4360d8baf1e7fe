"""The ResNet depths the suite reads and builds, in one table: blocks per stage (res2..res5, torchvision's
layer1..layer4) and whether the blocks are bottlenecks. Used by the converter (which depth a checkpoint
holds), the C4 ROI head's res5 and the dilated segmentation backbone."""
from __future__ import annotations

from typing import NamedTuple


class ResNetDepth(NamedTuple):
    blocks: tuple[int, int, int, int]  # res2, res3, res4, res5
    bottleneck: bool  # BottleneckBlock (ResNet-50 and deeper) or BasicBlock


RESNET_DEPTHS: dict[int, ResNetDepth] = {
    18: ResNetDepth((2, 2, 2, 2), False),
    34: ResNetDepth((3, 4, 6, 3), False),
    50: ResNetDepth((3, 4, 6, 3), True),
    101: ResNetDepth((3, 4, 23, 3), True),
    152: ResNetDepth((3, 8, 36, 3), True),
}


def resnet_depth(depth: int) -> ResNetDepth:
    """The table's entry; a clear error for a depth it does not have."""
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"MODEL.RESNETS.DEPTH {depth} unsupported; use one of {sorted(RESNET_DEPTHS)}")
    return RESNET_DEPTHS[depth]
