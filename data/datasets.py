"""Detectron2 dataset registration: the built-in synthetic data, and finding real data sets.

    names = register_synthetic(layout)        # synth_voc_2007_trainval, synth_coco_train, ...
    real_dataset_available("voc_2007_trainval")  # are the files of detectron2's builtin name there?

Synthetic names start with "synth_" so they never collide with detectron2's builtin names. Each is
registered through detectron2's own loader (register_pascal_voc, register_coco_instances,
load_cityscapes_instances / load_cityscapes_semantic, load_lvis_json) with the metadata fields detectron2's builtin
registration sets for the real data set (thing_classes, evaluator_type, dirname/year/split,
json_file/image_root, image_dir/gt_dir, stuff_classes, ignore_label, keypoint_names/keypoint_flip_map).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
from detectron2.data.datasets.cityscapes import load_cityscapes_instances, load_cityscapes_semantic
from detectron2.data.datasets.lvis import load_lvis_json
from detectron2.data.datasets.pascal_voc import register_pascal_voc
from detectron2.utils.file_io import PathManager
from PIL import Image

from mocobench.data.custom import UserDataset, register_user_dataset
from mocobench.data.synthetic import SyntheticLayout, ensure_synthetic
from mocobench.data.synthetic import figure as synthetic_figure

PREFIX = "synth_"
# Real data set (detectron2's builtin name) -> its twin in the built-in synthetic data.
SYNTHETIC_TWINS = {"voc_2007_trainval": "synth_voc_2007_trainval", "voc_2012_trainval": "synth_voc_2012_trainval",
                   "voc_2007_test": "synth_voc_2007_test", "coco_2017_train": "synth_coco_train",
                   "coco_2017_val": "synth_coco_val",
                   **{f"cityscapes_fine_{t}_{s}": f"synth_cityscapes_fine_{t}_{s}"
                      for t in ("instance_seg", "sem_seg") for s in ("train", "val")},
                   "voc_2012_sem_seg_train_aug": "synth_voc_2012_sem_seg_train_aug",
                   "voc_2012_sem_seg_val": "synth_voc_2012_sem_seg_val",
                   "keypoints_coco_2017_train": "synth_keypoints_coco_train",
                   "keypoints_coco_2017_val": "synth_keypoints_coco_val",
                   "lvis_v0.5_train": "synth_lvis_v0.5_train", "lvis_v0.5_val": "synth_lvis_v0.5_val"}


def synthetic_names() -> list[str]:
    return [f"{PREFIX}voc_2007_trainval", f"{PREFIX}voc_2007_test", f"{PREFIX}voc_2012_trainval",
            f"{PREFIX}coco_train", f"{PREFIX}coco_val",
            f"{PREFIX}cityscapes_fine_instance_seg_train", f"{PREFIX}cityscapes_fine_instance_seg_val",
            f"{PREFIX}cityscapes_fine_sem_seg_train", f"{PREFIX}cityscapes_fine_sem_seg_val",
            f"{PREFIX}voc_2012_sem_seg_train_aug", f"{PREFIX}voc_2012_sem_seg_val",
            f"{PREFIX}keypoints_coco_train", f"{PREFIX}keypoints_coco_val",
            f"{PREFIX}lvis_v0.5_train", f"{PREFIX}lvis_v0.5_val"]


def register_synthetic(layout: SyntheticLayout, replace: bool = False) -> list[str]:
    """Register every synthetic data set of `layout`; returns the names.

    Calling it again for the same layout does nothing. Names registered for another layout raise,
    unless replace=True (then they are pointed at this layout).
    """
    names = synthetic_names()
    tag = str(layout.root)
    registered = [n for n in names if n in DatasetCatalog.list()]
    if registered:
        owners = {MetadataCatalog.get(n).get("synthetic_root", None) for n in registered}
        if owners == {tag} and len(registered) == len(names):
            return names
        if not replace:
            raise ValueError(f"{registered[0]} is already registered for {owners - {tag} or owners}; call "
                             f"register_synthetic(layout, replace=True) to point the synth_* names at {tag}")
        for n in registered:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)

    classes = layout.classes
    for name, year_dir, split, year in (("voc_2007_trainval", layout.voc2007, "trainval", 2007),
                                        ("voc_2007_test", layout.voc2007, "test", 2007),
                                        ("voc_2012_trainval", layout.voc2012, "trainval", 2012)):
        full = PREFIX + name
        register_pascal_voc(full, str(year_dir), split, year, class_names=classes)
        MetadataCatalog.get(full).set(evaluator_type="pascal_voc", synthetic_root=tag)

    for split in ("train", "val"):
        full = f"{PREFIX}coco_{split}"
        meta = {"thing_classes": list(classes),
                "thing_dataset_id_to_contiguous_id": {i + 1: i for i in range(len(classes))},
                "synthetic_root": tag}
        register_coco_instances(full, meta, str(layout.coco / "annotations" / f"instances_{split}.json"),
                                str(layout.coco / split))

    cs_meta = _get_builtin_metadata("cityscapes")
    for split in ("train", "val"):
        image_dir = str(layout.cityscapes / "leftImg8bit" / split)
        gt_dir = str(layout.cityscapes / "gtFine" / split)
        inst = f"{PREFIX}cityscapes_fine_instance_seg_{split}"
        DatasetCatalog.register(inst, lambda x=image_dir, y=gt_dir: load_cityscapes_instances(
            x, y, from_json=True, to_polygons=True))
        MetadataCatalog.get(inst).set(image_dir=image_dir, gt_dir=gt_dir, evaluator_type="cityscapes_instance",
                                      synthetic_root=tag, **cs_meta)
        sem = f"{PREFIX}cityscapes_fine_sem_seg_{split}"
        DatasetCatalog.register(sem, lambda x=image_dir, y=gt_dir: load_cityscapes_semantic(x, y))
        MetadataCatalog.get(sem).set(image_dir=image_dir, gt_dir=gt_dir, evaluator_type="cityscapes_sem_seg",
                                     ignore_label=255, synthetic_root=tag, **cs_meta)
    for split in VOC_SEG_SPLITS:
        register_voc_sem_seg(f"{PREFIX}voc_2012_sem_seg_{split}", layout.voc2012_seg, split, classes,
                             synthetic_root=tag)
    for split in ("train", "val"):
        register_coco_instances(f"{PREFIX}keypoints_coco_{split}", {**keypoint_metadata(), "synthetic_root": tag},
                                str(layout.coco_kp / "annotations" / f"person_keypoints_{split}.json"),
                                str(layout.coco_kp / split))
        register_lvis(f"{PREFIX}lvis_v0.5_{split}", layout.lvis / f"lvis_v0.5_{split}.json", layout.lvis,
                      layout.lvis_classes, synthetic_root=tag)
    return names


def keypoint_metadata() -> dict:
    """Metadata of the keypoint layout's data sets, as Detectron2's builtin COCO person metadata has it: one
    class, the 17 keypoint names and the left/right flip map (read by the train mapper's horizontal flip)."""
    f = synthetic_figure
    return {"thing_classes": ["figure"], "thing_dataset_id_to_contiguous_id": {1: 0},
            "keypoint_names": list(f.KEYPOINT_NAMES), "keypoint_flip_map": [list(p) for p in f.FLIP_MAP],
            "keypoint_connection_rules": [(f.KEYPOINT_NAMES[a - 1], f.KEYPOINT_NAMES[b - 1], (255, 255, 255))
                                          for a, b in f.SKELETON]}


def register_lvis(name: str, json_file: str | os.PathLike, image_root: str | os.PathLike, classes, **meta) -> None:
    """An LVIS-format data set (category ids 1..K in class order; images in image_root/<coco_url's folder>/)
    with the metadata Detectron2's register_lvis_instances sets (evaluator_type "lvis")."""
    root = str(image_root).rstrip("/") + "/"  # load_lvis_json joins image_root and the split folder as strings
    DatasetCatalog.register(name, lambda j=str(json_file), r=root: load_lvis_json(j, r))
    MetadataCatalog.get(name).set(thing_classes=list(classes), json_file=str(json_file), image_root=root,
                                  evaluator_type="lvis", **meta)


def register_builtin(data: dict) -> None:
    """Register the data sets a run uses that Detectron2 does not know, in this process (spawned workers
    start bare). data: {"synthetic": bool, "root": folder, "preset": name, "user": UserDataset.to_dict() or
    absent}; nothing to do for Detectron2's builtin real data."""
    if data.get("synthetic"):
        register_synthetic(ensure_synthetic(data["root"], preset=data["preset"]))
    else:
        register_real_voc_sem_seg()
    if data.get("user"):
        register_user_dataset(UserDataset.from_dict(data["user"]))


# ---------------------------------------------------------------------------------------------
# PASCAL VOC semantic segmentation (detectron2 has no builtin names for it): train_aug and val 2012

# split -> (ids file under ImageSets/Segmentation, label folder, label PNG mode(s) detectron2 reads right)
VOC_SEG_SPLITS = {"train_aug": ("train_aug.txt", "SegmentationClassAug", ("L",)),
                  "val": ("val.txt", "SegmentationClass", ("L", "P"))}


class DatasetLayoutError(FileNotFoundError):
    """A data set's files are missing or not in the layout docs/benchmarks.md documents."""


def load_voc_sem_seg(year_dir: str | os.PathLike, split: str) -> list[dict]:
    """Dataset dicts ({file_name, sem_seg_file_name, image_id}) of a VOC2012 segmentation split.

    Every listed image needs JPEGImages/<id>.jpg and a label PNG of class indices (0 background,
    1-20 the classes, 255 void). Training labels must be single-channel: detectron2's DatasetMapper
    reads them with PIL convert("L"), which turns a palette PNG's indices into grey levels."""
    ids_file, label_dir, modes = VOC_SEG_SPLITS[split]
    d = Path(year_dir)
    ids_path = d / "ImageSets" / "Segmentation" / ids_file
    if not ids_path.is_file():
        raise DatasetLayoutError(f"{ids_path} is missing: the VOC {split} split lists its image ids there "
                                 f"(docs/benchmarks.md, 'Real datasets')")
    ids = [line.split()[0] for line in ids_path.read_text().splitlines() if line.strip()]
    dicts = [{"file_name": str(d / "JPEGImages" / f"{i}.jpg"), "sem_seg_file_name": str(d / label_dir / f"{i}.png"),
              "image_id": i} for i in ids]
    for key, what in (("file_name", "images"), ("sem_seg_file_name", "label PNGs")):
        missing = [x[key] for x in dicts if not os.path.isfile(x[key])]
        if missing:
            raise DatasetLayoutError(f"VOC {split}: {len(missing)} of {len(ids)} {what} listed in {ids_path} are "
                                     f"missing, e.g. {missing[:3]}")
    if not dicts:
        raise DatasetLayoutError(f"{ids_path} lists no image")
    mode = Image.open(dicts[0]["sem_seg_file_name"]).mode
    if mode not in modes:
        raise DatasetLayoutError(f"{dicts[0]['sem_seg_file_name']} is a {mode!r} PNG; {label_dir} for {split} must "
                                 f"hold {' or '.join(modes)} PNGs of class indices (SegmentationClassAug as DeepLab's "
                                 f"SBD conversion writes it)")
    return dicts


def register_voc_sem_seg(name: str, year_dir: str | os.PathLike, split: str, classes, **meta) -> None:
    """Register a VOC2012 segmentation split (stuff_classes = background + classes, void 255)."""
    DatasetCatalog.register(name, lambda d=str(year_dir), s=split: load_voc_sem_seg(d, s))
    MetadataCatalog.get(name).set(stuff_classes=["background", *classes], ignore_label=255, evaluator_type="sem_seg",
                                  dirname=str(year_dir), split=split, **meta)


def register_real_voc_sem_seg() -> list[str]:
    """voc_2012_sem_seg_{train_aug,val} under $DETECTRON2_DATASETS/VOC2012 (registered once per process)."""
    from detectron2.data.datasets.pascal_voc import CLASS_NAMES

    names = []
    for split in VOC_SEG_SPLITS:
        name = f"voc_2012_sem_seg_{split}"
        if name not in DatasetCatalog.list():
            register_voc_sem_seg(name, datasets_root() / "VOC2012", split, CLASS_NAMES)
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# real data sets, where detectron2 expects them: $DETECTRON2_DATASETS (default ./datasets)

_VOC = {f"voc_{y}_{s}": (f"VOC{y}", s) for y in (2007, 2012) for s in ("trainval", "train", "val", "test")
        if not (y == 2012 and s == "test")}
_COCO = {f"coco_{y}_{s}": (f"coco/{s}{y}", f"coco/annotations/instances_{s}{y}.json")
         for y in (2014, 2017) for s in ("train", "val")}
_CITYSCAPES = {f"cityscapes_fine_{task}_{s}": (f"cityscapes/leftImg8bit/{s}", f"cityscapes/gtFine/{s}", task)
               for task in ("instance_seg", "sem_seg") for s in ("train", "val", "test")}
_VOC_SEG = {"voc_2012_sem_seg_train_aug": "train_aug", "voc_2012_sem_seg_val": "val"}
# detectron2's builtin names (data/datasets/builtin.py) -> (image folder, annotation file)
_KEYPOINTS = {f"keypoints_coco_2017_{s}": (f"coco/{s}2017", f"coco/annotations/person_keypoints_{s}2017.json")
              for s in ("train", "val")}
_LVIS = {f"lvis_v0.5_{s}": (f"coco/{s}2017", f"lvis/lvis_v0.5_{s}.json") for s in ("train", "val")}


def datasets_root() -> Path:
    """Where detectron2's builtin data sets live: $DETECTRON2_DATASETS, else ./datasets."""
    return Path(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")))


def real_dataset_files(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The files and folders detectron2's builtin data set `name` needs (the checks behind
    real_dataset_available)."""
    base = Path(root) if root is not None else datasets_root()
    if name in _VOC:
        folder, split = _VOC[name]
        d = base / folder
        return [d / "ImageSets" / "Main" / f"{split}.txt", d / "Annotations", d / "JPEGImages"]
    if name in _COCO:
        image_root, json_file = _COCO[name]
        return [base / json_file, base / image_root]
    if name in _KEYPOINTS or name in _LVIS:
        image_root, json_file = {**_KEYPOINTS, **_LVIS}[name]
        return [base / json_file, base / image_root]
    if name in _CITYSCAPES:
        image_dir, gt_dir, _ = _CITYSCAPES[name]
        return [base / image_dir, base / gt_dir]
    if name in _VOC_SEG:
        ids_file, label_dir, _ = VOC_SEG_SPLITS[_VOC_SEG[name]]
        d = base / "VOC2012"
        return [d / "ImageSets" / "Segmentation" / ids_file, d / "JPEGImages", d / label_dir]
    known = sorted([*_VOC, *_COCO, *_CITYSCAPES, *_VOC_SEG, *_KEYPOINTS, *_LVIS])
    raise KeyError(f"no file check for data set {name!r}; known: {', '.join(known)}")


def real_dataset_available(name: str, root: str | os.PathLike | None = None) -> bool:
    """True when the files of detectron2's builtin data set `name` are present under `root`
    (default $DETECTRON2_DATASETS or ./datasets). Cityscapes semantic segmentation also needs the
    *_labelTrainIds.png files that cityscapesscripts' createTrainIdLabelImgs writes."""
    if not all(p.exists() for p in real_dataset_files(name, root)):
        return False
    if name in _CITYSCAPES:
        image_dir, gt_dir, task = _CITYSCAPES[name]
        base = Path(root) if root is not None else datasets_root()
        pattern = "*/*_gtFine_labelTrainIds.png" if task == "sem_seg" else "*/*_gtFine_polygons.json"
        if next((base / image_dir).glob("*/*_leftImg8bit.png"), None) is None:
            return False
        return next((base / gt_dir).glob(pattern), None) is not None
    return True


def read_label_png(filename: str, dtype=int) -> np.ndarray:
    """Label-map reader for SemSegEvaluator(..., sem_seg_loading_fn=read_label_png).

    detectron2's default reader calls np.array(image, copy=False), which numpy >= 2 refuses
    ("Unable to avoid copy"); this one copies.
    """
    with PathManager.open(filename, "rb") as f:
        return np.asarray(Image.open(f), dtype=dtype).copy()
