"""The protocol configs load and build, carry the MoCo settings, and the extra-norm C4 head loads
converted weights into res5 through Detectron2's matching heuristics."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import mocobench.detection  # noqa: F401  (registers Res5ROIHeadsExtraNorm)
from mocobench.detection import CONFIG_DIR
from mocobench.detection import convert as C
from mocobench.detection.benchmarks import BENCHMARKS
from mocobench.detection.config import build_config
from tests.helpers.checkpoints import randomised_resnet

RGB_MEAN, RGB_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _cfg(name: str, init_kind="moco", msra=False, synthetic=False):
    cfg = build_config(BENCHMARKS[name], weights=None, msra=msra, random_init=init_kind == "random",
                       synthetic=synthetic)
    cfg.MODEL.DEVICE = "cpu"
    return cfg


# user data and the ViTDet benchmark (tests/detection/test_vit_recipe.py): elsewhere
@pytest.mark.parametrize("name", sorted(n for n, b in BENCHMARKS.items() if b.epochs is None and "vitdet" not in n))
def test_protocol_settings(name):
    cfg = _cfg(name)
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 0 and cfg.TEST.PRECISE_BN.ENABLED
    assert cfg.MODEL.RESNETS.NORM == "naiveSyncBN" and cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False and cfg.INPUT.FORMAT == "RGB"
    assert list(cfg.MODEL.PIXEL_MEAN) == RGB_MEAN and list(cfg.MODEL.PIXEL_STD) == RGB_STD
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.BASE_LR == 0.02
    assert cfg.SOLVER.REFERENCE_WORLD_SIZE == 0  # our scaling rule, not Detectron2's silent auto-scaling
    expected = {"voc0712-det-c4": (24000, (18000, 22000)), "voc07-det-c4": (9000, (6750, 8250)),
                "coco-mask-fpn-1x": (90000, (60000, 80000)), "coco-mask-c4-1x": (90000, (60000, 80000)),
                "coco-mask-fpn-2x": (180000, (120000, 160000)), "coco-mask-c4-2x": (180000, (120000, 160000)),
                "coco-kp-fpn-2x": (180000, (120000, 160000)), "lvis-mask-fpn-2x": (180000, (120000, 160000))}[name]
    assert (cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS)) == expected
    if "c4" in name:
        assert cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeadsExtraNorm"
    else:
        assert cfg.MODEL.FPN.NORM == "naiveSyncBN" and cfg.MODEL.ROI_HEADS.NAME == "StandardROIHeads"
        assert cfg.MODEL.ROI_BOX_HEAD.NUM_CONV == 0 and cfg.MODEL.ROI_BOX_HEAD.NUM_FC == 2  # standard heads
    if name.startswith("voc"):
        assert not cfg.MODEL.MASK_ON and cfg.DATASETS.TEST == ("voc_2007_test",)
        assert cfg.DATASETS.TRAIN == (("voc_2007_trainval",) if name == "voc07-det-c4"
                                      else ("voc_2007_trainval", "voc_2012_trainval"))
    elif name == "coco-kp-fpn-2x":  # Keypoint R-CNN: one class, COCO's 17 keypoints and OKS sigmas
        assert cfg.MODEL.KEYPOINT_ON and not cfg.MODEL.MASK_ON and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1
        assert cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == 17 and len(cfg.TEST.KEYPOINT_OKS_SIGMAS) == 17
        assert cfg.DATASETS.TRAIN == ("keypoints_coco_2017_train",)
        assert cfg.DATASETS.TEST == ("keypoints_coco_2017_val",)
    elif name == "lvis-mask-fpn-2x":  # the LVIS paper's baseline settings
        assert cfg.MODEL.MASK_ON and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1230 and cfg.TEST.DETECTIONS_PER_IMAGE == 300
        assert cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.0001 and cfg.DATALOADER.REPEAT_THRESHOLD == 0.001
        assert cfg.DATALOADER.SAMPLER_TRAIN == "RepeatFactorTrainingSampler"
        assert cfg.DATASETS.TRAIN == ("lvis_v0.5_train",) and cfg.DATASETS.TEST == ("lvis_v0.5_val",)
    else:
        assert cfg.MODEL.MASK_ON and cfg.DATASETS.TEST == ("coco_2017_val",)


def test_frozen_bn_variant():
    """--norm FrozenBN (the appendix's supervised LVIS baseline): frozen backbone BN, no norm in the new FPN,
    the stem and res2 frozen (FREEZE_AT 2, Detectron2's LVIS baselines and the LVIS paper's supervised setting;
    the default keeps every stage trainable); refused from random init."""
    from mocobench.common.config import ConfigError

    cfg = build_config(BENCHMARKS["lvis-mask-fpn-2x"], weights=None, norm="FrozenBN")
    assert cfg.MODEL.RESNETS.NORM == "FrozenBN" and cfg.MODEL.FPN.NORM == ""
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 2
    assert build_config(BENCHMARKS["lvis-mask-fpn-2x"], weights=None).MODEL.BACKBONE.FREEZE_AT == 0
    with pytest.raises(ConfigError, match="FrozenBN diverges"):
        build_config(BENCHMARKS["lvis-mask-fpn-2x"], weights=None, norm="FrozenBN", random_init=True)


def test_init_variants():
    msra = _cfg("voc0712-det-c4", init_kind="supervised", msra=True)
    assert msra.INPUT.FORMAT == "BGR" and list(msra.MODEL.PIXEL_STD) == [1.0, 1.0, 1.0]
    assert list(msra.MODEL.PIXEL_MEAN) == RGB_MEAN[::-1] and msra.MODEL.RESNETS.STRIDE_IN_1X1
    rnd = _cfg("coco-mask-fpn-1x", init_kind="random")
    assert rnd.MODEL.WEIGHTS == "" and rnd.MODEL.RESNETS.NORM == "naiveSyncBN" and rnd.MODEL.BACKBONE.FREEZE_AT == 0
    sup = _cfg("coco-mask-fpn-1x", init_kind="supervised")
    assert sup.dump() == _cfg("coco-mask-fpn-1x").dump()  # torchvision-format supervised: same settings as MoCo


@pytest.mark.parametrize("name,synthetic", [(n, s) for n in ("voc0712-det-c4", "coco-mask-fpn-1x", "coco-mask-c4-2x",
                                                      "coco-kp-fpn-2x", "lvis-mask-fpn-2x")
                                            for s in (False, True)])
def test_models_build(name, synthetic):
    from detectron2.modeling import build_model

    model = build_model(_cfg(name, synthetic=synthetic))
    keys = model.state_dict().keys()
    if "c4" in name:
        assert "roi_heads.res5.norm.running_var" in keys and "backbone.res5.0.conv1.weight" not in keys
    if name == "coco-kp-fpn-2x":
        assert any(k.startswith("roi_heads.keypoint_head.") for k in keys) and not any("mask_head" in k for k in keys)
    if synthetic:
        assert "backbone.bottom_up.res2.0.conv1.weight" in keys or "backbone.res2.0.conv1.weight" in keys
        assert not any(k.endswith("conv3.weight") for k in keys)  # ResNet-18: BasicBlocks throughout


@pytest.mark.parametrize("depth", [18, 50])
def test_c4_head_receives_res5_from_converted_weights(depth, tmp_path):
    """Detectron2's heuristics put the pickle's res5.* into roi_heads.res5 (BasicBlock for R18), leave
    the extra norm fresh, and load every pickle tensor exactly once."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    conv = C.convert(randomised_resnet(depth))
    pkl = C.save_detectron2(conv, tmp_path / "w.pkl")
    cfg = _cfg("voc0712-det-c4")
    if depth == 18:
        cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 18, 64
    model = build_model(cfg)
    DetectionCheckpointer(model).load(str(pkl))
    state = model.state_dict()
    for key, value in conv.detectron2_state.items():
        target = ("roi_heads." if key.startswith("res5.") else "backbone.") + key
        assert np.array_equal(state[target].numpy(), value), target
    assert torch.equal(state["roi_heads.res5.norm.weight"], torch.ones_like(state["roi_heads.res5.norm.weight"]))


def test_head_registered_on_import_in_a_fresh_process():
    code = ("import mocobench.detection; from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY; "
            "print(ROI_HEADS_REGISTRY.get('Res5ROIHeadsExtraNorm').__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Res5ROIHeadsExtraNorm" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("path", sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml")))
def test_every_config_file_loads_on_its_own(path):
    """As Detectron2's tools load a config (train_net.py --config-file): overlays carry their _BASE_."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG_DIR / path))
    assert cfg.MODEL.RESNETS.NORM == "naiveSyncBN" and cfg.MODEL.BACKBONE.FREEZE_AT == 0
    if path.startswith("user/"):  # a user's data set: the runner sets DATASETS (tests/data/test_user_datasets.py)
        assert not cfg.DATASETS.TRAIN and not cfg.DATASETS.TEST
    elif not path.startswith("Base-"):
        assert cfg.DATASETS.TRAIN and cfg.DATASETS.TEST


def test_overlays_apply_only_their_own_keys():
    """The demo delta on a benchmark it does not name as _BASE_ keeps that benchmark's own settings."""
    voc07, voc0712 = _cfg("voc07-det-c4", synthetic=True), _cfg("voc0712-det-c4", synthetic=True)
    assert voc07.DATASETS.TRAIN == ("synth_voc_2007_trainval",) and len(voc0712.DATASETS.TRAIN) == 2
    coco_c4 = _cfg("coco-mask-c4-1x", synthetic=True)
    assert coco_c4.MODEL.MASK_ON and coco_c4.SOLVER.MAX_ITER == voc0712.SOLVER.MAX_ITER  # the demo's schedule
    msra = _cfg("coco-mask-fpn-1x", init_kind="supervised", msra=True)
    assert msra.MODEL.FPN.NORM == "naiveSyncBN" and msra.MODEL.MASK_ON and msra.INPUT.FORMAT == "BGR"
