"""Result records: one JSON file per finished trial, the single source of every table and plot.

A record is written once and never overwritten. Its path is derived from what identifies a trial:

    <results>/records/<benchmark>/<init label>/<protocol hash[:12]>/trial<NN>.json

Schema (version 1); writers fill every key, readers rely on them:

    {
      "schema": 1,
      "benchmark": "voc0712-det-c4",          # protocol family, e.g. voc07-det-c4, coco-mask-fpn-1x
      "task": "detection",                     # detection | instance_seg | sem_seg
      "init": {"label": "moco-v2-demo",        # table row name
               "kind": "moco" | "supervised" | "random" | "other",
               "weights": "path or null", "weights_sha256": "... or null",
               "pretrain": {"run": "dir or null", "epoch": int or null}},
      "protocol": {...},                       # everything that must match for trials to be averaged:
                                               # config_hash, max_iter, ims_per_batch, base_lr,
                                               # scaling, amp, train/test datasets, synthetic flag
      "protocol_hash": "sha256 of the canonical JSON of protocol",
      "trial": 0, "seed": 123,
      "metrics": {"bbox": {"AP": .., "AP50": .., "AP75": ..}, "segm": {...}, "sem_seg": {"mIoU": ..}},
      "config": "resolved config (YAML text)",
      "provenance": {"git_sha", "versions", "device", "num_gpus", "num_machines",
                     "wall_time_s", "started", "finished"}
    }
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from mocobench.common.atomic import atomic_write

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema", "benchmark", "task", "init", "protocol", "protocol_hash", "trial", "seed",
                 "metrics", "config", "provenance")
INIT_KINDS = ("moco", "supervised", "random", "other")


class RecordError(ValueError):
    """A record is malformed, or writing it would overwrite a finished trial."""


def canonical_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of obj (sorted keys, no whitespace)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def record_path(results_dir: str | os.PathLike, benchmark: str, init_label: str, protocol_hash: str,
                trial: int) -> Path:
    for name, value in (("benchmark", benchmark), ("init label", init_label)):
        if not value or "/" in value or value.startswith("."):
            raise RecordError(f"{name} {value!r} cannot be used as a folder name")
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


def write_record(record: dict[str, Any], results_dir: str | os.PathLike) -> Path:
    """Write a finished trial's record atomically. Refuses (RecordError) if the trial already has one."""
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


def flatten_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """{"bbox": {"AP": 1}} -> {"bbox/AP": 1}."""
    return {f"{task}/{name}": value for task, values in metrics.items() for name, value in values.items()}


def records_frame(records: Iterable[dict[str, Any]]):
    """One row per trial: identity columns, protocol fields (prefixed "protocol."), flattened metrics."""
    import pandas as pd

    rows = []
    for r in records:
        row = {"benchmark": r["benchmark"], "task": r["task"], "init": r["init"]["label"],
               "init_kind": r["init"]["kind"], "pretrain_epoch": (r["init"].get("pretrain") or {}).get("epoch"),
               "protocol_hash": r["protocol_hash"], "trial": r["trial"], "seed": r["seed"],
               "path": r.get("_path")}
        row.update({f"protocol.{k}": json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                    for k, v in r["protocol"].items()})
        row.update(flatten_metrics(r["metrics"]))
        rows.append(row)
    return pd.DataFrame(rows)
