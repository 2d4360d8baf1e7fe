"""Generation presets for the built-in synthetic data: plain data, one dict per preset.

Every value here is part of the cache key (together with the seed and GENERATOR_VERSION), so a
layout on disk is regenerated exactly when something that shapes its bytes changes.

Keys of a preset:
    imagefolder_size    side of the square ImageFolder images (px)
    detection_size      [width, height] of the VOC / COCO images (px)
    cityscapes_size     [width, height] of the Cityscapes-layout images (px), 2:1 like the real ones
    categories          the shape categories of the ImageFolder, VOC and COCO layouts (a subset of
                        shapes.CATEGORIES, in class order); Cityscapes always uses its fixed 8
    instances           [min, max] regular object instances per scene
    object_scale        [min, max] object radius as a fraction of the image's shorter side
    main_object_scale   [min, max] radius of the ImageFolder image's main (labelled) object
    imagefolder_instances  [min, max] smaller instances behind the ImageFolder image's main object
                        ([0, 0]: object-centric images, one shape on a cluttered background)
    imagefolder_clutter [min, max] distractor strokes/blobs in the ImageFolder backgrounds
    clutter             [min, max] unlabelled distractor strokes/blobs drawn into the background
    solid_prob          probability that an instance is painted in one shaded colour (else a
                        two-colour pattern: stripes, checks or blotches)
    category_patterns   false: patterns drawn as solid_prob says; true: the preset's category i is
                        always painted with scene.PATTERNS[i % 6] (solid, stripes, checks, blotches,
                        dots, rings; colours, period and angle still vary), so shape and surface
                        both tell the category
    crowd_prob          probability that a scene holds a crowd cluster (COCO iscrowd RLE,
                        VOC difficult objects, Cityscapes "<class>group" polygons)
    crowd_members       [min, max] small objects in a crowd cluster
    min_visible_px      smallest visible pixel count of an annotated instance (Cityscapes uses
                        max(this, 120): its evaluator ignores regions under 100 px)
    min_visible_frac    smallest visible fraction of an occluded instance
    jpeg_quality        JPEG quality of the written images
    figures             [min, max] articulated figures per image of the keypoint layout (coco_kp)
    figure_scale        [min, max] figure height as a fraction of the image height
    lvis_categories     number of categories of the LVIS layout (shape x surface pattern, at most 60)
    lvis_zipf           exponent of their long tail: category k is drawn in proportion to (k + 1) ** -lvis_zipf
    lvis_frequency      [r, c]: a category in at most r train images is rare, at most c common, else frequent
    lvis_negatives      most absent categories listed per image as verified negatives (neg_category_ids)
    lvis_not_exhaustive probability that one category of an image is flagged not exhaustively annotated
    counts              images per layout and split (voc2012_seg: the VOC semantic segmentation
                        splits train_aug and val)
"""
from __future__ import annotations

from typing import Any, Mapping

from mocobench.common.config import merge

from .shapes import CATEGORIES

# Bump whenever the generator's output for the same parameters changes (drawing, file formats).
GENERATOR_VERSION = 5  # 3: the VOC semantic segmentation layout (voc2012_seg); 4: dots and rings, category_patterns;
#                        5: the COCO keypoint (coco_kp) and LVIS (lvis) layouts

_COMMON: dict[str, Any] = {
    "categories": list(CATEGORIES),
    "instances": [2, 6],
    "object_scale": [0.08, 0.22],
    "main_object_scale": [0.26, 0.36],
    "imagefolder_instances": [2, 6],
    "clutter": [6, 14],
    "imagefolder_clutter": [6, 14],
    "solid_prob": 0.25,
    "crowd_prob": 0.15,
    "crowd_members": [3, 6],
    "min_visible_px": 48,
    "min_visible_frac": 0.35,
    "jpeg_quality": 90,
    "category_patterns": False,
    "figures": [1, 3],
    "figure_scale": [0.5, 0.9],
    "lvis_zipf": 1.5,
    "lvis_negatives": 3,
    "lvis_not_exhaustive": 0.2,
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
            "voc2012_seg": {"train_aug": 4, "val": 3},
            "coco": {"train": 6, "val": 6},
            "cityscapes": {"train": 3, "val": 3},
            "coco_kp": {"train": 6, "val": 4},
            "lvis": {"train": 8, "val": 4},
        },
        "lvis_categories": 12,
        "lvis_frequency": [1, 3],
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
            "voc2012_seg": {"train_aug": 80, "val": 40},
            "coco": {"train": 160, "val": 60},
            "cityscapes": {"train": 30, "val": 15},
            "coco_kp": {"train": 120, "val": 40},
            "lvis": {"train": 160, "val": 60},
        },
        "lvis_categories": 20,
        "lvis_frequency": [4, 20],
    },
    # The demo chain (`make demo`): pretrain ResNet-18 on the ImageFolder, fine-tune detectors on VOC /
    # COCO, all within 15 minutes on 2 CPU cores, and still show transfer. So the data is made to be
    # learnable in minutes: six clearly distinct shapes, object-centric 64 px pretraining images (one
    # shape on a cluttered background, like ImageNet's photos), and detection scenes of 1-3 large objects
    # at the size the detectors train on (no resizing). With category_patterns (a surface pattern per
    # category) the MoCo demo transfers about as much as the supervised one, but random init gains more
    # than either and two trials cannot tell them apart, so the demo keeps shape-only categories, where
    # supervised transfer is clear (benchmarks/perf/RESULTS.md, "Issue 8", steps 27-31 and runs 3-4).
    "demo": {
        **_COMMON,
        "categories": ["disc", "square", "triangle", "star", "cross", "crescent"],
        "instances": [1, 3],
        "object_scale": [0.2, 0.34],
        "main_object_scale": [0.3, 0.42],
        "imagefolder_instances": [0, 0],
        "clutter": [2, 6],
        "imagefolder_clutter": [2, 6],
        "solid_prob": 0.7,
        "category_patterns": False,   # see above
        "crowd_prob": 0.05,
        "imagefolder_size": 64,
        "detection_size": [128, 96],
        "cityscapes_size": [256, 128],
        "counts": {
            "imagefolder": {"train": 2000, "val": 500},
            "voc2007": {"trainval": 600, "test": 120},
            "voc2012": {"trainval": 400},
            "voc2012_seg": {"train_aug": 400, "val": 100},
            "coco": {"train": 800, "val": 120},
            "cityscapes": {"train": 100, "val": 50},
            "coco_kp": {"train": 600, "val": 100},
            "lvis": {"train": 800, "val": 120},
        },
        # 30 categories at zipf 1.5 over ~1600 train instances: about 4 frequent, 11 common, 15 rare
        "lvis_categories": 30,
        "lvis_frequency": [10, 60],
    },
}


def resolve_params(preset: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The preset's parameters with `overrides` merged in (nested dicts merge key by key; unknown keys
    and type changes are errors), in the suite's config dialect (mocobench.common.config)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose one of {sorted(PRESETS)}")
    return merge(PRESETS[preset], overrides or {}, what="synthetic parameter")
