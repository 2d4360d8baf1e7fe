"""LVIS v0.5 layout: <dir>/lvis_v0.5_{train,val}.json and the images in <dir>/{train,val}2017/<id>.jpg.

Many categories with a long-tailed count: category k (k = 0 .. lvis_categories - 1, id k + 1) is the shape
shapes.CATEGORIES[k % 10] painted with the surface pattern scene.PATTERNS[(k // 10) % 6] (scene.Vocabulary),
drawn in proportion to (k + 1) ** -lvis_zipf, so the first categories are frequent and the last rare. Each
category's `frequency` (r / c / f) follows LVIS's rule from the number of train images it appears in, with
the preset's thresholds (`lvis_frequency`: [most images of a rare one, most of a common one]); image_count
and instance_count are counted on train too.

Every drawn instance is annotated (polygons, as LVIS has no RLE; no crowds). Per image, LVIS's two lists:
`neg_category_ids`, categories verified absent (up to `lvis_negatives` drawn from those not in the image),
and `not_exhaustive_category_ids`, with probability `lvis_not_exhaustive` one category of the image (its
instances are still all annotated: the flag only tells the evaluator not to count its unmatched detections).
Images carry a coco_url whose last folder is the split folder, which Detectron2's LVIS loader reads.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mocobench.common.atomic import write_text

from . import shapes
from .coco import _box, _polygons, split_images_and_annotations
from .scene import PATTERNS, Vocabulary, footprint, generate_scene
from .streams import image_rng, save_jpeg

LAYOUT = "lvis"
SPLIT_ID_BASE = {"train": 0, "val": 1_000_000}
MAX_CATEGORIES = len(shapes.CATEGORIES) * len(PATTERNS)
_POPULATION = 400  # draws of the most frequent category in the vocabulary's population


def split_folder(split: str) -> str:
    return f"{split}2017"


def category_names(n: int) -> list[str]:
    return [f"{shapes.CATEGORIES[k % len(shapes.CATEGORIES)]}_{PATTERNS[(k // len(shapes.CATEGORIES)) % len(PATTERNS)]}"
            for k in range(n)]


def vocabulary(params: dict[str, Any]) -> Vocabulary:
    n = params["lvis_categories"]
    if not 2 <= n <= MAX_CATEGORIES:
        raise ValueError(f"lvis_categories = {n}: give 2 to {MAX_CATEGORIES} (shapes x patterns)")
    counts = [max(1, int(round(_POPULATION * (k + 1) ** -float(params["lvis_zipf"])))) for k in range(n)]
    return Vocabulary(shape=tuple(k % len(shapes.CATEGORIES) for k in range(n)),
                      pattern=tuple((k // len(shapes.CATEGORIES)) % len(PATTERNS) for k in range(n)),
                      population=tuple(k for k, c in enumerate(counts) for _ in range(c)))


def frequency(image_count: int, thresholds: list[int]) -> str:
    """LVIS's frequency group: r(are) up to thresholds[0] train images, c(ommon) up to thresholds[1], else f."""
    return "r" if image_count <= thresholds[0] else "c" if image_count <= thresholds[1] else "f"


def write_item(layout: str, root: Path, params: dict[str, Any], seed: int,
               task: tuple[str, int]) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    split, index = task
    w, h = params["detection_size"]
    rng = image_rng(seed, LAYOUT, split, index)
    scene = generate_scene(rng, w, h, {**params, "crowd_prob": 0.0}, kind="objects", vocabulary=vocabulary(params))
    image_id = SPLIT_ID_BASE.get(split, 2_000_000) + index + 1
    file_name = f"{image_id:012d}.jpg"
    folder = split_folder(split)
    save_jpeg(root / folder / file_name, scene.image, params["jpeg_quality"])
    anns = []
    for inst in scene.instances:
        polys = _polygons(inst.visible) or _polygons(footprint(inst.polygon))
        anns.append({"image_id": image_id, "category_id": inst.category + 1, "bbox": _box(inst.mask),
                     "area": float(inst.mask.sum()), "segmentation": polys})
    present = sorted({a["category_id"] for a in anns})
    absent = [c for c in range(1, params["lvis_categories"] + 1) if c not in present]
    n_neg = min(len(absent), int(params["lvis_negatives"]))
    neg = sorted(int(c) for c in rng.choice(absent, size=n_neg, replace=False)) if n_neg else []
    not_exhaustive = [int(rng.choice(present))] if present and rng.random() < params["lvis_not_exhaustive"] else []
    image = {"id": image_id, "file_name": file_name, "width": w, "height": h,
             "coco_url": f"http://synthetic.invalid/{folder}/{file_name}",
             "neg_category_ids": neg, "not_exhaustive_category_ids": not_exhaustive}
    return split, image, anns


def categories(params: dict[str, Any], train_records: list[Any]) -> list[dict[str, Any]]:
    """The category list with LVIS's fields, counted on the train split's records."""
    n = params["lvis_categories"]
    images = {k: set() for k in range(1, n + 1)}
    instances = dict.fromkeys(range(1, n + 1), 0)
    for _, image, anns in train_records:
        for a in anns:
            images[a["category_id"]].add(image["id"])
            instances[a["category_id"]] += 1
    return [{"id": k, "name": name, "synonyms": [name], "synset": f"{name}.n.01",
             "def": f"a synthetic {name.replace('_', ' ')}", "image_count": len(images[k]),
             "instance_count": instances[k], "frequency": frequency(len(images[k]), params["lvis_frequency"])}
            for k, name in enumerate(category_names(n), start=1)]


def finish(layout: str, root: Path, params: dict[str, Any], records: list[Any]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    cats = categories(params, [r for r in records if r[0] == "train"])
    for split in params["counts"][LAYOUT]:
        images, annotations = split_images_and_annotations(records, split)
        doc = {"info": {"description": "moco-transfer-bench synthetic long-tailed scenes", "version": "0.5"},
               "licenses": [], "images": images, "annotations": annotations, "categories": cats}
        write_text(root / f"lvis_v0.5_{split}.json", json.dumps(doc), overwrite=False, durable=False)
