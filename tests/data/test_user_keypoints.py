"""Users' own COCO keypoint data (the kp-fpn benchmark): declared with its flip map, stored and named again,
registered with the metadata Detectron2's flip reads; inconsistent keypoint files and missing or asymmetric
flip maps refused through the runner's command line with nothing written."""
from __future__ import annotations

import shutil

import pytest
import yaml

from mocobench.__main__ import main as cli
from mocobench.common.config import ConfigError
from mocobench.data.custom import register_user_dataset
from mocobench.data.declarations import declare, resolve_dataset
from mocobench.data.synthetic import figure
from mocobench.detection.benchmarks import BENCHMARKS
from mocobench.detection.config import build_config
from tests.data.test_user_datasets import _refused
from tests.helpers.user_data import coco_specs, edit_json

FLIPS = [list(p) for p in figure.FLIP_MAP]


def _dataset_file(folder, root, name="figs", flips=FLIPS, train="train", test="val"):
    """A dataset YAML file naming the keypoint layout under `root` (paths relative to the file)."""
    doc = {"name": name, "train": f"coco:{root}/annotations/person_keypoints_{train}.json:{root}/train",
           "test": f"coco:{root}/annotations/person_keypoints_{test}.json:{root}/val"}
    if flips is not None:
        doc["keypoint_flip_map"] = flips
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_keypoint_dataset_declared_with_its_flip_map(synthetic_tiny, tmp_path, capsys):
    from detectron2.data import MetadataCatalog
    from detectron2.data import detection_utils as utils

    res = tmp_path / "res"
    ds = resolve_dataset(str(_dataset_file(tmp_path, synthetic_tiny.coco_kp)), None, None, res)
    assert ds.keypoint_names == figure.KEYPOINT_NAMES and [list(p) for p in ds.keypoint_flip_map] == FLIPS
    assert ds.record_field()["keypoints"] == list(figure.KEYPOINT_NAMES)  # part of every record's protocol
    stored = yaml.safe_load(declare(ds, res).read_text())
    assert stored["keypoint_flip_map"] == FLIPS
    assert resolve_dataset("figs", None, None, res) == ds  # named again: the stored map comes back
    register_user_dataset(ds)
    meta = MetadataCatalog.get("figs_train")
    assert list(meta.keypoint_names) == list(figure.KEYPOINT_NAMES)
    flip = utils.create_keypoint_hflip_indices(["figs_train"])
    names = list(figure.KEYPOINT_NAMES)
    assert [names[i] for i in flip] == [dict(figure.FLIP_MAP + tuple((b, a) for a, b in figure.FLIP_MAP)).get(n, n)
                                        for n in names]
    cfg = build_config(BENCHMARKS["kp-fpn"], weights=None, dataset=ds)
    assert cfg.MODEL.KEYPOINT_ON and cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == 17
    assert cfg.DATASETS.TRAIN == ("figs_train",) and len(cfg.TEST.KEYPOINT_OKS_SIGMAS) == 17
    assert cli(["run", "kp-fpn", "--dataset", "figs", "--weights", "random", "--num-gpus", "0", "--results", str(res),
                "--output-dir", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "kp-fpn-figs" in capsys.readouterr().out


def test_kp_benchmark_needs_keypoints_and_matching_sigmas(synthetic_tiny, tmp_path):
    from mocobench.data.custom import inspect_dataset, parse_source

    boxes = inspect_dataset("shapes", *(parse_source(s) for s in coco_specs(synthetic_tiny)))
    with pytest.raises(ConfigError, match="has no keypoints"):
        build_config(BENCHMARKS["kp-fpn"], weights=None, dataset=boxes)
    root = tmp_path / "kp"
    shutil.copytree(synthetic_tiny.coco_kp, root)
    for split in ("train", "val"):  # the same data with 15 keypoints (no ankles)
        def drop_ankles(d):
            d["categories"][0]["keypoints"] = d["categories"][0]["keypoints"][:15]
            for a in d["annotations"]:
                a["keypoints"] = a["keypoints"][:45]
                a["num_keypoints"] = sum(v > 0 for v in a["keypoints"][2::3])
        edit_json(root / "annotations" / f"person_keypoints_{split}.json", drop_ankles)
    flips = [p for p in FLIPS if "ankle" not in p[0]]
    ds = resolve_dataset(str(_dataset_file(tmp_path, root, flips=flips)), None, None, tmp_path / "res")
    with pytest.raises(ConfigError, match="15 keypoints but TEST.KEYPOINT_OKS_SIGMAS has 17"):
        build_config(BENCHMARKS["kp-fpn"], weights=None, dataset=ds)
    sigmas = "[" + ", ".join(["0.05"] * 15) + "]"
    cfg = build_config(BENCHMARKS["kp-fpn"], weights=None, dataset=ds, opts=["TEST.KEYPOINT_OKS_SIGMAS", sigmas])
    assert cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == 15


def _rename_nose(d):
    d["categories"][0]["keypoints"][0] = "snout"


def _fewer_names(d):
    d["categories"][0]["keypoints"] = d["categories"][0]["keypoints"][:16]
    for a in d["annotations"]:
        a["keypoints"] = a["keypoints"][:48]
        a["num_keypoints"] = sum(v > 0 for v in a["keypoints"][2::3])


def _short_list(d):
    d["annotations"][0]["keypoints"] = d["annotations"][0]["keypoints"][:-3]


def _bad_flag(d):
    d["annotations"][0]["keypoints"][2] = 3


def _bad_count(d):
    d["annotations"][0]["num_keypoints"] += 1


def _second_category(d):
    d["categories"].append({"id": 2, "name": "dog", "supercategory": "animal"})


@pytest.mark.parametrize("edit,flips,match", [
    (None, None, "no flip map"),
    (None, [["left_eye", "right_eye"], ["right_eye", "left_ear"]], "not symmetric"),
    (None, [["left_eye", "right_eye"], ["left_paw", "right_paw"]], "not keypoints of the data set"),
    (None, [["nose", "nose"]], "maps a keypoint to itself"),
    (None, {"left_eye": None}, "not keypoints of the data set"),
    (_rename_nose, FLIPS, "keypoints of"),
    (_fewer_names, FLIPS, "differ"),
    (_short_list, FLIPS, "not 51 numbers"),
    (_bad_flag, FLIPS, "visibility flags"),
    (_bad_count, FLIPS, "num_keypoints"),
    (_second_category, FLIPS, "list different keypoints"),
])
def test_refused_bad_keypoint_data(synthetic_tiny, tmp_path, capsys, edit, flips, match):
    root = tmp_path / "kp"
    shutil.copytree(synthetic_tiny.coco_kp, root)
    if edit is not None:  # the test split's file is edited: the two files no longer agree, or it is malformed
        edit_json(root / "annotations" / "person_keypoints_val.json", edit)
    path = _dataset_file(tmp_path, root, flips=flips)
    _refused(tmp_path, capsys, ["kp-fpn", "--dataset", str(path)], match)
