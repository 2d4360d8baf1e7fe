"""A test split held out of one COCO json or one folder of VOC XML files (data/holdout.py): deterministic,
disjoint, covering every annotated image, independent of the file's order, stable across declarations,
hashed into the annotation hash as written; bad fractions and empty splits refused with nothing written;
one short run through the runner's command line on a single COCO json."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import yaml
from detectron2.data import DatasetCatalog
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mocobench import records
from mocobench.__main__ import main as cli
from mocobench.common.hashing import canonical_hash, sha256_file
from mocobench.data.custom import DatasetError, register_user_dataset
from mocobench.data.declarations import declaration_path, declare, resolve_dataset
from tests.helpers.files import files_under
from tests.helpers.user_data import CLASSES, TINY_USER, copy_coco, edit_json


def _coco_source(layout) -> tuple[str, dict]:
    c = layout.coco
    path = c / "annotations/instances_train.json"
    return f"coco:{path}:{c}/train", json.loads(path.read_text())


def _annotated(data: dict) -> set:
    return {a["image_id"] for a in data["annotations"] if not a.get("iscrowd", 0)}


def test_coco_holdout_disjoint_covering_and_hashed_as_written(layout, tmp_path):
    spec, src = _coco_source(layout)
    res = tmp_path / "res"
    ds = resolve_dataset("held", spec, "holdout:0.3", res)
    assert files_under(res) == []  # checked in memory, written only by declare
    declare(ds, res)
    folder = res / "datasets/held"
    parts = {s: json.loads((folder / f"{s}.json").read_text()) for s in ("train", "test")}
    ids = {s: {im["id"] for im in d["images"]} for s, d in parts.items()}
    assert not ids["train"] & ids["test"]
    assert ids["train"] | ids["test"] == {im["id"] for im in src["images"]}
    annotated = _annotated(src)
    assert _annotated(parts["train"]) | _annotated(parts["test"]) == annotated
    assert len(ids["test"]) == round(0.3 * len(annotated)) == ds.test_images
    assert ds.train_images == len(annotated) - ds.test_images
    for s, d in parts.items():  # every annotation once, with its image; categories kept
        assert {a["image_id"] for a in d["annotations"]} <= ids[s] and d["categories"] == src["categories"]
    assert sorted(a["id"] for d in parts.values() for a in d["annotations"]) == sorted(a["id"] for a in
                                                                                        src["annotations"])
    # the record's annotation hash is the hash of the files as written
    assert ds.annotations_sha256 == canonical_hash({s: {f"{s}.json": sha256_file(folder / f"{s}.json")}
                                                    for s in ("train", "test")})
    assert ds.record_field()["holdout"] == {"source": spec, "fraction": 0.3, "seed": 0}
    stored = yaml.safe_load(declaration_path(res, "held").read_text())
    assert stored["train"] == spec and stored["test"] == "holdout:0.3:0"
    assert stored["splits"]["test"].startswith(f"coco:{folder.resolve()}/test.json:")
    # named again: the same data set, nothing rewritten; declared again elsewhere: the same bytes
    before = {p: p.read_bytes() for p in files_under(folder)}
    assert resolve_dataset("held", None, None, res) == ds and declare(ds, res) is None
    assert {p: p.read_bytes() for p in files_under(folder)} == before
    other = tmp_path / "res2"
    declare(resolve_dataset("held", spec, "holdout:0.3", other), other)
    for s in ("train", "test"):
        assert (other / f"datasets/held/{s}.json").read_bytes() == (folder / f"{s}.json").read_bytes()


def test_coco_holdout_ignores_file_order_and_follows_the_seed(layout, tmp_path):
    spec, src = _coco_source(layout)
    tr_json, tr_img, _, _ = copy_coco(layout, tmp_path / "coco")

    def shuffle(d):
        random.Random(5).shuffle(d["images"])
        random.Random(6).shuffle(d["annotations"])

    edit_json(tr_json, shuffle)
    held = {}
    for key, (train, test) in {"orig": (spec, "holdout:0.3"), "shuffled": (f"coco:{tr_json}:{tr_img}", "holdout:0.3"),
                               "seed7": (spec, "holdout:0.3:7")}.items():
        res = tmp_path / key
        declare(resolve_dataset("held", train, test, res), res)
        held[key] = {im["file_name"] for im in json.loads((res / "datasets/held/test.json").read_text())["images"]}
    assert held["orig"] == held["shuffled"]
    assert held["seed7"] != held["orig"] and len(held["seed7"]) == len(held["orig"])


def test_voc_root_without_image_sets(layout, tmp_path):
    root = tmp_path / "VOC"
    shutil.copytree(layout.voc2007, root)
    shutil.rmtree(root / "ImageSets")  # Annotations/ and JPEGImages/ only
    xml_ids = {p.stem for p in (root / "Annotations").glob("*.xml")}
    res = tmp_path / "res"
    ds = resolve_dataset("vheld", f"voc:{root}", "holdout:0.25", res)
    declare(ds, res)
    folder = res / "datasets/vheld"
    lists = {s: (folder / f"ImageSets/Main/{s}.txt").read_text().split() for s in ("train", "test")}
    assert not set(lists["train"]) & set(lists["test"]) and set(lists["train"]) | set(lists["test"]) == xml_ids
    assert len(lists["test"]) == round(0.25 * len(xml_ids)) == ds.test_images  # every generated XML has objects
    for d in ("Annotations", "JPEGImages"):
        assert (folder / d).is_symlink() and (folder / d).resolve() == (root / d).resolve()
    assert not (root / "ImageSets").exists()  # the user's folder is only read
    register_user_dataset(ds)
    assert sorted(d["image_id"] for d in DatasetCatalog.get("vheld_test")) == sorted(lists["test"])
    assert len(DatasetCatalog.get("vheld_train")) == len(lists["train"])
    assert resolve_dataset("vheld", None, None, res) == ds
    # a dataset YAML file (paths relative to it) declares the same split
    (tmp_path / "vheld.yaml").write_text("name: yheld\ntrain: voc:VOC\ntest: holdout:0.25\n")
    declare(resolve_dataset(str(tmp_path / "vheld.yaml"), None, None, res), res)
    assert (res / "datasets/yheld/ImageSets/Main/test.txt").read_text().split() == lists["test"]


def _refused(tmp_path, capsys, argv, match):
    res, out = tmp_path / "res", tmp_path / "out"
    before = files_under(res, out)
    rc = cli(["run", "det-fpn", *argv, "--weights", "random", "--num-gpus", "0", "--results", str(res),
              "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert match in err, err
    assert files_under(res, out) == before
    return err


@pytest.mark.parametrize("test,match", [("holdout:0.01", "leaves the test split empty"),
                                        ("holdout:0.99", "leaves the train split empty"),
                                        ("holdout:1.5", "0 < FRACTION < 1"), ("holdout:0", "0 < FRACTION < 1"),
                                        ("holdout:a", "holdout:FRACTION"), ("holdout:0.2:x", "integer SEED")])
def test_refused_bad_fraction_or_empty_split(layout, tmp_path, capsys, test, match):
    spec, _ = _coco_source(layout)
    _refused(tmp_path, capsys, ["--dataset", "held", "--train", spec, "--test", test], match)


def test_refused_voc_root_without_split_or_holdout(layout, tmp_path, capsys):
    _refused(tmp_path, capsys, ["--dataset", "v", "--train", f"voc:{layout.voc2007}", "--test",
                                f"voc:{layout.voc2007}:test"], "only goes with a held-out test split")


def test_refused_when_the_source_changed_after_declaration(layout, tmp_path, capsys):
    tr_json, tr_img, _, _ = copy_coco(layout, tmp_path / "coco")
    res = tmp_path / "res"
    declare(resolve_dataset("held", f"coco:{tr_json}:{tr_img}", "holdout:0.3", res), res)
    edit_json(tr_json, lambda d: d["annotations"].pop())
    with pytest.raises(DatasetError, match="declare the edited data under another name"):
        resolve_dataset("held", None, None, res)
    _refused(tmp_path, capsys, ["--dataset", "held"], "differs from the split")


@pytest.mark.slow
def test_one_coco_json_through_the_cli(layout, tmp_path):
    """The one-json case of docs/own-data.md: --train coco:ONE.json:IMAGES --test holdout:0.3, a few iterations;
    the record names the held-out split and its metrics are pycocotools' on the written test.json."""
    spec, _ = _coco_source(layout)
    res = tmp_path / "res"
    rc = cli(["run", "det-fpn", "--dataset", "onejson", "--train", spec, "--test", "holdout:0.3", "--epochs", "1",
              "--weights", "random", "--num-gpus", "0", "--results", str(res), "--output-dir", str(tmp_path / "out"),
              "--opts", *TINY_USER])
    assert rc == 0
    (rec,) = records.load_records(res)
    ds = rec["protocol"]["dataset"]
    stored = yaml.safe_load(declaration_path(res, "onejson").read_text())
    assert ds["annotations_sha256"] == stored["annotations_sha256"] and ds["classes"] == CLASSES
    assert ds["holdout"] == {"source": spec, "fraction": 0.3, "seed": 0}
    test_json = res / "datasets/onejson/test.json"
    gt = COCO(str(test_json))
    assert ds["test_images"] == len(gt.getImgIds())
    preds = json.loads((Path(rec["provenance"]["output_dir"]) / "inference/coco_instances_results.json").read_text())
    assert preds and {d["image_id"] for d in preds} <= set(gt.getImgIds())
    ev = COCOeval(gt, gt.loadRes(preds), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert rec["metrics"]["bbox"]["AP50"] == pytest.approx(100 * ev.stats[1], abs=1e-6)
