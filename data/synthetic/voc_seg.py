"""PASCAL VOC semantic segmentation layout, inside VOCdevkit/VOC2012 next to the detection files:
JPEGImages/<id>.jpg, ImageSets/Segmentation/{train_aug,val}.txt, and one label PNG per image:

- train_aug (the SBD-augmented training set of the segmentation papers): SegmentationClassAug/<id>.png,
  single-channel ("L") class indices, as DeepLab's SBD conversion ships them;
- val: SegmentationClass/<id>.png, palette ("P") PNGs whose pixel values are the class indices, as
  the VOC2012 devkit ships them.

Index 0 is background, 1..C the preset's `categories` in order, 255 "void" (not scored): crowd-cluster
members, like VOC's hard-to-label pixels. Ids are 2012_1NNNNN so they never meet the detection ids
(2012_0NNNNN) in the shared JPEGImages folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mocobench.common.atomic import atomic_write

from . import shapes
from .scene import generate_scene
from .streams import image_rng, save_jpeg, write_split_lists

LAYOUT = "voc2012_seg"
VOID = 255
LABEL_DIRS = {"train_aug": "SegmentationClassAug", "val": "SegmentationClass"}
_PALETTE_SEED = 2012


def palette() -> list[int]:
    """A fixed 256-colour palette (black background, white void) for the "P" label PNGs."""
    colours = np.random.default_rng(_PALETTE_SEED).integers(40, 256, (256, 3))
    colours[0], colours[VOID] = 0, 255
    return colours.astype(np.uint8).ravel().tolist()


def file_id(split: str, index: int, params: dict[str, Any]) -> str:
    offset = 0
    for name, n in params["counts"][LAYOUT].items():
        if name == split:
            break
        offset += n
    return f"2012_{100000 + offset + index + 1:06d}"


def label_map(scene, categories: list[str]) -> np.ndarray:
    """(H, W) uint8 class indices: instances painted bottom first over background 0, crowds void."""
    h, w = scene.image.shape[:2]
    labels = np.zeros((h, w), np.uint8)
    for inst in scene.instances:
        labels[inst.mask] = VOID if inst.crowd else categories.index(shapes.CATEGORIES[inst.category]) + 1
    return labels


def write_item(layout: str, root: Path, params: dict[str, Any], seed: int, task: tuple[str, int]) -> tuple[str, str]:
    split, index = task
    if split not in LABEL_DIRS:
        raise ValueError(f"counts.{LAYOUT} has split {split!r}; the VOC segmentation layout has {list(LABEL_DIRS)}")
    w, h = params["detection_size"]
    scene = generate_scene(image_rng(seed, layout, split, index), w, h, params, kind="objects")
    fid = file_id(split, index, params)
    save_jpeg(root / "JPEGImages" / f"{fid}.jpg", scene.image, params["jpeg_quality"])
    labels = label_map(scene, list(params["categories"]))
    if split == "val":  # palette PNG: pixel values are the indices, the palette only colours them
        image = Image.frombytes("P", (w, h), labels.tobytes())
        image.putpalette(palette())
    else:
        image = Image.fromarray(labels)
    with atomic_write(root / LABEL_DIRS[split] / f"{fid}.png", overwrite=False, durable=False) as f:
        image.save(f, format="PNG", compress_level=1)
    return split, fid


def finish(layout: str, root: Path, params: dict[str, Any], records: list[tuple[str, str]]) -> None:
    write_split_lists(root / "ImageSets" / "Segmentation", params["counts"][layout], records)
