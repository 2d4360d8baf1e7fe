"""Segmentation transfer: Cityscapes instance segmentation (Mask R-CNN R50-FPN) and the paper appendix's
semantic segmentation (FCN on a dilated ResNet-50) on VOC and Cityscapes. Configs (configs/), the
benchmark registry (benchmarks.py), the dilated ResNet backbone (backbone.py) and the FCN head
(fcn_head.py). Training and evaluation use the same runner and Detectron2 entry as detection.

Importing this package registers `build_dilated_resnet_backbone` (BACKBONE_REGISTRY) and `FCNHead`
(SEM_SEG_HEADS_REGISTRY), so the configs in segmentation/configs work from every entry point of this
project (the runner and its trial processes, tests, and any script that does
`import mocobench.segmentation`).
"""
from pathlib import Path

from mocobench.common.warnings_policy import quiet_imports

with quiet_imports():  # Detectron2's import-time torch.jit message; no filter stays behind
    from . import backbone, fcn_head  # noqa: F401  (register the dilated ResNet and FCNHead)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
