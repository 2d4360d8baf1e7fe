"""The built-in COCO keypoint and LVIS layouts (exact ground truth, flip map and visibility through Detectron2's
loader and flip, LVIS's long tail and per-image lists) and the suite's two evaluators, compared with
pycocotools' keypoint COCOeval and the lvis package's LVISEval run here on the same predictions."""
from __future__ import annotations

import copy
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from mocobench.data.synthetic import figure
from mocobench.detection import engine
from mocobench.detection.benchmarks import BENCHMARKS
from mocobench.detection.config import build_config
from mocobench.detection.lvis_eval import numpy_float_alias


def _kp_json(layout, split):
    return json.loads((layout.coco_kp / "annotations" / f"person_keypoints_{split}.json").read_text())


def _lvis_json(layout, split):
    return json.loads((layout.lvis / f"lvis_v0.5_{split}.json").read_text())


def test_keypoint_ground_truth_is_exact(synthetic_layout):
    """Box, area and mask agree; v = 2 lies on the figure's visible pixels, v = 1 inside the image off them
    (covered by a figure in front), v = 0 outside the image at (0, 0); num_keypoints counts v > 0."""
    flags = []
    for split in ("train", "val"):
        doc = _kp_json(synthetic_layout, split)
        [cat] = doc["categories"]
        assert cat["keypoints"] == list(figure.KEYPOINT_NAMES) and len(cat["keypoints"]) == 17
        images = {im["id"]: im for im in doc["images"]}
        for a in doc["annotations"]:
            im = images[a["image_id"]]
            mask = mask_util.decode(a["segmentation"]).astype(bool)
            ys, xs = np.nonzero(mask)
            assert a["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            assert a["area"] == mask.sum() and a["iscrowd"] == 0
            kps = np.asarray(a["keypoints"]).reshape(17, 3)
            assert a["num_keypoints"] == int((kps[:, 2] > 0).sum())
            for x, y, v in kps:
                px, py = int(round(x)), int(round(y))
                inside = 0 <= px < im["width"] and 0 <= py < im["height"]
                if v == 0:
                    assert (x, y) == (0, 0)  # COCO: an unlabelled keypoint has no position
                else:
                    assert inside and mask[py, px] == (v == 2)
                flags.append(int(v))
    assert {1, 2} <= set(flags)  # the tiny data holds covered keypoints too


def test_flip_map_and_visibility_round_trip_through_detectron2(synthetic_layout):
    """The writer's keypoints come out of Detectron2's loader unchanged (+0.5: pixel indices -> coordinates),
    and its horizontal flip, driven by the registered flip map, puts each left keypoint where the right one
    was mirrored, with that one's visibility."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data import detection_utils as utils
    from detectron2.data import transforms as T

    name = "synth_keypoints_coco_train"
    meta = MetadataCatalog.get(name)
    names = list(meta.keypoint_names)
    twin = {n: n.replace("left_", "right_") if n.startswith("left_") else n.replace("right_", "left_") for n in names}
    assert {tuple(p) for p in meta.keypoint_flip_map} == {(n, twin[n]) for n in names if n.startswith("left_")}
    raw: dict[int, list] = {}
    for a in _kp_json(synthetic_layout, "train")["annotations"]:  # the writer's order within an image
        raw.setdefault(a["image_id"], []).append(a)
    dicts = DatasetCatalog.get(name)
    assert [len(d["annotations"]) for d in dicts] == [len(raw.get(d["image_id"], [])) for d in dicts]
    hflip = utils.create_keypoint_hflip_indices([name])
    checked = 0
    for d in dicts:
        w, h = d["width"], d["height"]
        for a, written in zip(d["annotations"], raw.get(d["image_id"], [])):
            src = np.asarray(written["keypoints"], float).reshape(17, 3)
            got = np.asarray(a["keypoints"], float).reshape(17, 3)
            assert np.array_equal(got[:, 2], src[:, 2]) and np.allclose(got[:, :2], src[:, :2] + 0.5)
            flipped = utils.transform_instance_annotations(copy.deepcopy(a), T.TransformList([T.HFlipTransform(w)]),
                                                           (h, w), keypoint_hflip_indices=hflip)["keypoints"]
            for i, n in enumerate(names):
                j = names.index(twin[n])
                assert flipped[i, 2] == got[j, 2], (n, twin[n])
                if got[j, 2] > 0:
                    assert flipped[i, 0] == pytest.approx(w - got[j, 0]) and flipped[i, 1] == pytest.approx(got[j, 1])
                    checked += 1
    assert checked > 50


def test_lvis_layout_long_tail_frequencies_and_image_lists(synthetic_layout):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    params = synthetic_layout.params
    train = _lvis_json(synthetic_layout, "train")
    cats = train["categories"]
    assert [c["id"] for c in cats] == list(range(1, params["lvis_categories"] + 1))
    assert cats == _lvis_json(synthetic_layout, "val")["categories"]  # one category list for both splits
    images = {c["id"]: set() for c in cats}
    for a in train["annotations"]:
        images[a["category_id"]].add(a["image_id"])
    r_max, c_max = params["lvis_frequency"]
    for c in cats:  # LVIS's rule, counted here from the train annotations
        n = len(images[c["id"]])
        assert c["image_count"] == n and c["frequency"] == ("r" if n <= r_max else "c" if n <= c_max else "f")
    assert {c["frequency"] for c in cats} == {"r", "c", "f"}
    counts = [len(images[c["id"]]) for c in cats]
    assert counts[0] == max(counts) and sum(counts[:3]) > sum(counts[-3:])  # long-tailed: the first are frequent
    for split in ("train", "val"):
        doc = _lvis_json(synthetic_layout, split)
        present = {im["id"]: set() for im in doc["images"]}
        for a in doc["annotations"]:
            present[a["image_id"]].add(a["category_id"])
            assert all(len(p) >= 6 and len(p) % 2 == 0 for p in a["segmentation"]) and a["segmentation"]
        for im in doc["images"]:
            assert not set(im["neg_category_ids"]) & present[im["id"]]
            assert set(im["not_exhaustive_category_ids"]) <= present[im["id"]]
            assert im["coco_url"].split("/")[-2] == f"{split}2017"
        dicts = DatasetCatalog.get(f"synth_lvis_v0.5_{split}")  # Detectron2's LVIS loader
        assert len(dicts) == len(doc["images"])
        assert all((synthetic_layout.lvis / f"{split}2017" / d["file_name"].split("/")[-1]).is_file() for d in dicts)
        assert sorted(a["category_id"] + 1 for d in dicts for a in d["annotations"]) == sorted(
            a["category_id"] for a in doc["annotations"])
        assert MetadataCatalog.get(f"synth_lvis_v0.5_{split}").evaluator_type == "lvis"


def _predictions(rng, d, gt, jitter):
    """Keypoint predictions near the ground truth: a jittered copy of each figure, and one false figure."""
    from detectron2.structures import Boxes, Instances

    boxes, kps, scores = [], [], []
    for a in gt:
        x, y, w, h = a["bbox"]
        k = np.asarray(a["keypoints"], np.float32).reshape(17, 3).copy()
        k[:, :2] += rng.normal(0, jitter * max(w, h), (17, 2))
        k[:, 2] = rng.uniform(0.1, 1.0, 17)
        boxes.append([x, y, x + w, y + h])
        kps.append(k)
        scores.append(rng.uniform(0.3, 1.0))
    boxes.append([5, 5, 40, 60])
    kps.append(np.concatenate([rng.uniform(5, 40, (17, 2)), rng.uniform(0.1, 1, (17, 1))], 1).astype(np.float32))
    scores.append(rng.uniform(0.3, 1.0))
    inst = Instances((d["height"], d["width"]))
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.zeros(len(boxes), dtype=torch.int64)
    inst.pred_keypoints = torch.as_tensor(np.stack(kps))
    return inst


def test_keypoint_evaluator_equals_pycocotools_keypoint_eval(synthetic_layout, tmp_path):
    """The benchmark's evaluator (COCOEvaluator with the config's OKS sigmas) and pycocotools' COCOeval with
    iouType='keypoints', run here, give the same APkp, AP50kp, AP75kp on the same predictions."""
    from detectron2.data import DatasetCatalog
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval, Params

    cfg = build_config(BENCHMARKS["coco-kp-fpn-2x"], weights=None, synthetic=True)
    assert list(cfg.TEST.KEYPOINT_OKS_SIGMAS) == list(figure.OKS_SIGMAS)
    assert np.allclose(Params(iouType="keypoints").kpt_oks_sigmas, figure.OKS_SIGMAS)  # COCO's own sigmas
    name = cfg.DATASETS.TEST[0]
    gt_file = synthetic_layout.coco_kp / "annotations" / "person_keypoints_val.json"
    raw = json.loads(gt_file.read_text())
    by_image = {im["id"]: [a for a in raw["annotations"] if a["image_id"] == im["id"]] for im in raw["images"]}
    evaluator = engine.build_evaluator(cfg, name, str(tmp_path))
    evaluator.reset()
    rng = np.random.default_rng(0)
    results = []  # the same predictions in COCO's result format, written here
    for d in DatasetCatalog.get(name):
        inst = _predictions(rng, d, by_image[d["image_id"]], jitter=0.03)
        for box, score, k in zip(inst.pred_boxes.tensor.tolist(), inst.scores.tolist(), inst.pred_keypoints.numpy()):
            k = k.copy()
            k[:, :2] -= 0.5  # Detectron2's coordinates -> COCO's pixel indices
            results.append({"image_id": d["image_id"], "category_id": 1, "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                            "keypoints": k.reshape(-1).tolist()})
        evaluator.process([d], [{"instances": inst}])
    ours = evaluator.evaluate()["keypoints"]
    gt = COCO(str(gt_file))
    ev = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    ap, ap50, ap75 = (100 * ev.stats[i] for i in range(3))
    assert 5 < ap < 95  # neither trivial nor empty
    assert (ours["AP"], ours["AP50"], ours["AP75"]) == pytest.approx((ap, ap50, ap75), abs=1e-9)


def test_lvis_evaluator_equals_the_lvis_package(synthetic_layout, tmp_path):
    """The benchmark's LVIS evaluator and the lvis package's LVISEval, run here, give the same APmk, AP50mk,
    AP75mk on the same predictions (right and wrong categories, spoilt masks, detections of an image's
    negative and not-exhaustive categories); numpy's float alias exists only during the evaluation."""
    from detectron2.data import DatasetCatalog
    from detectron2.structures import Boxes, Instances
    from lvis import LVIS, LVISEval, LVISResults

    cfg = build_config(BENCHMARKS["lvis-mask-fpn-2x"], weights=None, synthetic=True)
    assert cfg.TEST.DETECTIONS_PER_IMAGE == 50 and cfg.DATALOADER.SAMPLER_TRAIN == "RepeatFactorTrainingSampler"
    name = cfg.DATASETS.TEST[0]
    gt_file = synthetic_layout.lvis / "lvis_v0.5_val.json"
    raw = json.loads(gt_file.read_text())
    images = {im["id"]: im for im in raw["images"]}
    k = synthetic_layout.params["lvis_categories"]
    evaluator = engine.build_evaluator(cfg, name, str(tmp_path))
    evaluator.reset()
    rng = np.random.default_rng(1)
    results = []
    for d in DatasetCatalog.get(name):
        h, w = d["height"], d["width"]
        masks, classes = [], []
        for a in d["annotations"]:
            m = mask_util.decode(mask_util.merge(mask_util.frPyObjects(a["segmentation"], h, w))).astype(bool)
            if rng.random() < 0.3:  # spoil: keep the left half
                m &= np.arange(w)[None] < np.nonzero(m)[1].mean()
            masks.append(m)
            classes.append(a["category_id"] if rng.random() < 0.8 else int(rng.integers(k)))
        im = images[d["image_id"]]
        for c in im["neg_category_ids"] + im["not_exhaustive_category_ids"]:  # scored / ignored by LVIS's rules
            masks.append(np.zeros((h, w), bool))
            masks[-1][10:40, 10:50] = True
            classes.append(c - 1)
        if not masks:
            continue
        scores = rng.uniform(0.05, 1.0, len(masks))
        inst = Instances((h, w))
        inst.pred_masks = torch.as_tensor(np.stack(masks))
        inst.pred_boxes = Boxes(torch.tensor([[0, 0, w, h]] * len(masks), dtype=torch.float32))  # segm AP ignores them
        inst.scores = torch.as_tensor(scores, dtype=torch.float32)
        inst.pred_classes = torch.as_tensor(classes, dtype=torch.int64)
        evaluator.process([d], [{"instances": inst}])
        for m, c, s in zip(masks, classes, scores):
            rle = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            results.append({"image_id": d["image_id"], "category_id": c + 1, "segmentation": rle, "score": float(s)})
    ours = evaluator.evaluate()["segm"]
    assert not hasattr(np, "float")  # the alias is gone again
    gt = LVIS(str(gt_file))
    with numpy_float_alias():
        ev = LVISEval(gt, LVISResults(gt, results, max_dets=cfg.TEST.DETECTIONS_PER_IMAGE), "segm")
        ev.run()
    theirs = {m: 100 * ev.get_results()[m] for m in ("AP", "AP50", "AP75")}
    assert 5 < theirs["AP"] < 95
    assert {m: ours[m] for m in theirs} == pytest.approx(theirs, abs=1e-9)
