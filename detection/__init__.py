"""Detectron2 transfer: checkpoint converter (convert.py) and its proof (proof.py), the MoCo protocol's
configs (configs/, config.py), the benchmark registry (benchmarks.py), our registered heads (roi_heads.py)
and the train/eval entry of one trial (engine.py).

Importing this package registers Res5ROIHeadsExtraNorm in Detectron2's ROI_HEADS_REGISTRY, so the
configs in detection/configs work from every entry point of this project (the runner, the converter,
tests, and any script that does `import mocobench.detection`).
"""
from pathlib import Path

from mocobench.common.warnings_policy import quiet_imports

with quiet_imports():  # Detectron2's import-time torch.jit message; no filter stays behind
    from . import roi_heads  # noqa: F401  (registers Res5ROIHeadsExtraNorm)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
