"""The synthetic layouts read back by detectron2's own loaders; real-data discovery."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from mocobench.data.datasets import real_dataset_available, register_synthetic, synthetic_names
from mocobench.data.synthetic.scene import generate_scene
from mocobench.data.synthetic.streams import image_rng


def test_names_cannot_collide_with_builtin_ones(synthetic_layout):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = synthetic_names()
    # VOC, COCO, Cityscapes, VOC segmentation, COCO keypoints, LVIS v0.5
    assert len(names) == 15 and all(n.startswith("synth_") for n in names)
    assert {"voc_2007_trainval", "coco_2017_train", "cityscapes_fine_instance_seg_train", "keypoints_coco_2017_train",
            "lvis_v0.5_train"} <= set(DatasetCatalog.list())
    assert register_synthetic(synthetic_layout) == names  # idempotent
    other = dataclasses.replace(synthetic_layout, root=synthetic_layout.root.parent / "elsewhere")
    with pytest.raises(ValueError, match="already registered"):
        register_synthetic(other)
    assert MetadataCatalog.get("synth_voc_2007_test").dirname == str(synthetic_layout.voc2007)


def test_metadata_matches_detectron2_builtin_fields(synthetic_layout):
    from detectron2.data import MetadataCatalog

    voc = MetadataCatalog.get("synth_voc_2007_test")
    assert (voc.evaluator_type, voc.year, voc.split) == ("pascal_voc", 2007, "test")
    assert voc.thing_classes == synthetic_layout.classes
    assert MetadataCatalog.get("synth_voc_2012_trainval").year == 2012
    coco = MetadataCatalog.get("synth_coco_train")
    assert coco.evaluator_type == "coco" and coco.thing_classes == synthetic_layout.classes
    for task, etype in (("instance_seg", "cityscapes_instance"), ("sem_seg", "cityscapes_sem_seg")):
        ours = MetadataCatalog.get(f"synth_cityscapes_fine_{task}_val")
        builtin = MetadataCatalog.get(f"cityscapes_fine_{task}_val")
        assert ours.evaluator_type == builtin.evaluator_type == etype
        assert ours.thing_classes == builtin.thing_classes and ours.stuff_classes == builtin.stuff_classes
    assert MetadataCatalog.get("synth_cityscapes_fine_sem_seg_val").ignore_label == 255


def test_voc_loader_boxes_are_the_exact_mask_boxes(synthetic_layout):
    from detectron2.data import DatasetCatalog

    layout = synthetic_layout
    for name, year, split in (("synth_voc_2007_trainval", "voc2007", "trainval"),
                              ("synth_voc_2012_trainval", "voc2012", "trainval")):
        dicts = DatasetCatalog.get(name)
        assert len(dicts) == layout.params["counts"][year][split]
        for index, d in enumerate(dicts):
            w, h = layout.params["detection_size"]
            scene = generate_scene(image_rng(layout.seed, year, split, index), w, h, layout.params)
            assert (d["width"], d["height"]) == (w, h)
            got = [a["bbox"] for a in d["annotations"]]
            assert got == [list(map(float, inst.box())) for inst in scene.instances]
            assert [a["category_id"] for a in d["annotations"]] == [i.category for i in scene.instances]


def test_coco_loader_and_train_loader_give_masks(synthetic_layout):
    from detectron2.config import get_cfg
    from detectron2.data import DatasetCatalog, build_detection_train_loader

    dicts = DatasetCatalog.get("synth_coco_train")
    assert len(dicts) == synthetic_layout.params["counts"]["coco"]["train"]
    anns = [a for d in dicts for a in d["annotations"]]
    assert any(a["iscrowd"] for a in anns) and all(0 <= a["category_id"] < 10 for a in anns)
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = ("synth_coco_train",)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MIN_SIZE_TRAIN = (96,)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    batch = next(iter(build_detection_train_loader(cfg)))
    assert len(batch) == 2
    for item in batch:
        inst = item["instances"]
        assert len(inst) > 0 and inst.gt_masks.polygons and item["image"].shape[0] == 3


def test_cityscapes_json_loader_reproduces_the_png_masks(synthetic_layout):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    dicts = DatasetCatalog.get("synth_cityscapes_fine_instance_seg_val")
    assert len(dicts) == synthetic_layout.params["counts"]["cityscapes"]["val"]
    classes = MetadataCatalog.get("synth_cityscapes_fine_instance_seg_val").thing_classes
    from cityscapesscripts.helpers.labels import name2label

    checked = 0
    for d in dicts:
        gt = d["file_name"].replace("leftImg8bit", "gtFine", 1).replace("_leftImg8bit.png", "_gtFine_instanceIds.png")
        ids = np.asarray(Image.open(gt)).astype(np.int64)
        for a in d["annotations"]:
            if a["iscrowd"]:
                continue
            lid = name2label[classes[a["category_id"]]].id
            m = mask_util.decode(mask_util.merge(mask_util.frPyObjects(a["segmentation"], d["height"], d["width"])))
            values, counts = np.unique(ids[m.astype(bool)], return_counts=True)
            best = values[np.argmax(counts)]
            assert best // 1000 == lid
            png = ids == best
            assert (png & m.astype(bool)).sum() / (png | m.astype(bool)).sum() > 0.85
            checked += 1
    assert checked >= 3
    sem = DatasetCatalog.get("synth_cityscapes_fine_sem_seg_val")
    assert all(Image.open(s["sem_seg_file_name"]).size == (s["width"], s["height"]) for s in sem)


def test_real_dataset_available_checks_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert not real_dataset_available("voc_2007_trainval")
    voc = tmp_path / "VOC2007"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "Annotations").mkdir()
    assert not real_dataset_available("voc_2007_trainval"), "JPEGImages is missing"
    (voc / "JPEGImages").mkdir()
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n")
    assert real_dataset_available("voc_2007_trainval") and not real_dataset_available("voc_2007_test")
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").write_text(json.dumps({}))
    assert not real_dataset_available("coco_2017_val")
    (tmp_path / "coco" / "val2017").mkdir()
    assert real_dataset_available("coco_2017_val") and not real_dataset_available("coco_2017_train")
    cs = tmp_path / "cityscapes"
    (cs / "leftImg8bit" / "val" / "x").mkdir(parents=True)
    (cs / "gtFine" / "val" / "x").mkdir(parents=True)
    (cs / "leftImg8bit" / "val" / "x" / "x_000000_000019_leftImg8bit.png").write_bytes(b"")
    (cs / "gtFine" / "val" / "x" / "x_000000_000019_gtFine_polygons.json").write_text("{}")
    assert real_dataset_available("cityscapes_fine_instance_seg_val")
    assert not real_dataset_available("cityscapes_fine_sem_seg_val"), "labelTrainIds not prepared"
    assert not real_dataset_available("voc_2007_trainval", root=tmp_path / "nowhere")
    with pytest.raises(KeyError, match="no file check"):
        real_dataset_available("imagenet_train")
