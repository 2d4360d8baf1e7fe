"""The preset keys the demo uses: a category subset, object-centric ImageFolder images, one-colour objects;
and the surface pattern per category that a preset can ask for."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from mocobench.data.synthetic import CATEGORIES, PRESETS, ensure_synthetic
from mocobench.data.synthetic.imagefolder import image_scene
from mocobench.data.synthetic.scene import generate_scene, texture
from mocobench.data.synthetic.streams import image_rng

SUBSET = ["star", "disc", "cross"]   # not in CATEGORIES' order: class order is the preset's
KNOBS = {"categories": SUBSET, "imagefolder_instances": [0, 0], "instances": [2, 3], "crowd_prob": 0.5,
         "counts": {"imagefolder": {"train": 6, "val": 3}, "voc2007": {"trainval": 3, "test": 3},
                    "voc2012": {"trainval": 1}, "coco": {"train": 4, "val": 2}, "cityscapes": {"train": 1, "val": 1}}}


@pytest.fixture(scope="module")
def subset_layout(tmp_path_factory):
    return ensure_synthetic(tmp_path_factory.mktemp("subset"), "tiny", seed=3, overrides=KNOBS, progress=False)


def test_category_subset_in_every_layout(subset_layout):
    lay = subset_layout
    assert lay.classes == SUBSET
    assert sorted(p.name for p in (lay.imagefolder / "train").iterdir()) == sorted(SUBSET)
    for split in ("train", "val"):
        doc = json.loads((lay.coco / "annotations" / f"instances_{split}.json").read_text())
        assert [(c["id"], c["name"]) for c in doc["categories"]] == [(1, "star"), (2, "disc"), (3, "cross")]
        assert doc["annotations"] and {a["category_id"] for a in doc["annotations"]} <= {1, 2, 3}
    names = {o.find("name").text for x in (lay.voc2007 / "Annotations").glob("*.xml")
             for o in ET.parse(x).getroot().iter("object")}
    assert names and names <= set(SUBSET)
    # COCO ids follow the subset: an annotation's id names the shape the scene drew
    doc = json.loads((lay.coco / "annotations" / "instances_train.json").read_text())
    image = doc["images"][0]
    scene = generate_scene(image_rng(lay.seed, "coco", "train", 0), *lay.params["detection_size"], lay.params)
    drawn = sorted(CATEGORIES[i.category] for i in scene.instances if not i.crowd)
    written = sorted(SUBSET[a["category_id"] - 1] for a in doc["annotations"]
                     if a["image_id"] == image["id"] and not a["iscrowd"])
    assert drawn == written


def test_object_centric_imagefolder_images_hold_one_shape(subset_layout):
    lay = subset_layout
    assert lay.params["crowd_prob"] == 0.5      # crowds in the detection scenes, none in the ImageFolder
    for index in range(6):
        scene = image_scene(lay.params, lay.seed, "train", index)
        assert [CATEGORIES[i.category] for i in scene.instances] == [SUBSET[index % 3]]
        name = SUBSET[index % 3]   # the writer draws its images with image_scene
        assert Image.open(lay.imagefolder / "train" / name / f"{name}_{index:05d}.jpg").size == scene.image.shape[:2]
    with_distractors = {**lay.params, "imagefolder_instances": [2, 3]}
    assert all(len(image_scene(with_distractors, lay.seed, "train", i).instances) >= 3 for i in range(3))


def test_unknown_or_repeated_categories_are_refused(tmp_path):
    for bad in (["disc", "blob"], ["disc", "disc"], ["disc"]):
        with pytest.raises(ValueError, match="at least 2 distinct names"):
            ensure_synthetic(tmp_path, "tiny", overrides={**KNOBS, "categories": bad}, progress=False)


def test_solid_prob_sets_the_share_of_one_colour_textures():
    def solid_share(p, n=400):
        rng = np.random.default_rng(0)
        count = 0
        for _ in range(n):
            t = texture(rng, 16, 16, p)
            # a one-colour texture is a single colour times a linear shading: rank-1 across channels
            m = t.reshape(3, -1)
            count += np.linalg.matrix_rank(m, tol=1e-3 * np.abs(m).max()) == 1
        return count / n

    assert solid_share(0.0) < 0.05 and solid_share(1.0) == 1.0
    assert abs(solid_share(0.7) - 0.7) < 0.08


def test_demo_preset_uses_the_knobs():
    demo = PRESETS["demo"]
    assert len(demo["categories"]) < len(CATEGORIES) and demo["imagefolder_instances"] == [0, 0]
    assert not PRESETS["tiny"]["category_patterns"] and "category_patterns" in demo


def _is_one_colour(t):
    m = t.reshape(3, -1)  # one colour times a linear shading: rank 1 across channels
    return np.linalg.matrix_rank(m, tol=1e-3 * np.abs(m).max()) == 1


def test_texture_pattern_argument_fixes_the_kind():
    from mocobench.data.synthetic.scene import PATTERNS

    rng = np.random.default_rng(1)
    for p, name in enumerate(PATTERNS):
        one_colour = [_is_one_colour(texture(rng, 24, 24, solid_prob=0.5, pattern=p)) for _ in range(40)]
        assert all(one_colour) if name == "solid" else not any(one_colour), name


@pytest.mark.parametrize("on", [True, False])
def test_category_patterns_paint_each_category_with_its_own_pattern(monkeypatch, on):
    """category_patterns: the preset's category i is painted with PATTERNS[i % 6], in every scene kind; off:
    the pattern is left to chance (solid_prob)."""
    from mocobench.data.synthetic import presets, scene

    painted = []
    monkeypatch.setattr(scene, "_paint", lambda rng, img, id_map, k, pts, solid_prob, pattern=None:
                        painted.append(pattern))
    params = presets.resolve_params("tiny", {**KNOBS, "category_patterns": on})
    ids = [CATEGORIES.index(c) for c in SUBSET]
    for i in range(6):
        painted.clear()
        sc = generate_scene(image_rng(0, "t", "train", i), 96, 64, params,
                            kind="main" if i % 2 else "objects", label=ids[i % 3])
        want = [SUBSET.index(CATEGORIES[inst.category]) % 6 if on else None for inst in sc.instances]
        assert painted == want and sc.instances
