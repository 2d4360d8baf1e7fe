"""Users' own data sets (data/custom.py, data/declarations.py): what is read from COCO and VOC files,
how a declaration is stored and named again, and every bad input refused with a clear error through the
runner's command line, with nothing written (no declaration, no record, no trial folder)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from detectron2.data import DatasetCatalog, MetadataCatalog

from mocobench.__main__ import main as cli
from mocobench.common.config import ConfigError
from mocobench.data.custom import DatasetError, inspect_dataset, parse_source, register_user_dataset
from mocobench.data.declarations import declaration_path, declare, resolve_dataset
from mocobench.detection.benchmarks import BENCHMARKS
from mocobench.detection.config import build_config
from tests.helpers.files import files_under
from tests.helpers.user_data import CLASSES, COUNTS, coco_specs, copy_coco, edit_json, voc_specs


def _refused(tmp_path, capsys, argv, match):
    """The runner refuses (status 2) with a message matching `match`, and writes nothing."""
    res, out = tmp_path / "res", tmp_path / "out"
    rc = cli(["run", *argv, "--weights", "random", "--num-gpus", "0", "--results", str(res),
              "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert match in err, err
    assert files_under(res, out) == []
    return err


def test_coco_classes_masks_sizes_and_hash(layout):
    train, test = (parse_source(s) for s in coco_specs(layout))
    ds = inspect_dataset("shapes3", train, test)
    raw = json.loads(Path(train.path).read_text())
    assert ds.format == "coco" and list(ds.classes) == CLASSES and ds.has_masks
    assert ds.category_ids == tuple(sorted(c["id"] for c in raw["categories"]))
    annotated = {a["image_id"] for a in raw["annotations"] if not a.get("iscrowd")}
    assert ds.train_images == len(annotated) <= COUNTS["coco"]["train"]
    assert ds.record_field()["annotations_sha256"] == ds.annotations_sha256
    assert inspect_dataset("shapes3", train, test).annotations_sha256 == ds.annotations_sha256  # stable


def test_voc_classes_from_the_xml_no_masks(layout):
    train, test = (parse_source(s) for s in voc_specs(layout))
    ds = inspect_dataset("vocshapes", train, test)
    assert ds.format == "voc" and list(ds.classes) == sorted(CLASSES) and not ds.has_masks
    names = register_user_dataset(ds)
    assert names == ["vocshapes_train", "vocshapes_test"]
    meta = MetadataCatalog.get("vocshapes_test")
    assert meta.evaluator_type == "pascal_voc" and meta.thing_classes == sorted(CLASSES) and meta.year == 2007
    dicts = DatasetCatalog.get("vocshapes_train")
    assert len(dicts) == COUNTS["voc2007"]["trainval"]
    assert {a["category_id"] for d in dicts for a in d["annotations"]} <= set(range(len(CLASSES)))


def test_non_contiguous_category_ids_are_mapped_as_detectron2_does(layout, tmp_path):
    """Category ids 7, 3, 12 (unsorted, with gaps): classes in id order, ids -> 0..K-1; the loaded
    instances keep their class names."""
    tr_json, tr_img, te_json, te_img = copy_coco(layout, tmp_path / "coco")
    remap = {1: 7, 2: 3, 3: 12}

    def renumber(d):
        for c in d["categories"]:
            c["id"] = remap[c["id"]]
        d["categories"].reverse()
        for a in d["annotations"]:
            a["category_id"] = remap[a["category_id"]]

    before = json.loads(tr_json.read_text())
    name_of = {c["id"]: c["name"] for c in before["categories"]}
    for j in (tr_json, te_json):
        edit_json(j, renumber)
    ds = inspect_dataset("gappy", parse_source(f"coco:{tr_json}:{tr_img}"), parse_source(f"coco:{te_json}:{te_img}"))
    by_new_id = {remap[i]: n for i, n in name_of.items()}
    assert ds.category_ids == (3, 7, 12) and list(ds.classes) == [by_new_id[i] for i in (3, 7, 12)]
    register_user_dataset(ds)
    meta = MetadataCatalog.get("gappy_train")
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1, 12: 2}
    loaded = DatasetCatalog.get("gappy_train")
    want = sorted((a["bbox"][0], name_of[a["category_id"]]) for a in before["annotations"])
    got = sorted((a["bbox"][0], meta.thing_classes[a["category_id"]]) for d in loaded for a in d["annotations"])
    assert got == want


def test_declared_once_named_again(layout, tmp_path, caplog):
    res = tmp_path / "res"
    tr, te = coco_specs(layout)
    ds = resolve_dataset("shapes3", tr, te, res)
    assert files_under(res) == []  # checked, not written yet
    path = declare(ds, res)
    assert path == declaration_path(res, "shapes3")
    stored = yaml.safe_load(path.read_text())
    assert stored["train"] == tr and stored["classes"] == CLASSES
    assert stored["annotations_sha256"] == ds.annotations_sha256
    again = resolve_dataset("shapes3", None, None, res)  # the name alone
    assert again == ds and declare(again, res) is None and path.read_text() == yaml.safe_dump(stored, sort_keys=False)
    with pytest.raises(DatasetError, match="declared already"):
        resolve_dataset("shapes3", *voc_specs(layout), res)
    with pytest.raises(DatasetError, match="not declared"):
        resolve_dataset("other", None, None, res)
    # a YAML file with paths relative to itself declares the same
    f = layout.root / "shapes3.yaml"
    f.write_text("name: yshapes\ntrain: voc:VOCdevkit/VOC2007:trainval\ntest: voc:VOCdevkit/VOC2007:test\n")
    yds = resolve_dataset(str(f), None, None, res)
    assert yds.name == "yshapes" and yds.train.path == str(layout.voc2007)


def test_epoch_schedule_and_masks_follow_the_data(layout):
    ds = inspect_dataset("shapes3", *(parse_source(s) for s in coco_specs(layout)))
    cfg = build_config(BENCHMARKS["det-fpn"], weights=None, dataset=ds, epochs=24)
    n = ds.train_images
    assert cfg.SOLVER.MAX_ITER == -(-24 * n // 16) and cfg.SOLVER.IMS_PER_BATCH == 16
    assert tuple(cfg.SOLVER.STEPS) == (int(cfg.SOLVER.MAX_ITER * 2 / 3), int(cfg.SOLVER.MAX_ITER * 8 / 9))
    assert cfg.SOLVER.WARMUP_ITERS <= cfg.SOLVER.MAX_ITER // 10
    assert cfg.DATASETS.TRAIN == ("shapes3_train",) and cfg.DATASETS.TEST == ("shapes3_test",)
    # the batch after --opts sets the iterations; an explicit MAX_ITER wins over the epochs
    cfg = build_config(BENCHMARKS["det-fpn"], weights=None, dataset=ds, epochs=2, opts=["SOLVER.IMS_PER_BATCH", "2"])
    assert cfg.SOLVER.MAX_ITER == n
    cfg = build_config(BENCHMARKS["det-fpn"], weights=None, dataset=ds, opts=["SOLVER.MAX_ITER", "5"])
    assert cfg.SOLVER.MAX_ITER == 5
    # too few iterations for two distinct lr steps inside the run: a clear error, not fvcore's
    short = 2 * 16 / n  # epochs giving 2 iterations
    with pytest.raises(ConfigError, match=r"gives 2 iteration\(s\), too few .* give --epochs"):
        build_config(BENCHMARKS["det-fpn"], weights=None, dataset=ds, epochs=short)
    for name in ("det-fpn", "det-c4", "mask-fpn", "mask-c4"):  # the shared base files decide the norms
        cfg = build_config(BENCHMARKS[name], weights=None, dataset=ds)
        assert cfg.MODEL.MASK_ON == name.startswith("mask") and cfg.MODEL.BACKBONE.FREEZE_AT == 0
        assert cfg.TEST.PRECISE_BN.ENABLED and cfg.INPUT.FORMAT == "RGB"
        base = build_config(BENCHMARKS["voc0712-det-c4" if "c4" in name else "coco-mask-fpn-1x"], weights=None)
        assert cfg.MODEL.RESNETS.NORM == base.MODEL.RESNETS.NORM and cfg.MODEL.FPN.NORM == base.MODEL.FPN.NORM


# ---- bad input: a clear error, nothing written ----------------------------------------------------

def test_refused_not_coco(layout, tmp_path, capsys):
    bad = tmp_path / "labels.json"
    bad.write_text(json.dumps({"images": [], "labels": []}))
    _, te = coco_specs(layout)
    err = _refused(tmp_path, capsys, ["det-fpn", "--dataset", "x", "--train", f"coco:{bad}:{layout.coco}/train",
                                      "--test", te], "is not a COCO annotation file")
    assert "annotations" in err and "categories" in err
    bad.write_text("<xml/>")
    _refused(tmp_path, capsys, ["det-fpn", "--dataset", "x", "--train", f"coco:{bad}:{layout.coco}/train",
                                "--test", te], "not valid JSON")


def test_refused_missing_images_named_and_counted(layout, tmp_path, capsys):
    tr_json, tr_img, te_json, te_img = copy_coco(layout, tmp_path / "coco")
    gone = sorted(tr_img.iterdir())[:7]
    for p in gone:
        p.unlink()
    err = _refused(tmp_path, capsys, ["det-fpn", "--dataset", "x", "--train", f"coco:{tr_json}:{tr_img}",
                                      "--test", f"coco:{te_json}:{te_img}"], f"7 of the {COUNTS['coco']['train']} "
                                                                             f"images")
    assert gone[0].name in err and gone[4].name in err and gone[5].name not in err and "(7 in all)" in err


@pytest.mark.parametrize("box,what", [([10, 10, 0, 5], "zero area"), ([120, 10, 30, 20], "outside"),
                                      ([-5, 10, 10, 10], "outside")])
def test_refused_bad_coco_boxes(layout, tmp_path, capsys, box, what):
    tr_json, tr_img, te_json, te_img = copy_coco(layout, tmp_path / "coco")
    edit_json(te_json, lambda d: d["annotations"][0].update(bbox=box))
    err = _refused(tmp_path, capsys, ["det-fpn", "--dataset", "x", "--train", f"coco:{tr_json}:{tr_img}",
                                      "--test", f"coco:{te_json}:{te_img}"], what)
    assert str(box) in err


def _voc_copy(layout, tmp_path) -> Path:
    root = tmp_path / "VOC"
    shutil.copytree(layout.voc2007, root)
    return root


def test_refused_voc_classes_differ_and_bad_voc_box(layout, tmp_path, capsys):
    root = _voc_copy(layout, tmp_path)
    test_ids = (root / "ImageSets/Main/test.txt").read_text().split()
    xml = root / "Annotations" / f"{test_ids[0]}.xml"
    text = xml.read_text()
    first = text.split("<name>")[1].split("</name>")[0]
    xml.write_text(text.replace(f"<name>{first}</name>", "<name>Heart</name>", 1))
    err = _refused(tmp_path, capsys, ["det-c4", "--dataset", "v", "--train", f"voc:{root}:trainval",
                                      "--test", f"voc:{root}:test"], "VOC classes differ")
    assert "'Heart'" in err and xml.name in err
    xml.write_text(text.replace("<xmax>", "<xmax>9999", 1))
    _refused(tmp_path, capsys, ["det-c4", "--dataset", "v", "--train", f"voc:{root}:trainval",
                                "--test", f"voc:{root}:test"], "lie outside their image")


def test_refused_split_without_annotated_image(layout, tmp_path, capsys):
    tr_json, tr_img, te_json, te_img = copy_coco(layout, tmp_path / "coco")
    edit_json(te_json, lambda d: d.update(annotations=[]))
    _refused(tmp_path, capsys, ["det-fpn", "--dataset", "x", "--train", f"coco:{tr_json}:{tr_img}",
                                "--test", f"coco:{te_json}:{te_img}"], "has no annotated image")
    root = _voc_copy(layout, tmp_path)
    for i in (root / "ImageSets/Main/test.txt").read_text().split():
        xml = root / "Annotations" / f"{i}.xml"
        xml.write_text(xml.read_text().split("<object>")[0] + "</annotation>")
    _refused(tmp_path, capsys, ["det-c4", "--dataset", "v", "--train", f"voc:{root}:trainval",
                                "--test", f"voc:{root}:test"], "has no annotated image")


@pytest.mark.parametrize("name", ["coco_2017", "voc", "coco", "synth_voc", "cityscapes_fine"])
def test_refused_builtin_name(layout, tmp_path, capsys, name):
    tr, te = coco_specs(layout)
    _refused(tmp_path, capsys, ["det-fpn", "--dataset", name, "--train", tr, "--test", te],
             "clashes with Detectron2's builtin data sets")


def test_refused_masks_without_masks_and_wrong_benchmark(layout, tmp_path, capsys):
    tr, te = voc_specs(layout)
    _refused(tmp_path, capsys, ["mask-fpn", "--dataset", "v", "--train", tr, "--test", te], "has no masks")
    _refused(tmp_path, capsys, ["voc07-det-c4", "--dataset", "v", "--train", tr, "--test", te],
             "are for the generic benchmarks")
    _refused(tmp_path, capsys, ["det-fpn"], "runs on your own data set")
    _refused(tmp_path, capsys, ["det-fpn", "--dataset", "v", "--train", "coco:only-one-part"], "a split is given as")
