"""The generic benchmarks on users' own data (tiny COCO- and VOC-format sets written by the built-in
generator with their own class names): real Detectron2 trials through the runner, metrics checked against
pycocotools (COCO) or an independent VOC07 11-point AP (VOC) on the same predictions, records and tables."""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mocobench import records
from mocobench.__main__ import main as cli
from mocobench.detection import engine
from mocobench.reporting.aggregate import build_tables
from tests.helpers.checkpoints import randomised_resnet, wrap
from tests.helpers.user_data import CLASSES, TINY_USER, coco_specs, voc_specs

EPOCHS = 0.8  # about 10 annotated train images, batch 2: 4 iterations


def _run(tmp_path, bench, dataset_args, *weights):
    argv = ["run", bench, *dataset_args, "--epochs", str(EPOCHS), "--num-gpus", "0",
            "--results", str(tmp_path / "res"), "--output-dir", str(tmp_path / "out")]
    for w in weights:
        argv += ["--weights", w]
    return cli(argv + ["--opts", *TINY_USER])


@pytest.mark.slow
def test_coco_mask_fpn_metrics_match_pycocotools_records_and_tables(layout, tmp_path):
    ckpt = tmp_path / "moco.pth.tar"
    torch.save(wrap("moco", randomised_resnet(18, seed=1)), ckpt)
    tr, te = coco_specs(layout)
    assert _run(tmp_path, "mask-fpn", ["--dataset", "shapes3", "--train", tr, "--test", te], "random", str(ckpt)) == 0
    recs = {r["init"]["label"]: r for r in records.load_records(tmp_path / "res")}
    assert set(recs) == {"random", "moco"} and recs["moco"]["init"]["kind"] == "moco"
    gt = COCO(te.split(":")[1])
    for rec in recs.values():
        p = rec["protocol"]
        assert rec["benchmark"] == "mask-fpn-shapes3" and p["generic_benchmark"] == "mask-fpn"
        ds = p["dataset"]
        assert ds["name"] == "shapes3" and ds["classes"] == CLASSES and ds["format"] == "coco" and ds["masks"]
        assert len(ds["annotations_sha256"]) == 64 and p["test_datasets"] == ["shapes3_test"]
        assert p["epochs"] == EPOCHS and p["max_iter"] == math.ceil(EPOCHS * ds["train_images"] / 2)
        assert p["num_classes"] == 3
        # the same predictions, scored by pycocotools against the user's own json
        preds = json.loads((Path(rec["provenance"]["output_dir"]) / "inference/coco_instances_results.json")
                           .read_text())
        assert preds and {d["category_id"] for d in preds} <= set(gt.getCatIds())
        for task in ("bbox", "segm"):
            ev = COCOeval(gt, gt.loadRes(preds), task)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            for key, stat in (("AP", 0), ("AP50", 1), ("AP75", 2)):
                assert rec["metrics"][task][key] == pytest.approx(100 * ev.stats[stat], abs=1e-6), (task, key)
    # the declaration is stored; the same name again re-runs nothing
    assert (tmp_path / "res/datasets/shapes3.yaml").is_file()
    assert _run(tmp_path, "mask-fpn", ["--dataset", "shapes3"], "random") == 0
    assert len(records.find_records(tmp_path / "res")) == 2
    # one table: named after the data set and its annotation version, random before moco, cells = records
    (table,) = build_tables(records.load_records(tmp_path / "res"))
    sha = recs["random"]["protocol"]["dataset"]["annotations_sha256"]
    assert table.title.startswith("shapes3, Mask R-CNN R50-FPN") and "(coco, 3 classes" in table.title
    assert f"annotations {sha[:8]}" in table.title
    depth = recs["random"]["protocol"]["depth"]
    assert depth != 50 and table.title.endswith(f"[ran R{depth}]")  # the title says what ran, not only R50
    assert [r.label for r in table.rows] == ["random", "moco"] and not table.reference
    assert [c.header for c in table.columns] == ["APbb", "AP50bb", "AP75bb", "APmk", "AP50mk", "AP75mk"]
    for row in table.rows:
        assert row.cells["segm/AP"].mean == pytest.approx(recs[row.label]["metrics"]["segm"]["AP"])
    # another version of the annotations never shares a table with this one
    other = dict(recs["random"])
    other.pop("_path")
    edited = {**other["protocol"]["dataset"], "annotations_sha256": "0" * 64}
    other["protocol"] = {**other["protocol"], "dataset": edited}
    other["protocol_hash"] = records.canonical_hash(other["protocol"])
    records.write_record(other, tmp_path / "res")
    tables = build_tables(records.load_records(tmp_path / "res"))
    assert len(tables) == 2 and all("dataset" in " ".join(t.notes) for t in tables)


