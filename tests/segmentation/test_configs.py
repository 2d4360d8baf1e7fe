"""The segmentation protocol configs: each loads on its own as Detectron2's tools load it, carries the
recipe, and takes its norm from the shared detection base files (one switch for every benchmark)."""
from __future__ import annotations

import pytest
import yaml

from mocobench.detection import CONFIG_DIR as DETECTION_CONFIGS
from mocobench.detection.config import build_config
from mocobench.runner.benchmarks import BENCHMARKS as ALL
from mocobench.runner.benchmarks import resolve_benchmark
from mocobench.segmentation import CONFIG_DIR
from mocobench.segmentation.benchmarks import BENCHMARKS

FILES = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml"))


def _base_norm() -> str:
    norms = {yaml.safe_load((DETECTION_CONFIGS / f).read_text())["MODEL"]["RESNETS"]["NORM"]
             for f in ("Base-RCNN-C4-BN.yaml", "Base-RCNN-FPN-BN.yaml")}
    assert len(norms) == 1
    return norms.pop()


@pytest.mark.parametrize("path", FILES)
def test_every_config_file_loads_on_its_own(path):
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG_DIR / path))
    assert cfg.MODEL.RESNETS.NORM == _base_norm() and cfg.MODEL.BACKBONE.FREEZE_AT == 0
    assert cfg.TEST.PRECISE_BN.ENABLED and cfg.INPUT.FORMAT == "RGB" and cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False
    own = yaml.safe_load((CONFIG_DIR / path).read_text())["MODEL"]
    assert not any("NORM" in own.get(k, {}) for k in ("RESNETS", "FPN", "SEM_SEG_HEAD"))  # inherited, not per config
    if not path.startswith("Base-"):
        assert cfg.DATASETS.TRAIN and cfg.DATASETS.TEST


def test_registry_names_aliases_and_recipes():
    assert {"cityscapes-mask-fpn", "voc-seg-fcn", "cityscapes-seg-fcn"} <= set(ALL) and set(BENCHMARKS) < set(ALL)
    for alias, name in (("cityscapes-mask", "cityscapes-mask-fpn"), ("voc-seg", "voc-seg-fcn"),
                        ("cityscapes-seg", "cityscapes-seg-fcn")):
        assert resolve_benchmark(alias).name == name
    cs = build_config(BENCHMARKS["cityscapes-mask-fpn"], weights=None)
    assert cs.MODEL.MASK_ON and cs.MODEL.ROI_HEADS.NUM_CLASSES == 8 and cs.MODEL.FPN.NORM == _base_norm()
    assert (cs.SOLVER.IMS_PER_BATCH, cs.SOLVER.BASE_LR, cs.SOLVER.MAX_ITER, tuple(cs.SOLVER.STEPS)) == \
        (8, 0.01, 24000, (18000,))
    assert tuple(cs.INPUT.MIN_SIZE_TRAIN) == tuple(range(800, 1025, 32)) and cs.INPUT.MIN_SIZE_TEST == 1024
    assert cs.DATASETS.TRAIN == ("cityscapes_fine_instance_seg_train",)
    assert cs.DATASETS.TEST == ("cityscapes_fine_instance_seg_val",)
    for name, crop, lr, iters, classes, train in (
            ("voc-seg-fcn", 513, 0.003, 30000, 21, "voc_2012_sem_seg_train_aug"),
            ("cityscapes-seg-fcn", 769, 0.01, 90000, 19, "cityscapes_fine_sem_seg_train")):
        c = build_config(BENCHMARKS[name], weights=None)
        assert c.MODEL.META_ARCHITECTURE == "SemanticSegmentor" and c.MODEL.SEM_SEG_HEAD.NAME == "FCNHead"
        assert c.MODEL.RESNETS.RES5_DILATION == 2 and c.MODEL.RESNETS.DEPTH == 50
        assert tuple(c.INPUT.CROP.SIZE) == (crop, crop) and c.INPUT.CROP.ENABLED and c.INPUT.MIN_SIZE_TEST == 0
        assert (c.SOLVER.IMS_PER_BATCH, c.SOLVER.BASE_LR, c.SOLVER.MAX_ITER, c.SOLVER.WEIGHT_DECAY) == \
            (16, lr, iters, 1e-4)
        assert tuple(c.SOLVER.STEPS) == (round(0.7 * iters), round(0.9 * iters))
        assert c.MODEL.SEM_SEG_HEAD.NUM_CLASSES == classes and c.DATASETS.TRAIN == (train,)
        assert c.MODEL.SEM_SEG_HEAD.CONVS_DIM == 256 and c.INPUT.RANDOM_FLIP == "horizontal"


def test_demo_deltas_swap_in_the_synthetic_twins():
    for name in BENCHMARKS:
        c = build_config(BENCHMARKS[name], weights=None, synthetic=True)
        assert all(d.startswith("synth_") for d in (*c.DATASETS.TRAIN, *c.DATASETS.TEST))
        assert c.MODEL.RESNETS.DEPTH == 18 and c.MODEL.RESNETS.NORM == _base_norm()
