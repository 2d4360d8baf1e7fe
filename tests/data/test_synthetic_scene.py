"""Invariants of one synthetic scene: exact masks, occlusion rules, determinism, variety."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest
from shapely.geometry import Polygon

from mocobench.data.synthetic import CATEGORIES, PRESETS
from mocobench.data.synthetic.coco import _polygons
from mocobench.data.synthetic.scene import generate_scene

PARAMS = PRESETS["small"]


def scenes(kind="objects", n=12, size=(160, 128)):
    for i in range(n):
        label = i % len(CATEGORIES) if kind == "main" else None
        yield generate_scene(np.random.default_rng([7, i]), *size, PARAMS, kind=kind, label=label)


@pytest.mark.parametrize("kind", ["objects", "main", "street"])
def test_masks_are_disjoint_nonempty_and_match_boxes(kind):
    for scene in scenes(kind, size=(192, 96) if kind == "street" else (160, 128)):
        assert scene.image.dtype == np.uint8 and scene.image.shape == (*scene.instances[0].mask.shape, 3)
        stack = np.stack([inst.mask for inst in scene.instances])
        assert stack.sum(0).max() <= 1, "two instances claim the same pixel"
        for inst in scene.instances:
            ys, xs = np.nonzero(inst.mask)
            assert len(ys) > 0
            assert inst.box() == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_visible_outline_rasterises_to_the_mask():
    """The continuous outline written as COCO polygons covers the same pixels as the exact mask."""
    ious = []
    for scene in scenes():
        h, w = scene.instances[0].mask.shape
        for inst in scene.instances:
            if inst.crowd:
                continue
            polys = _polygons(inst.visible)
            rle = mask_util.merge(mask_util.frPyObjects(polys, h, w))
            poly_mask = mask_util.decode(rle).astype(bool)
            ious.append((poly_mask & inst.mask).sum() / (poly_mask | inst.mask).sum())
    assert len(ious) > 20
    assert min(ious) > 0.8 and np.mean(ious) > 0.9, (min(ious), np.mean(ious))


def test_occlusion_keeps_instances_visible_and_without_holes():
    occluded = 0
    for scene in scenes(n=20):
        for inst in scene.instances:
            if inst.crowd:
                continue
            full = Polygon(inst.polygon + 0.5).buffer(0.5, join_style="mitre")
            frame_full = full.intersection(Polygon([(0, 0), (160, 0), (160, 128), (0, 128)]))
            assert inst.visible.area >= PARAMS["min_visible_frac"] * frame_full.area - 1e-6
            assert inst.mask.sum() >= 0.8 * PARAMS["min_visible_px"]
            parts = getattr(inst.visible, "geoms", [inst.visible])
            assert all(len(p.interiors) == 0 for p in parts)
            occluded += inst.visible.area < frame_full.area - 1
    assert occluded > 0, "no scene had any occlusion: the generator lost its clutter"


def test_main_object_is_largest_central_and_labelled():
    for i, scene in enumerate(scenes("main", n=20, size=(96, 96))):
        main = scene.instances[-1]
        assert main.category == scene.label == i % len(CATEGORIES)
        assert main.mask.sum() == max(inst.mask.sum() for inst in scene.instances)
        ys, xs = np.nonzero(main.mask)
        assert abs(xs.mean() - 48) < 20 and abs(ys.mean() - 48) < 20


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = generate_scene(np.random.default_rng(3), 128, 96, PARAMS)
    b = generate_scene(np.random.default_rng(3), 128, 96, PARAMS)
    c = generate_scene(np.random.default_rng(4), 128, 96, PARAMS)
    assert np.array_equal(a.image, b.image)
    assert [i.polygon.tolist() for i in a.instances] == [i.polygon.tolist() for i in b.instances]
    assert not np.array_equal(a.image, c.image)


def test_variety_of_categories_counts_and_crowds():
    cats, counts, crowd = set(), set(), 0
    for scene in scenes(n=40):
        cats |= {inst.category for inst in scene.instances}
        counts.add(sum(not inst.crowd for inst in scene.instances))
        crowd += any(inst.crowd for inst in scene.instances)
    assert len(CATEGORIES) >= 8 and cats == set(range(len(CATEGORIES)))
    assert len(counts) >= 3 and max(counts) >= 4
    assert 0 < crowd < 40
