"""detectron2's evaluators on the synthetic data: ground truth given as predictions scores 100,
a perturbed prediction scores lower."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image


def _instances(d, boxes, classes, masks=None, scores=None):
    from detectron2.structures import Boxes, Instances

    inst = Instances((d["height"], d["width"]))
    inst.pred_boxes = Boxes(torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)))
    inst.pred_classes = torch.as_tensor(classes, dtype=torch.int64)
    inst.scores = torch.as_tensor(scores if scores is not None else [1.0] * len(classes), dtype=torch.float32)
    if masks is not None:
        inst.pred_masks = torch.as_tensor(np.asarray(masks, bool).reshape(-1, d["height"], d["width"]))
    return inst


def _run(evaluator, dicts, predict):
    evaluator.reset()
    for d in dicts:
        evaluator.process([d], [predict(d)])
    return evaluator.evaluate()


def _shift(box, d, frac):
    x0, y0, x1, y1 = box
    dx = frac * (x1 - x0)
    return [min(x0 + dx, d["width"] - 1), y0, min(x1 + dx, d["width"]), y1]


def test_pascal_voc_evaluator(synthetic_layout):
    from detectron2.data import DatasetCatalog
    from detectron2.evaluation import PascalVOCDetectionEvaluator

    dicts = DatasetCatalog.get("synth_voc_2007_test")
    present = {a["category_id"] for d in dicts for a in d["annotations"]}
    assert present == set(range(len(synthetic_layout.classes))), "tiny VOC test split lacks a class"
    evaluator = PascalVOCDetectionEvaluator("synth_voc_2007_test")

    def gt(d):
        anns = d["annotations"]
        return {"instances": _instances(d, [a["bbox"] for a in anns], [a["category_id"] for a in anns])}

    def shifted(d):
        anns = d["annotations"]
        return {"instances": _instances(d, [_shift(a["bbox"], d, 0.3) for a in anns], [a["category_id"] for a in anns])}

    perfect = _run(evaluator, dicts, gt)["bbox"]
    assert perfect["AP50"] == pytest.approx(100) and perfect["AP"] == pytest.approx(100)
    worse = _run(evaluator, dicts, shifted)["bbox"]
    assert worse["AP75"] < 60 and worse["AP"] < perfect["AP"] - 20


def test_coco_evaluator_bbox_and_segm(synthetic_layout, tmp_path):
    from detectron2.data import DatasetCatalog
    from detectron2.evaluation import COCOEvaluator

    dicts = DatasetCatalog.get("synth_coco_val")
    evaluator = COCOEvaluator("synth_coco_val", tasks=("bbox", "segm"), distributed=False,
                              output_dir=str(tmp_path), use_fast_impl=False)

    def masks(d, anns):
        return [mask_util.decode(mask_util.merge(mask_util.frPyObjects(a["segmentation"], d["height"], d["width"])))
                if isinstance(a["segmentation"], list) else mask_util.decode(a["segmentation"]) for a in anns]

    def gt(d, drop_masks=False):
        from detectron2.structures import BoxMode

        anns = [a for a in d["annotations"] if not a["iscrowd"]]
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
        ms = masks(d, anns)
        if drop_masks:  # keep boxes, spoil masks: each mask loses its right half
            ms = [m * (np.arange(d["width"]) < (b[0] + b[2]) / 2)[None] for m, b in zip(ms, boxes)]
        return {"instances": _instances(d, boxes, [a["category_id"] for a in anns], ms)}

    perfect = _run(evaluator, dicts, gt)
    for task in ("bbox", "segm"):
        assert perfect[task]["AP"] == pytest.approx(100) and perfect[task]["AP50"] == pytest.approx(100)
    worse = _run(evaluator, dicts, lambda d: gt(d, drop_masks=True))
    assert worse["bbox"]["AP"] == pytest.approx(100) and worse["segm"]["AP"] < 50


def _cityscapes_gt_instances(d, classes, erode=False):
    from cityscapesscripts.helpers.labels import id2label

    path = d["file_name"].replace("leftImg8bit", "gtFine", 1).replace("_leftImg8bit.png", "_gtFine_instanceIds.png")
    ids = np.asarray(Image.open(path)).astype(np.int64)
    masks, cls = [], []
    for value in np.unique(ids[ids >= 1000]):
        m = ids == value
        if erode:  # keep only the upper half of each instance
            ys = np.nonzero(m)[0]
            m = m & (np.arange(m.shape[0]) < (ys.min() + ys.max()) / 2)[:, None]
        masks.append(m)
        cls.append(classes.index(id2label[int(value // 1000)].name))
    boxes = [[np.nonzero(m)[1].min(), np.nonzero(m)[0].min(), np.nonzero(m)[1].max() + 1, np.nonzero(m)[0].max() + 1]
             for m in masks]
    return {"instances": _instances(d, boxes, cls, masks)}


def test_cityscapes_instance_evaluator(synthetic_layout, tmp_path, monkeypatch):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import CityscapesInstanceEvaluator

    monkeypatch.chdir(tmp_path)  # cityscapesscripts writes matches.json into the working directory
    name = "synth_cityscapes_fine_instance_seg_val"
    dicts = DatasetCatalog.get(name)
    classes = MetadataCatalog.get(name).thing_classes
    evaluator = CityscapesInstanceEvaluator(name)
    perfect = _run(evaluator, dicts, lambda d: _cityscapes_gt_instances(d, classes))["segm"]
    assert perfect["AP"] == pytest.approx(100) and perfect["AP50"] == pytest.approx(100)
    worse = _run(evaluator, dicts, lambda d: _cityscapes_gt_instances(d, classes, erode=True))["segm"]
    assert worse["AP"] < 50


@pytest.mark.parametrize("evaluator_name", ["SemSegEvaluator", "CityscapesSemSegEvaluator"])
def test_semantic_segmentation_evaluators(synthetic_layout, tmp_path, monkeypatch, evaluator_name):
    from detectron2 import evaluation
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from mocobench.data.datasets import read_label_png

    monkeypatch.chdir(tmp_path)
    name = "synth_cityscapes_fine_sem_seg_val"
    dicts = DatasetCatalog.get(name)
    num_classes = len(MetadataCatalog.get(name).stuff_classes)
    cls = getattr(evaluation, evaluator_name)
    if evaluator_name == "SemSegEvaluator":
        evaluator = cls(name, distributed=False, output_dir=None, sem_seg_loading_fn=read_label_png)
    else:
        evaluator = cls(name)

    def predict(d, shift=0):
        train_ids = np.asarray(Image.open(d["sem_seg_file_name"])).astype(np.int64)
        train_ids = np.roll(train_ids, shift, axis=0)
        scores = torch.zeros(num_classes, *train_ids.shape)
        valid = train_ids < num_classes
        scores[(torch.as_tensor(train_ids.clip(0, num_classes - 1)), *np.indices(train_ids.shape))] = \
            torch.as_tensor(valid, dtype=torch.float32)
        return {"sem_seg": scores}

    key = "mIoU" if evaluator_name == "SemSegEvaluator" else "IoU"
    perfect = _run(evaluator, dicts, predict)["sem_seg"][key]
    worse = _run(evaluator, dicts, lambda d: predict(d, shift=d["height"] // 6))["sem_seg"][key]
    assert perfect == pytest.approx(100)
    assert worse < perfect - 10
