"""Generation presets for the built-in synthetic data: plain data, one dict per preset.

Every value here is part of the cache key (together with the seed and GENERATOR_VERSION), so a
layout on disk is regenerated exactly when something that shapes its bytes changes.

Keys of a preset:
    imagefolder_size    side of the square ImageFolder images (px)
    detection_size      [width, height] of the VOC / COCO images (px)
    cityscapes_size     [width, height] of the Cityscapes-layout images (px), 2:1 like the real ones
    instances           [min, max] regular object instances per scene
    object_scale        [min, max] object radius as a fraction of the image's shorter side
    main_object_scale   [min, max] radius of the ImageFolder image's main (labelled) object
    clutter             [min, max] unlabelled distractor strokes/blobs drawn into the background
    crowd_prob          probability that a scene holds a crowd cluster (COCO iscrowd RLE,
                        VOC difficult objects, Cityscapes "<class>group" polygons)
    crowd_members       [min, max] small objects in a crowd cluster
    min_visible_px      smallest visible pixel count of an annotated instance (Cityscapes uses
                        max(this, 120): its evaluator ignores regions under 100 px)
    min_visible_frac    smallest visible fraction of an occluded instance
    jpeg_quality        JPEG quality of the written images
    counts              images per layout and split
"""
from __future__ import annotations

from typing import Any, Mapping

from mocobench.common.config import merge

# Bump whenever the generator's output for the same parameters changes (drawing, file formats).
GENERATOR_VERSION = 1

_COMMON: dict[str, Any] = {
    "instances": [2, 6],
    "object_scale": [0.08, 0.22],
    "main_object_scale": [0.26, 0.36],
    "clutter": [6, 14],
    "crowd_prob": 0.15,
    "crowd_members": [3, 6],
    "min_visible_px": 48,
    "min_visible_frac": 0.35,
    "jpeg_quality": 90,
}

PRESETS: dict[str, dict[str, Any]] = {
    # For tests: a handful of images per split, generated in about a second.
    "tiny": {
        **_COMMON,
        "imagefolder_size": 64,
        "detection_size": [128, 96],
        "cityscapes_size": [192, 96],
        "crowd_prob": 0.5,
        "counts": {
            "imagefolder": {"train": 20, "val": 10},
            "voc2007": {"trainval": 6, "test": 6},
            "voc2012": {"trainval": 4},
            "coco": {"train": 6, "val": 6},
            "cityscapes": {"train": 3, "val": 3},
        },
    },
    # For quick manual runs: a few hundred images.
    "small": {
        **_COMMON,
        "imagefolder_size": 96,
        "detection_size": [160, 128],
        "cityscapes_size": [256, 128],
        "counts": {
            "imagefolder": {"train": 400, "val": 100},
            "voc2007": {"trainval": 120, "test": 60},
            "voc2012": {"trainval": 80},
            "coco": {"train": 160, "val": 60},
            "cityscapes": {"train": 30, "val": 15},
        },
    },
    # The demo chain: pretrain ResNet-18 on the ImageFolder, fine-tune detectors on VOC / COCO,
    # all within about 15 minutes on 2 CPU cores.
    "demo": {
        **_COMMON,
        "imagefolder_size": 112,
        "detection_size": [160, 128],
        "cityscapes_size": [256, 128],
        "counts": {
            "imagefolder": {"train": 2000, "val": 500},
            "voc2007": {"trainval": 600, "test": 200},
            "voc2012": {"trainval": 400},
            "coco": {"train": 800, "val": 200},
            "cityscapes": {"train": 100, "val": 50},
        },
    },
}


def resolve_params(preset: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The preset's parameters with `overrides` merged in (nested dicts merge key by key; unknown keys
    and type changes are errors), in the suite's config dialect (mocobench.common.config)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose one of {sorted(PRESETS)}")
    return merge(PRESETS[preset], overrides or {}, what="synthetic parameter")
