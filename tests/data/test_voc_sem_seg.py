"""The VOC semantic segmentation layout: the built-in data's label PNGs agree with the exact scene masks,
load through the registered names, and score 100 mIoU as their own prediction; real data laid out as
docs/benchmarks.md says is found, and missing or wrong parts are named."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mocobench.data.datasets import DatasetLayoutError, load_voc_sem_seg, real_dataset_available, real_dataset_files
from mocobench.data.synthetic import CATEGORIES
from mocobench.data.synthetic.scene import generate_scene
from mocobench.data.synthetic.streams import image_rng


def test_labels_are_the_scene_masks(synthetic_layout):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    for split, mode in (("train_aug", "L"), ("val", "P")):
        name = f"synth_voc_2012_sem_seg_{split}"
        dicts = DatasetCatalog.get(name)
        assert len(dicts) == synthetic_layout.params["counts"]["voc2012_seg"][split]
        assert MetadataCatalog.get(name).stuff_classes == ["background", *synthetic_layout.classes]
        for index, d in enumerate(dicts):
            label = Image.open(d["sem_seg_file_name"])
            assert label.mode == mode
            labels = np.asarray(label)
            scene = generate_scene(image_rng(synthetic_layout.seed, "voc2012_seg", split, index),
                                   *synthetic_layout.params["detection_size"], synthetic_layout.params)
            expected = np.zeros(labels.shape, np.int64)
            for inst in scene.instances:  # independent of the writer: paint the masks bottom first
                expected[inst.mask] = 255 if inst.crowd else 1 + synthetic_layout.classes.index(
                    CATEGORIES[inst.category])
            assert np.array_equal(labels, expected)
            assert np.asarray(Image.open(d["file_name"])).shape[:2] == labels.shape
    present = {v for d in DatasetCatalog.get("synth_voc_2012_sem_seg_train_aug")
               for v in np.unique(np.asarray(Image.open(d["sem_seg_file_name"])))}
    assert 0 in present and len(present - {0, 255}) >= 3


def test_sem_seg_evaluator_scores_ground_truth_100(synthetic_layout):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import SemSegEvaluator

    from mocobench.data.datasets import read_label_png

    name = "synth_voc_2012_sem_seg_val"
    k = len(MetadataCatalog.get(name).stuff_classes)
    ev = SemSegEvaluator(name, distributed=False, output_dir=None, sem_seg_loading_fn=read_label_png)
    ev.reset()
    for d in DatasetCatalog.get(name):
        gt = torch.as_tensor(read_label_png(d["sem_seg_file_name"]))
        scores = torch.nn.functional.one_hot(gt.clamp(max=k - 1), k).permute(2, 0, 1).float()
        ev.process([d], [{"sem_seg": scores}])
    assert ev.evaluate()["sem_seg"]["mIoU"] == pytest.approx(100)


def _real_voc(root, *, label_mode="L", drop=None):
    d = root / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClassAug", "SegmentationClass", "ImageSets/Segmentation"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for split, ids, folder in (("train_aug", ["2008_000001", "2008_000002"], "SegmentationClassAug"),
                               ("val", ["2007_000033"], "SegmentationClass")):
        (d / "ImageSets/Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for i in ids:
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "JPEGImages" / f"{i}.jpg")
            lab = Image.fromarray(np.zeros((8, 8), np.uint8))
            (lab.convert("P") if (label_mode == "P" and split == "train_aug") else lab).save(d / folder / f"{i}.png")
    if drop:
        (d / drop).unlink()
    return d


def test_real_layout_found_and_errors_name_the_missing_part(tmp_path):
    d = _real_voc(tmp_path)
    assert real_dataset_available("voc_2012_sem_seg_train_aug", tmp_path)
    assert real_dataset_available("voc_2012_sem_seg_val", tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in real_dataset_files("voc_2012_sem_seg_train_aug", tmp_path)] \
        == ["VOC2012/ImageSets/Segmentation/train_aug.txt", "VOC2012/JPEGImages", "VOC2012/SegmentationClassAug"]
    assert len(load_voc_sem_seg(d, "train_aug")) == 2
    (d / "SegmentationClassAug/2008_000002.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"1 of 2 label PNGs .*2008_000002.png"):
        load_voc_sem_seg(d, "train_aug")
    (d / "ImageSets/Segmentation/val.txt").unlink()
    assert not real_dataset_available("voc_2012_sem_seg_val", tmp_path)
    with pytest.raises(DatasetLayoutError, match="val.txt is missing"):
        load_voc_sem_seg(d, "val")


def test_palette_training_labels_are_refused(tmp_path):
    """detectron2's DatasetMapper reads training labels with convert('L'): palette indices would become grey levels."""
    d = _real_voc(tmp_path, label_mode="P")
    with pytest.raises(DatasetLayoutError, match="'P' PNG.*SegmentationClassAug"):
        load_voc_sem_seg(d, "train_aug")
    assert len(load_voc_sem_seg(d, "val")) == 1  # the devkit's palette PNGs are fine for evaluation


def test_half_present_real_data_is_an_error_not_a_silent_demo(tmp_path, monkeypatch):
    from mocobench.runner import RunnerError
    from mocobench.runner.benchmarks import resolve_benchmark
    from mocobench.runner.plan import data_mode

    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    bench = resolve_benchmark("voc-seg")
    assert data_mode(bench, "auto") is True  # nothing there: the built-in data
    with pytest.raises(RunnerError, match="--data real.*voc_2012_sem_seg_train_aug"):
        data_mode(bench, "real")
    _real_voc(tmp_path)
    assert data_mode(bench, "auto") is False
    (tmp_path / "VOC2012/ImageSets/Segmentation/val.txt").unlink()
    with pytest.raises(RunnerError, match=r"but not all.*voc_2012_sem_seg_val.*val\.txt"):
        data_mode(bench, "auto")
