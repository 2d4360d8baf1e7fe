"""detectron2 builds Faster R-CNN R50-C4 and Mask R-CNN R50-FPN on CPU and runs them on synthetic batches."""
from __future__ import annotations

import pytest
import torch

CASES = [
    ("PascalVOC-Detection/faster_rcnn_R_50_C4.yaml", "synth_voc_2007_trainval", False),
    ("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml", "synth_coco_train", True),
]


@pytest.mark.parametrize("config, dataset, mask", CASES, ids=["faster_rcnn_R50_C4", "mask_rcnn_R50_FPN"])
def test_build_and_forward_on_cpu(synthetic_layout, config, dataset, mask):
    from detectron2 import model_zoo
    from detectron2.config import get_cfg
    from detectron2.data import build_detection_train_loader
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(config))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(synthetic_layout.classes)
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST, cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 100, 20
    cfg.DATASETS.TRAIN = (dataset,)
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (96,), 128
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.roi_heads.box_predictor.cls_score.out_features == len(synthetic_layout.classes) + 1
    assert model.roi_heads.mask_on is mask

    batch = next(iter(build_detection_train_loader(cfg)))
    model.train()
    with EventStorage(0):
        losses = model(batch)
    expected = {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"} | ({"loss_mask"} if mask else set())
    assert set(losses) == expected
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    resnet = getattr(model.backbone, "bottom_up", model.backbone)  # FPN wraps the ResNet
    assert resnet.stem.conv1.weight.grad is None  # FREEZE_AT 2 as in the zoo config
    assert model.roi_heads.box_predictor.cls_score.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        out = model([{"image": item["image"], "height": 96, "width": 128} for item in batch])
    assert len(out) == 2
    for o in out:
        inst = o["instances"]
        assert inst.image_size == (96, 128) and len(inst) <= cfg.TEST.DETECTIONS_PER_IMAGE
        assert inst.has("pred_masks") is mask
