"""Cityscapes layout: leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and, next to each image in
gtFine/<split>/<city>/, <name>_gtFine_{labelIds,instanceIds,labelTrainIds}.png and _polygons.json.

Scenes are street-like (sky, buildings, vegetation, road, sidewalk, poles, signs as labelled stuff)
with objects of the first 8 categories standing for Cityscapes' 8 instance classes
(shapes.CITYSCAPES_CATEGORY_TO_CLASS). Label values follow cityscapesscripts' label table:
instanceIds = label id * 1000 + k for single instances, the bare label id for stuff and crowd
("<class>group" polygons). The polygons JSON lists every drawn polygon bottom first, the way
Cityscapes' own tools rasterise it, so detectron2's JSON loader reproduces the PNG masks.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from cityscapesscripts.helpers.labels import labels as cs_labels
from cityscapesscripts.helpers.labels import name2label

from mocobench.common.atomic import write_text

from . import shapes
from .scene import generate_scene
from .streams import image_rng, save_png

LAYOUT = "cityscapes"
CITIES = {"train": ["alpha", "bravo"], "val": ["charlie"], "test": ["delta"]}
_TRAIN_ID_LUT = np.full(256, 255, np.uint8)
for _label in cs_labels:
    if 0 <= _label.id < 256 and 0 <= _label.trainId < 255:
        _TRAIN_ID_LUT[_label.id] = _label.trainId


def base_name(split: str, index: int) -> tuple[str, str]:
    cities = CITIES.get(split, [split])
    city = cities[index % len(cities)]
    return city, f"{city}_{index:06d}_000019"


def write_item(layout: str, root: Path, params: dict[str, Any], seed: int, task: tuple[str, int]) -> None:
    split, index = task
    w, h = params["cityscapes_size"]
    scene = generate_scene(image_rng(seed, LAYOUT, split, index), w, h, params, kind="street")
    city, name = base_name(split, index)
    label_ids = np.zeros((h, w), np.uint8)
    stuff_ids = np.array([name2label[r.label].id for r in scene.stuff], np.uint8)
    label_ids[:] = stuff_ids[scene.stuff_map]
    instance_ids = label_ids.astype(np.int32)
    objects = [{"label": r.label, "polygon": r.polygon.tolist()} for r in scene.stuff]
    per_class: dict[int, int] = {}
    for inst in scene.instances:
        cls = shapes.CITYSCAPES_CATEGORY_TO_CLASS[shapes.CATEGORIES[inst.category]]
        lid = name2label[cls].id
        label_ids[inst.mask] = lid
        if inst.crowd:
            instance_ids[inst.mask] = lid
        else:
            instance_ids[inst.mask] = lid * 1000 + per_class.get(lid, 0)
            per_class[lid] = per_class.get(lid, 0) + 1
        objects.append({"label": cls + "group" if inst.crowd else cls, "polygon": inst.polygon.tolist()})
    image_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    save_png(image_dir / f"{name}_leftImg8bit.png", scene.image)
    save_png(gt_dir / f"{name}_gtFine_labelIds.png", label_ids)
    save_png(gt_dir / f"{name}_gtFine_labelTrainIds.png", _TRAIN_ID_LUT[label_ids])
    # 16-bit like the real instanceIds files (max id 33999 fits)
    save_png(gt_dir / f"{name}_gtFine_instanceIds.png", instance_ids.astype(np.uint16))
    doc = {"imgHeight": h, "imgWidth": w, "objects": objects}
    write_text(gt_dir / f"{name}_gtFine_polygons.json", json.dumps(doc), overwrite=False, durable=False)


def finish(layout: str, root: Path, params: dict[str, Any], records: list[Any]) -> None:
    pass
