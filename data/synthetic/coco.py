"""COCO layout: <dir>/annotations/instances_{train,val}.json and <dir>/{train,val}/<id>.jpg.

Regular instances are polygons (the visible outline, one polygon per visible part) with the tight
box and pixel area of the visible mask; a crowd cluster is one iscrowd=1 annotation whose
segmentation is the compressed RLE of the union of its members' visible pixels. Category ids are
1-based in the order of the preset's `categories`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from shapely.geometry import Polygon

from mocobench.common.atomic import write_text

from . import shapes
from .scene import generate_scene
from .streams import image_rng, save_jpeg

LAYOUT = "coco"
SPLIT_ID_BASE = {"train": 0, "val": 1_000_000}


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _polygons(geometry) -> list[list[float]]:
    parts = getattr(geometry, "geoms", [geometry])
    polys = []
    for part in parts:
        if not isinstance(part, Polygon) or part.area < 1.0:
            continue
        coords = np.asarray(part.exterior.coords)[:-1]
        if len(coords) >= 3:
            polys.append([round(float(v), 2) for v in coords.reshape(-1)])
    return polys


def _box(mask: np.ndarray) -> list[float]:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return [float(xs[0]), float(ys[0]), float(xs[-1] + 1 - xs[0]), float(ys[-1] + 1 - ys[0])]


def write_item(layout: str, root: Path, params: dict[str, Any], seed: int,
               task: tuple[str, int]) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    split, index = task
    w, h = params["detection_size"]
    scene = generate_scene(image_rng(seed, LAYOUT, split, index), w, h, params, kind="objects")
    image_id = SPLIT_ID_BASE.get(split, 2_000_000) + index + 1
    file_name = f"{image_id:012d}.jpg"
    save_jpeg(root / split / file_name, scene.image, params["jpeg_quality"])
    image = {"id": image_id, "file_name": file_name, "width": w, "height": h}
    anns: list[dict[str, Any]] = []
    ids = shapes.category_ids(params["categories"])  # COCO category id = position + 1
    crowd: dict[int, np.ndarray] = {}
    for inst in scene.instances:
        if inst.crowd:
            crowd[inst.category] = crowd.get(inst.category, np.zeros_like(inst.mask)) | inst.mask
            continue
        polys = _polygons(inst.visible)
        anns.append({"image_id": image_id, "category_id": ids.index(inst.category) + 1, "iscrowd": 0,
                     "bbox": _box(inst.mask), "area": float(inst.mask.sum()),
                     "segmentation": polys if polys else _rle(inst.mask)})
    for category, mask in crowd.items():
        anns.append({"image_id": image_id, "category_id": ids.index(category) + 1, "iscrowd": 1,
                     "bbox": _box(mask), "area": float(mask.sum()), "segmentation": _rle(mask)})
    return split, image, anns


def split_images_and_annotations(records: list[Any], split: str) -> tuple[list[dict], list[dict]]:
    """One split's COCO "images" and "annotations" (ids 1, 2, ... in order) from the writers' (split, image,
    annotations) records: shared by the instance, keypoint and LVIS layouts."""
    images, annotations = [], []
    for s, image, anns in records:
        if s == split:
            images.append(image)
            for ann in anns:
                annotations.append({"id": len(annotations) + 1, **ann})
    return images, annotations


def finish(layout: str, root: Path, params: dict[str, Any], records: list[Any]) -> None:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(params["categories"])]
    for split in params["counts"][LAYOUT]:
        images, annotations = split_images_and_annotations(records, split)
        doc = {"info": {"description": "moco-transfer-bench synthetic scenes", "version": "1.0"},
               "licenses": [], "images": images, "annotations": annotations, "categories": categories}
        write_text(root / "annotations" / f"instances_{split}.json", json.dumps(doc), overwrite=False, durable=False)
