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
                     their time unknown), "started", "finished"}
    }
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


REQUIRED_KEYS = tuple(f.name for f in dataclasses.fields(Record))


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
