"""COCO keypoint layout: <dir>/annotations/person_keypoints_{train,val}.json and <dir>/{train,val}/<id>.jpg.

Each image is an objects scene (scene.py: its shapes are unlabelled distractors here) with 1-3 articulated
figures (figure.py) drawn on top, later ones in front. One category, "figure", with COCO's 17 keypoint names
and skeleton. Per figure: the tight box and pixel area of its visible mask, the mask as RLE, and its 17
keypoints as [x, y, v] in pixel-index coordinates (the COCO convention Detectron2's loader expects), with
v = 2 visible, 1 inside the image but covered by a figure in front, 0 outside the image (x = y = 0);
num_keypoints counts v > 0. A figure keeps at least `min_visible_frac` of its pixels visible.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image, ImageDraw

from mocobench.common.atomic import write_text

from . import figure
from .coco import _box, split_images_and_annotations
from .scene import generate_scene, texture
from .streams import image_rng, save_jpeg

LAYOUT = "coco_kp"
CATEGORY = "figure"
SPLIT_ID_BASE = {"train": 0, "val": 1_000_000}
_ATTEMPTS = 12


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _fill(polygons: list[np.ndarray], w: int, h: int) -> np.ndarray:
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    for p in polygons:
        draw.polygon([tuple(v) for v in p.tolist()], fill=1)
    return np.asarray(img).astype(bool)


def draw_figures(rng: np.random.Generator, w: int, h: int, params: dict[str, Any]
                 ) -> list[tuple[figure.Figure, np.ndarray]]:
    """Figures in drawing order (back first), each with its full (unoccluded) mask; every one keeps
    `min_visible_frac` of its pixels and `min_visible_px` pixels visible under the ones in front."""
    lo, hi = params["figures"]
    s_lo, s_hi = params["figure_scale"]
    want = int(rng.integers(lo, hi + 1))
    placed: list[tuple[figure.Figure, np.ndarray]] = []
    for _ in range(_ATTEMPTS):
        if len(placed) == want:
            break
        height = rng.uniform(s_lo, s_hi) * h
        fig = figure.place_figure(rng, (rng.uniform(0.15, 0.85) * w, rng.uniform(0.35, 0.65) * h), height)
        full = _fill(fig.polygons, w, h)
        if full.sum() < params["min_visible_px"]:
            continue
        masks = [m for _, m in placed] + [full]
        ok = True
        for i, m in enumerate(masks):
            visible = m & ~np.logical_or.reduce(masks[i + 1:]) if i + 1 < len(masks) else m
            if visible.sum() < max(params["min_visible_frac"] * m.sum(), params["min_visible_px"]):
                ok = False
                break
        if ok:
            placed.append((fig, full))
    return placed


def keypoint_triplets(fig: figure.Figure, in_front: np.ndarray, w: int, h: int) -> list[float]:
    """[x1, y1, v1, ...]: v 2 visible, 1 covered by `in_front` (the union of the figures drawn later), 0 outside."""
    out: list[float] = []
    for x, y in fig.keypoints:
        px, py = int(round(x)), int(round(y))
        if not (0 <= px < w and 0 <= py < h):
            out += [0.0, 0.0, 0]
        else:
            out += [round(float(x), 2), round(float(y), 2), 1 if in_front[py, px] else 2]
    return out


def write_item(layout: str, root: Path, params: dict[str, Any], seed: int,
               task: tuple[str, int]) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    split, index = task
    w, h = params["detection_size"]
    rng = image_rng(seed, LAYOUT, split, index)
    background = {**params, "crowd_prob": 0.0, "instances": [0, 2]}
    scene = generate_scene(rng, w, h, background, kind="objects")
    figures = draw_figures(rng, w, h, params)
    img = scene.image.astype(np.float32)
    for _, full in figures:  # back first: each figure paints over what lies under it
        tex = texture(rng, h, w, params["solid_prob"]).transpose(1, 2, 0)
        img[full] = tex[full]
    img += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(rng.uniform(2, 6))
    image_id = SPLIT_ID_BASE.get(split, 2_000_000) + index + 1
    file_name = f"{image_id:012d}.jpg"
    save_jpeg(root / split / file_name, np.clip(img, 0, 255).astype(np.uint8), params["jpeg_quality"])
    anns = []
    for i, (fig, full) in enumerate(figures):
        in_front = np.zeros((h, w), bool)
        for _, later in figures[i + 1:]:
            in_front |= later
        visible = full & ~in_front
        kps = keypoint_triplets(fig, in_front, w, h)
        anns.append({"image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": _box(visible),
                     "area": float(visible.sum()), "segmentation": _rle(visible), "keypoints": kps,
                     "num_keypoints": int(sum(v > 0 for v in kps[2::3]))})
    return split, {"id": image_id, "file_name": file_name, "width": w, "height": h}, anns


def category() -> dict[str, Any]:
    return {"id": 1, "name": CATEGORY, "supercategory": CATEGORY, "keypoints": list(figure.KEYPOINT_NAMES),
            "skeleton": [list(e) for e in figure.SKELETON]}


def finish(layout: str, root: Path, params: dict[str, Any], records: list[Any]) -> None:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in params["counts"][LAYOUT]:
        images, annotations = split_images_and_annotations(records, split)
        doc = {"info": {"description": "moco-transfer-bench synthetic figures", "version": "1.0"}, "licenses": [],
               "images": images, "annotations": annotations, "categories": [category()]}
        write_text(root / "annotations" / f"person_keypoints_{split}.json", json.dumps(doc), overwrite=False,
                   durable=False)
