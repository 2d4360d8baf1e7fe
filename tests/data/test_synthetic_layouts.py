"""The written layouts: caching, same seed same bytes, annotations that agree with the exact masks."""
from __future__ import annotations

import hashlib
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from mocobench.data.synthetic import CATEGORIES, ensure_synthetic
from mocobench.data.synthetic.cityscapes import base_name
from mocobench.data.synthetic.scene import generate_scene
from mocobench.data.synthetic.streams import image_rng

ONE_EACH = {"counts": {"imagefolder": {"train": 2, "val": 1}, "voc2007": {"trainval": 1, "test": 1},
                       "voc2012": {"trainval": 1}, "coco": {"train": 1, "val": 1},
                       "cityscapes": {"train": 1, "val": 1}}}


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "synthetic.json"}


def regenerate(layout, name, split, index, kind="objects"):
    size = layout.params["cityscapes_size" if kind == "street" else "detection_size"]
    return generate_scene(image_rng(layout.seed, name, split, index), *size, layout.params, kind=kind)


def test_same_seed_same_bytes_and_seed_changes_them(tmp_path):
    a = ensure_synthetic(tmp_path / "a", "tiny", seed=1, overrides=ONE_EACH, progress=False)
    b = ensure_synthetic(tmp_path / "b", "tiny", seed=1, overrides=ONE_EACH, progress=False, workers=2)
    c = ensure_synthetic(tmp_path / "c", "tiny", seed=2, overrides=ONE_EACH, progress=False)
    da, db, dc = tree_digest(a.root), tree_digest(b.root), tree_digest(c.root)
    assert len(da) > 20 and da == db
    assert da.keys() == dc.keys() and all(da[k] != dc[k] for k in da if k.endswith((".jpg", "leftImg8bit.png")))


def test_cache_reuses_finished_sets_and_keys_on_every_parameter(tmp_path):
    a = ensure_synthetic(tmp_path, "tiny", seed=0, overrides=ONE_EACH, progress=False)
    stamp = (a.root / "synthetic.json").stat().st_mtime_ns
    again = ensure_synthetic(tmp_path, "tiny", seed=0, overrides=ONE_EACH, progress=False)
    assert again.root == a.root and (a.root / "synthetic.json").stat().st_mtime_ns == stamp
    other = ensure_synthetic(tmp_path, "tiny", seed=0, overrides={**ONE_EACH, "jpeg_quality": 80}, progress=False)
    assert other.root != a.root
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.root.name, other.root.name]), \
        "temporary folders left behind"


def test_unfinished_folder_and_bad_parameters_fail_clearly(tmp_path):
    a = ensure_synthetic(tmp_path, "tiny", seed=0, overrides=ONE_EACH, progress=False)
    (a.root / "synthetic.json").unlink()  # what an interrupted, non-atomic writer would leave
    with pytest.raises(FileExistsError, match="not a finished synthetic data set"):
        ensure_synthetic(tmp_path, "tiny", seed=0, overrides=ONE_EACH, progress=False)
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        ensure_synthetic(tmp_path, "huge")
    with pytest.raises(ValueError, match="unknown synthetic parameter 'image_sise'"):
        ensure_synthetic(tmp_path, "tiny", overrides={"image_sise": 3})
    with pytest.raises(ValueError, match="counts.coco.val"):
        ensure_synthetic(tmp_path, "tiny", overrides={"counts": {"coco": {"val": 0}}})