def _voc07_ap(rec, prec) -> float:
    """The VOC2007 11-point interpolated AP."""
    return float(np.mean([prec[rec >= t].max() if (rec >= t).any() else 0.0 for t in np.arange(0, 1.1, 0.1)]))


def _independent_voc(root: Path, split: str, classes: list[str], preds: list[tuple[str, object]]) -> dict:
    """AP50 / AP / AP75 of VOC-format ground truth (1-based inclusive pixels, difficult objects ignored) for
    predictions as the evaluator writes them (1-based, scores to 3 and boxes to 1 decimal, in process order)."""
    ids = (root / "ImageSets/Main" / f"{split}.txt").read_text().split()
    gt = {}
    for i in ids:
        for obj in ET.parse(root / "Annotations" / f"{i}.xml").findall("object"):
            b = [int(obj.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            gt.setdefault((i, obj.findtext("name")), []).append((b, int(obj.findtext("difficult"))))
    aps = {}
    for t in range(50, 100, 5):
        per_class = []
        for c, name in enumerate(classes):
            dets = [(img, float(f"{s:.3f}"), [float(f"{v:.1f}") for v in (b[0] + 1, b[1] + 1, b[2], b[3])])
                    for img, inst in preds for b, s, k in zip(inst.pred_boxes.tensor.tolist(),
                                                              inst.scores.tolist(), inst.pred_classes.tolist())
                    if k == c]
            npos = sum(1 for i in ids for _, d in gt.get((i, name), []) if not d)
            order = np.argsort(-np.array([d[1] for d in dets]))
            used, tp, fp = set(), [], []
            for j in order:
                img, _, b = dets[j]
                best, best_k = -1.0, None
                for k, (g, _) in enumerate(gt.get((img, name), [])):
                    iw = min(b[2], g[2]) - max(b[0], g[0]) + 1
                    ih = min(b[3], g[3]) - max(b[1], g[1]) + 1
                    if iw > 0 and ih > 0:
                        inter = iw * ih
                        union = (b[2] - b[0] + 1) * (b[3] - b[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
                        if inter / union > best:
                            best, best_k = inter / union, k
                if best > t / 100:
                    if gt[(img, name)][best_k][1]:
                        continue  # difficult: neither true nor false positive
                    hit = (img, best_k) not in used
                    used.add((img, best_k))
                    tp.append(hit)
                    fp.append(not hit)
                else:
                    tp.append(False)
                    fp.append(True)
            tp_c, fp_c = np.cumsum(tp, dtype=float), np.cumsum(fp, dtype=float)
            rec = tp_c / max(npos, 1)
            prec = tp_c / np.maximum(tp_c + fp_c, np.finfo(float).eps)
            per_class.append(_voc07_ap(rec, prec) if len(tp) else 0.0)
        aps[t] = 100 * float(np.mean(per_class))
    return {"AP": float(np.mean(list(aps.values()))), "AP50": aps[50], "AP75": aps[75]}


@pytest.mark.slow
def test_voc_c4_metrics_match_an_independent_voc_evaluation(layout, tmp_path, monkeypatch):
    seen: list[tuple[str, object]] = []
    real = engine.build_evaluator

    def capturing(*a, **k):  # what the evaluator is given, as it is given
        ev = real(*a, **k)
        process = ev.process

        def keep(inputs, outputs):
            seen.extend((i["image_id"], o["instances"].to("cpu")) for i, o in zip(inputs, outputs))
            return process(inputs, outputs)

        ev.process = keep
        return ev

    monkeypatch.setattr(engine, "build_evaluator", capturing)
    tr, te = voc_specs(layout)
    assert _run(tmp_path, "det-c4", ["--dataset", "vocshapes", "--train", tr, "--test", te], "random") == 0
    (rec,) = records.load_records(tmp_path / "res")
    assert rec["benchmark"] == "det-c4-vocshapes" and rec["protocol"]["dataset"]["format"] == "voc"
    assert rec["protocol"]["dataset"]["classes"] == sorted(CLASSES) and set(rec["metrics"]) == {"bbox"}
    assert sum(len(inst) for _, inst in seen) > 0
    want = _independent_voc(layout.voc2007, "test", sorted(CLASSES), seen)
    for key in ("AP", "AP50", "AP75"):
        assert rec["metrics"]["bbox"][key] == pytest.approx(want[key], abs=1e-6), key
