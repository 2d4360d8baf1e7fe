"""Result records: one JSON file per finished trial, the single source of every table and plot.

A record is written once and never overwritten. Its path is derived from what identifies a trial:

    <results>/records/<benchmark>/<init label>/<protocol hash[:12]>/trial<NN>.json

Schema (version 1); writers fill every key, readers rely on them:

    {
      "schema": 1,
      "benchmark": "voc0712-det-c4",          # protocol family, e.g. voc07-det-c4, coco-mask-fpn-1x
      "task": "detection",                     # detection | instance_seg | sem_seg | keypoints
      "init": {"label": "moco-v2-demo",        # table row name
               "kind": "moco" | "supervised" | "random" | "other",
               "weights": "path or null", "weights_sha256": "... or null",
               "pretrain": {"run": "dir or null", "epoch": int or null},
               "format": "checkpoint layout the converter detected (swav, dino, ...), a .pkl's origin
                          (caffe2, torchvision, detectron2), or null",
               "msra": true when Detectron2's MSRA input settings were applied (an MSRA Caffe2 file),
               "kind_reason": "declared, or the evidence in the file for the kind",
               "kind_declared": true when the user declared the kind (--kind, --supervised),
               "input_reason": "which input settings were applied (MSRA or torchvision RGB) and why"},
                                               # (format, kind_reason, kind_declared, input_reason: absent in
                                               # records written before they existed; readers use .get)
      "protocol": {...},                       # everything that must match for trials to be averaged:
                                               # config_hash, max_iter, ims_per_batch, base_lr,
                                               # scaling, amp, train/test datasets, synthetic flag
      "protocol_hash": "sha256 of the canonical JSON of protocol",
      "trial": 0, "seed": 123,
      "metrics": {"bbox": {"AP": .., "AP50": .., "AP75": ..}, "segm": {...}, "keypoints": {...},
                  "sem_seg": {"mIoU": ..}},
      "config": "resolved config (YAML text)",
      "provenance": {"git_sha", "versions", "device", "num_gpus", "num_procs" (per machine), "num_machines",
                     "wall_time_s" (attempts that ended), "attempts", "killed_attempts" (ended by a kill,
                     their time unknown), "started", "finished"},
      "metric_notes": {"bbox": "no predictions", ...}   # optional: why a task's numbers are what they are
    }

A trial that detects nothing: Detectron2's COCO-style evaluators (bbox, segm, keypoints) return NaN for every
metric when the model made no prediction. With ground truth present and no detection, COCO AP is 0 (recall is 0
at every threshold), so the record holds 0 for that task's numbers and "no predictions" in `metric_notes`
(settle_metrics); the run's result line and the tables say so. A NaN in a task that has other numbers (e.g.
APl without large objects) stays null: there is nothing to measure.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mocobench.common.atomic import atomic_write
from mocobench.common.errors import UsageError
from mocobench.common.hashing import canonical_hash

SCHEMA_VERSION = 1
INIT_KINDS = ("moco", "supervised", "random", "other")
SYNTHETIC_SUFFIX = "-synthetic"  # record name of a benchmark run on the built-in synthetic data


class RecordError(UsageError):
    """A record is malformed, or writing it would overwrite a finished trial (a UsageError: the command line
    prints it as one line, exit status 2)."""


@dataclass
class Record:
    """One finished trial (the schema above); written as JSON with sorted keys."""
    schema: int
    benchmark: str
    task: str
    init: dict[str, Any]
    protocol: dict[str, Any]
    protocol_hash: str
    trial: int
    seed: int
    metrics: dict[str, dict[str, float | None]]
    config: str
    provenance: dict[str, Any]
    metric_notes: dict[str, str] = field(default_factory=dict)  # task -> reason (NO_PREDICTIONS); optional

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not out["metric_notes"]:  # written only when there is something to say (older readers: unchanged)
            del out["metric_notes"]
        return out


REQUIRED_KEYS = tuple(f.name for f in dataclasses.fields(Record)
                      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
NO_PREDICTIONS = "no predictions"
COCO_AP_TASKS = ("bbox", "segm", "keypoints")  # Detectron2's COCO-style evaluators: NaN everywhere = no predictions


def _number(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def settle_metrics(results: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, float | None]], dict[str, str]]:
    """An evaluation's results (Detectron2's, or eval_results.json: NaN written as null) -> the record's metrics
    and metric_notes. A COCO-AP task without a single number is a model that predicted nothing: 0 for each of
    its metrics, with the reason. Any other missing number stays None."""
    metrics = {task: {k: _number(v) for k, v in values.items()} for task, values in results.items()}
    notes = {}
    for task, values in metrics.items():
        if task in COCO_AP_TASKS and values and all(v is None for v in values.values()):
            metrics[task] = {k: 0.0 for k in values}
            notes[task] = NO_PREDICTIONS
    return metrics, notes


def result_line(metrics: dict[str, dict[str, float | None]], notes: dict[str, str] | None = None) -> str:
    """The console's one line per trial, e.g. "bbox AP 0.0 AP50 0.0 AP75 0.0 (no predictions); segm ..."."""
    parts = []
    for task, values in metrics.items():
        shown = " ".join(f"{k} {v:.1f}" for k in ("AP", "AP50", "AP75", "mIoU") if (v := values.get(k)) is not None)
        why = (notes or {}).get(task)
        parts.append(f"{task} {shown or 'no number'}" + (f" ({why})" if why else ""))
    return "; ".join(parts)


