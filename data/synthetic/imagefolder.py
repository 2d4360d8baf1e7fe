"""ImageFolder layout (torchvision): <dir>/{train,val}/<class>/<class>_<NNNNN>.jpg.

Each image's label is the category of its main object: the largest one, central and on top, among
`imagefolder_instances` smaller instances (none: object-centric images) over a background with
`imagefolder_clutter` distractors. Classes are the preset's `categories`, balanced (image i of a
split has category i mod #classes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import shapes
from .scene import Scene, generate_scene
from .streams import image_rng, save_jpeg

LAYOUT = "imagefolder"


def image_scene(params: dict[str, Any], seed: int, split: str, index: int) -> Scene:
    """The scene of image `index` of `split`: its label is category index mod #categories."""
    label = shapes.category_ids(params["categories"])[index % len(params["categories"])]
    size = params["imagefolder_size"]
    scene_params = {**params, "instances": params["imagefolder_instances"], "clutter": params["imagefolder_clutter"]}
    if params["imagefolder_instances"][1] == 0:  # object-centric: no crowd cluster either
        scene_params["crowd_prob"] = 0.0
    return generate_scene(image_rng(seed, LAYOUT, split, index), size, size, scene_params, kind="main", label=label)


def write_item(layout: str, root: Path, params: dict[str, Any], seed: int, task: tuple[str, int]) -> None:
    split, index = task
    scene = image_scene(params, seed, split, index)
    name = shapes.CATEGORIES[scene.label]
    save_jpeg(root / split / name / f"{name}_{index:05d}.jpg", scene.image, params["jpeg_quality"])


def finish(layout: str, root: Path, params: dict[str, Any], records: list[Any]) -> None:
    # every class folder exists even in a split too small to fill it (ImageFolder needs the same classes)
    for split in params["counts"][LAYOUT]:
        for name in params["categories"]:
            (root / split / name).mkdir(parents=True, exist_ok=True)
