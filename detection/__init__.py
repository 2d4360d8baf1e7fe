"""Detectron2 transfer: checkpoint converter, the MoCo protocol's configs, and our registered heads.

Importing this package registers Res5ROIHeadsExtraNorm in Detectron2's ROI_HEADS_REGISTRY, so the
configs in detection/configs work from every entry point of this project (the runner, the converter,
tests, and any script that does `import detection`).
"""
from pathlib import Path

from . import roi_heads  # noqa: F401  (registers Res5ROIHeadsExtraNorm)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
