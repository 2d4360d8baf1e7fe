"""Result records: atomic, never overwritten, validated on read, flattened for pandas."""
import json
import math

import pytest

from mocobench import records
from mocobench.common.hashing import canonical_hash
from mocobench.common.provenance import collect
from mocobench.reporting.aggregate import records_frame


def make_record(trial=0, label="moco-demo", kind="moco", ap=50.0, max_iter=100):
    protocol = {"config_hash": "abc", "max_iter": max_iter, "ims_per_batch": 16, "amp": False}
    return {
        "schema": records.SCHEMA_VERSION, "benchmark": "voc07-det-c4", "task": "detection",
        "init": {"label": label, "kind": kind, "weights": None, "weights_sha256": None,
                 "pretrain": {"run": "output/pretrain/x", "epoch": 3}},
        "protocol": protocol, "protocol_hash": canonical_hash(protocol),
        "trial": trial, "seed": 100 + trial,
        "metrics": {"bbox": {"AP": ap, "AP50": ap + 20, "AP75": ap - 5}},
        "config": "MODEL:\n  DEVICE: cpu\n", "provenance": collect(),
    }


def test_write_then_read_round_trip(tmp_path):
    rec = make_record()
    path = records.write_record(rec, tmp_path)
    assert path == tmp_path / "records" / "voc07-det-c4" / "moco-demo" / rec["protocol_hash"][:12] / "trial00.json"
    back = records.read_record(path)
    assert back["metrics"] == rec["metrics"] and back["_path"] == str(path)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")], "temp file left behind"


def test_finished_trial_is_never_overwritten(tmp_path):
    path = records.write_record(make_record(ap=50.0), tmp_path)
    with pytest.raises(records.RecordError, match="already exists"):
        records.write_record(make_record(ap=99.0), tmp_path)
    assert json.loads(path.read_text())["metrics"]["bbox"]["AP"] == 50.0


def test_tampered_protocol_is_detected(tmp_path):
    path = records.write_record(make_record(), tmp_path)
    data = json.loads(path.read_text())
    data["protocol"]["max_iter"] = 5
    path.write_text(json.dumps(data))
    with pytest.raises(records.RecordError, match="protocol_hash"):
        records.read_record(path)


@pytest.mark.parametrize("breakage, message", [
    (lambda r: r.pop("metrics"), "missing keys"),
    (lambda r: r.update(schema=99), "schema"),
    (lambda r: r["init"].update(kind="imagenet"), "init.kind"),
])
def test_malformed_records_are_refused(tmp_path, breakage, message):
    rec = make_record()
    breakage(rec)
    with pytest.raises(records.RecordError, match=message):
        records.write_record(rec, tmp_path)


def test_bad_label_cannot_escape_the_results_folder(tmp_path):
    with pytest.raises(records.RecordError, match="folder name"):
        records.record_path(tmp_path, "voc", "../evil", "0" * 64, 0)


def test_frame_has_one_row_per_trial_with_flat_metrics(tmp_path):
    for t, ap in enumerate([50.0, 52.0]):
        records.write_record(make_record(trial=t, ap=ap), tmp_path)
    records.write_record(make_record(trial=0, label="supervised", kind="supervised", ap=40.0), tmp_path)
    df = records_frame(records.load_records(tmp_path))
    assert len(df) == 3
    moco = df[df.init == "moco-demo"]
    assert sorted(moco["bbox/AP"]) == [50.0, 52.0]
    assert list(moco["bbox/AP50"].sort_values()) == [70.0, 72.0]
    assert set(df["protocol.max_iter"]) == {100} and set(df["pretrain_epoch"]) == {3}


def test_record_dataclass_writes_what_the_dict_writes(tmp_path):
    d = make_record()
    path = records.write_record(records.Record(**d), tmp_path / "a")
    assert json.loads(path.read_text()) == json.loads(records.write_record(d, tmp_path / "b").read_text())
    assert records.REQUIRED_KEYS == tuple(d)


def _coco_evaluation_without_predictions(tmp_path):
    """Detectron2's own COCOEvaluator on one image with one ground-truth box and a model that predicted nothing."""
    import torch
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import COCOEvaluator
    from detectron2.structures import Boxes, BoxMode, Instances

    name = "records_test_no_predictions"
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [{"file_name": "a.jpg", "image_id": 0, "height": 64, "width": 64,
                                                "annotations": [{"bbox": [8, 8, 40, 40], "bbox_mode": BoxMode.XYXY_ABS,
                                                                 "category_id": 0, "iscrowd": 0}]}])
        MetadataCatalog.get(name).set(thing_classes=["thing"])
    evaluator = COCOEvaluator(name, tasks=("bbox",), distributed=False, output_dir=str(tmp_path))
    evaluator.reset()
    empty = Instances((64, 64), pred_boxes=Boxes(torch.zeros(0, 4)), scores=torch.zeros(0),
                      pred_classes=torch.zeros(0, dtype=torch.long))
    evaluator.process([{"image_id": 0}], [{"instances": empty}])
    return evaluator.evaluate()


def test_a_trial_that_predicts_nothing_records_ap_0_with_the_reason(tmp_path):
    results = _coco_evaluation_without_predictions(tmp_path)
    assert all(math.isnan(v) for v in results["bbox"].values())  # Detectron2's answer: NaN everywhere
    # as the engine writes eval_results.json (NaN -> null), with a sem-seg task beside it that did produce a number
    written = {t: {k: None for k in v} for t, v in results.items()} | {"sem_seg": {"mIoU": 11.8, "fwIoU": float("nan")}}
    for evaluated in (results, written):
        metrics, notes = records.settle_metrics(evaluated)
        assert metrics["bbox"] == {k: 0.0 for k in results["bbox"]}  # COCO AP with GT and no detection is 0
        assert notes == {"bbox": records.NO_PREDICTIONS}
    assert metrics["sem_seg"] == {"mIoU": 11.8, "fwIoU": None}  # a lone NaN beside numbers stays missing
    line = records.result_line(metrics, notes)
    assert line.startswith("bbox AP 0.0 AP50 0.0 AP75 0.0 (no predictions); sem_seg mIoU 11.8"), line


def test_a_task_with_some_numbers_or_no_coco_ap_is_not_called_empty():
    metrics, notes = records.settle_metrics({"bbox": {"AP": 3.0, "APl": float("nan")}, "sem_seg": {"mIoU": None}})
    assert metrics == {"bbox": {"AP": 3.0, "APl": None}, "sem_seg": {"mIoU": None}} and notes == {}
    assert records.result_line(metrics, notes) == "bbox AP 3.0; sem_seg no number"


def test_metric_notes_travel_in_the_record_and_only_when_present(tmp_path):
    d = make_record()
    rec = records.Record(**d, metric_notes={"bbox": records.NO_PREDICTIONS})
    back = records.read_record(records.write_record(rec, tmp_path))
    assert back["metric_notes"] == {"bbox": "no predictions"}
    assert "metric_notes" not in records.Record(**d).to_dict()
