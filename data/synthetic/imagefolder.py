"""ImageFolder layout (torchvision): <dir>/{train,val}/<class>/<class>_<NNNNN>.jpg.

Each image's label is the category of its main object: the largest one, central and on top, among
smaller clutter instances. Classes are balanced (image i of a split has category i mod #classes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import shapes
from .scene import generate_scene
from .streams import image_rng, save_jpeg

LAYOUT = "imagefolder"


def write_item(layout: str, root: Path, params: dict[str, Any], seed: int, task: tuple[str, int]) -> None:
    split, index = task
    label = index % len(shapes.CATEGORIES)
    size = params["imagefolder_size"]
    scene = generate_scene(image_rng(seed, LAYOUT, split, index), size, size, params, kind="main", label=label)
    name = shapes.CATEGORIES[label]
    save_jpeg(root / split / name / f"{name}_{index:05d}.jpg", scene.image, params["jpeg_quality"])


def finish(layout: str, root: Path, params: dict[str, Any], records: list[Any]) -> None:
    # every class folder exists even in a split too small to fill it (ImageFolder needs the same classes)
    for split in params["counts"][LAYOUT]:
        for name in shapes.CATEGORIES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