def test_voc_xml_boxes_are_the_mask_boxes(synthetic_tiny):
    layout = synthetic_tiny
    ids = (layout.voc2007 / "ImageSets" / "Main" / "test.txt").read_text().split()
    assert len(ids) == layout.params["counts"]["voc2007"]["test"]
    for index, fid in enumerate(ids):
        scene = regenerate(layout, "voc2007", "test", index)
        root = ET.parse(layout.voc2007 / "Annotations" / f"{fid}.xml").getroot()
        objs = root.findall("object")
        assert len(objs) == len(scene.instances)
        for obj, inst in zip(objs, scene.instances):
            bb = [int(obj.find("bndbox").find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")]
            ys, xs = np.nonzero(inst.mask)
            assert bb == [xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1]
            assert obj.find("name").text == CATEGORIES[inst.category]
            assert int(obj.find("difficult").text) == int(inst.crowd)
        encoded = io.BytesIO()
        Image.fromarray(scene.image).save(encoded, format="JPEG", quality=layout.params["jpeg_quality"])
        assert (layout.voc2007 / "JPEGImages" / f"{fid}.jpg").read_bytes() == encoded.getvalue()


def test_coco_annotations_agree_with_masks(synthetic_tiny):
    layout = synthetic_tiny
    doc = json.loads((layout.coco / "annotations" / "instances_val.json").read_text())
    assert [c["name"] for c in doc["categories"]] == layout.classes
    assert len({a["id"] for a in doc["annotations"]}) == len(doc["annotations"])
    crowds = 0
    for index, image in enumerate(doc["images"]):
        scene = regenerate(layout, "coco", "val", index)
        anns = [a for a in doc["annotations"] if a["image_id"] == image["id"]]
        regular = [i for i in scene.instances if not i.crowd]
        assert len([a for a in anns if not a["iscrowd"]]) == len(regular)
        h, w = image["height"], image["width"]
        for ann, inst in zip(anns, regular):
            ys, xs = np.nonzero(inst.mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            assert ann["area"] == inst.mask.sum() and ann["category_id"] == inst.category + 1
            m = mask_util.decode(mask_util.merge(mask_util.frPyObjects(ann["segmentation"], h, w))).astype(bool)
            assert (m & inst.mask).sum() / (m | inst.mask).sum() > 0.8
        for ann in (a for a in anns if a["iscrowd"]):
            crowds += 1
            union = np.any([i.mask for i in scene.instances if i.crowd and i.category + 1 == ann["category_id"]], 0)
            assert np.array_equal(mask_util.decode(ann["segmentation"]).astype(bool), union)
    assert crowds > 0, "tiny preset lost its crowd annotations"


def test_cityscapes_pngs_are_the_exact_masks(synthetic_tiny):
    from cityscapesscripts.helpers.labels import name2label

    from mocobench.data.synthetic.shapes import CITYSCAPES_CATEGORY_TO_CLASS

    layout = synthetic_tiny
    for index in range(layout.params["counts"]["cityscapes"]["val"]):
        scene = regenerate(layout, "cityscapes", "val", index, kind="street")
        city, name = base_name("val", index)
        gt = layout.cityscapes / "gtFine" / "val" / city
        inst_ids = np.asarray(Image.open(gt / f"{name}_gtFine_instanceIds.png")).astype(np.int64)
        label_ids = np.asarray(Image.open(gt / f"{name}_gtFine_labelIds.png"))
        train_ids = np.asarray(Image.open(gt / f"{name}_gtFine_labelTrainIds.png"))
        for inst in scene.instances:
            lid = name2label[CITYSCAPES_CATEGORY_TO_CLASS[CATEGORIES[inst.category]]].id
            values = np.unique(inst_ids[inst.mask])
            assert len(values) == 1 and values[0] // (1000 if not inst.crowd else 1) == lid
            if not inst.crowd:
                assert np.array_equal(inst_ids == values[0], inst.mask)
            assert (label_ids[inst.mask] == lid).all()
        for lid in np.unique(label_ids):
            expected = name2label[[lab.name for lab in name2label.values() if lab.id == lid][0]].trainId
            assert (train_ids[label_ids == lid] == expected).all()
        assert (label_ids > 0).all(), "every pixel carries a label"


def test_imagefolder_reads_back_with_balanced_labels(synthetic_tiny):
    from torchvision.datasets import ImageFolder

    layout = synthetic_tiny
    train = ImageFolder(layout.imagefolder / "train")
    val = ImageFolder(layout.imagefolder / "val")
    assert sorted(train.classes) == sorted(layout.classes) and val.classes == train.classes
    assert len(train) == layout.params["counts"]["imagefolder"]["train"]
    counts = np.bincount([t for _, t in train.samples], minlength=len(train.classes))
    assert counts.max() - counts.min() <= 1
    image, target = val[0]
    size = layout.params["imagefolder_size"]
    assert image.size == (size, size)
    # the label is the main object's category: the regenerated scene says so
    path = Path(val.samples[0][0])
    index = int(path.stem.rsplit("_", 1)[1])
    scene = generate_scene(image_rng(layout.seed, "imagefolder", "val", index), size, size, layout.params,
                           kind="main", label=index % len(CATEGORIES))
    assert val.classes[target] == path.parent.name == CATEGORIES[scene.instances[-1].category]