def record_path(results_dir: str | os.PathLike, benchmark: str, init_label: str, protocol_hash: str,
                trial: int) -> Path:
    for name, value in (("benchmark", benchmark), ("init label", init_label)):
        if not value or "/" in value or value.startswith("."):
            raise RecordError(f"{name} {value!r} cannot be used as a folder name: give a name without '/' "
                              f"that does not start with '.' (e.g. --label my-run)")
    return Path(results_dir) / "records" / benchmark / init_label / protocol_hash[:12] / f"trial{trial:02d}.json"


def validate(record: dict[str, Any], source: str = "record") -> dict[str, Any]:
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise RecordError(f"{source}: missing keys {missing}")
    if record["schema"] != SCHEMA_VERSION:
        raise RecordError(f"{source}: schema {record['schema']!r}, this code reads {SCHEMA_VERSION}")
    if record["init"].get("kind") not in INIT_KINDS:
        raise RecordError(f"{source}: init.kind must be one of {INIT_KINDS}, got {record['init'].get('kind')!r}")
    if record["protocol_hash"] != canonical_hash(record["protocol"]):
        raise RecordError(f"{source}: protocol_hash does not match its protocol (edited by hand?)")
    return record


def write_record(record: Record | dict[str, Any], results_dir: str | os.PathLike) -> Path:
    """Write a finished trial's record atomically. Refuses (RecordError) if the trial already has one."""
    if isinstance(record, Record):
        record = record.to_dict()
    validate(record)
    path = record_path(results_dir, record["benchmark"], record["init"]["label"], record["protocol_hash"],
                       record["trial"])
    try:
        with atomic_write(path, overwrite=False, mode="w") as f:
            json.dump(record, f, indent=2, sort_keys=True, default=str)
    except FileExistsError:
        raise RecordError(f"{path} already exists: trial {record['trial']} of {record['benchmark']} / "
                          f"{record['init']['label']} is finished. Use another --trials range, or move "
                          f"the old record away yourself.") from None
    return path


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
        try:
            record = json.load(f)
        except json.JSONDecodeError as e:
            raise RecordError(f"{path}: not valid JSON ({e})") from None
    record = validate(record, str(path))
    record["_path"] = str(path)
    return record


def find_records(results_dir: str | os.PathLike) -> list[Path]:
    root = Path(results_dir) / "records"
    return sorted(p for p in root.rglob("*.json") if not p.name.startswith(".")) if root.is_dir() else []


def load_records(results_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return [read_record(p) for p in find_records(results_dir)]
