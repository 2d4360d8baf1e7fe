"""Vision Transformer checkpoints in the suite: ViTDet (Li et al. 2022) through Detectron2's own `ViT` and
`SimpleFeaturePyramid`, reached from yacs configs.

- config.py: the MODEL.VIT / INPUT.LSJ / SOLVER.OPTIMIZER keys (`add_vit_config`), the global-block pattern;
- backbone.py: `build_vitdet_backbone` (BACKBONE_REGISTRY), the layer-scale subclass, patch-14 resampling;
- optimizer.py: AdamW with ViTDet's layer-wise lr decay (the yacs solver builds SGD only);
- lsj.py: the large-scale-jitter dataset mapper (yacs has none);
- layouts.py: the ViT checkpoint layouts (DINO, MAE, MoCo v3, iBOT, DINOv2, timm, mmpretrain) -> timm names;
- convert.py: timm names -> Detectron2 names (backbone.net.*), the pickle, and its forward proof (proof.py).

Importing this package registers `build_vitdet_backbone`; configs/ holds the benchmark's yacs files.
"""
from pathlib import Path

from . import backbone  # noqa: F401  (registers build_vitdet_backbone)
from .config import add_vit_config  # noqa: F401

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
