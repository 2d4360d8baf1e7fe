"""Pretraining logs: <run dir>/log.jsonl, one JSON object per line, written by the trainer
(`append_entry`, `trim_after`) and read by the reporting (`read_log`).

Each line has "epoch", "step", "loss", "lr" and sometimes "knn_top1". pretrain/ also writes "kind":
"step" lines (loss over the last logging window), "skipped" lines (an unreadable training image, once
per run: "path", "reason", "epoch", "step"; `skipped_images` reads them), "cpu_decoded" lines (the same
fields: a file decoded on the CPU under data.decode=gpu) and "epoch" lines (the epoch's
mean loss, kNN), whose
"epoch" is the 0-based index of the epoch just finished; `finished_epochs` puts those on the axis of
checkpoint epochs (checkpoint N = N finished epochs), the axis of the transfer-vs-epoch plots.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from mocobench.common.atomic import append_line, write_text

LOG_NAME = "log.jsonl"
REQUIRED = ("epoch", "step", "loss", "lr")


class LogError(ValueError):
    """A pretraining log is missing or malformed."""


def log_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / LOG_NAME


def append_entry(run_dir: str | os.PathLike, entry: dict) -> None:
    append_line(log_path(run_dir), json.dumps(entry))


def trim_after(run_dir: str | os.PathLike, step: int) -> None:
    """Drop the lines written after the checkpoint at `step` (by an interrupted run resumed from it): every
    line of a later step. The lines of `step` itself (its window and epoch lines) were written before the
    checkpoint and stay."""
    path = log_path(run_dir)
    if not path.is_file():
        return
    lines = [(ln, json.loads(ln)) for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln, e in lines if e["step"] <= step]
    write_text(path, "".join(ln + "\n" for ln in keep))


def skipped_images(run_dir: str | os.PathLike, kind: str = "skipped") -> list[str]:
    """Paths of the unreadable images the run reported (its "skipped" lines), in order; kind="cpu_decoded": the
    files it decoded on the CPU under data.decode=gpu."""
    path = log_path(run_dir)
    if not path.is_file():
        return []
    entries = (json.loads(ln) for ln in path.read_text().splitlines() if ln.strip())
    return [e["path"] for e in entries if e.get("kind") == kind]


def read_log(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The log sorted by step; columns epoch, step, loss, lr, knn_top1 (NaN where absent), kind, finished_epochs."""
    path = log_path(run_dir)
    if not path.is_file():
        raise LogError(f"{path} not found: pass a pretraining run directory (one with {LOG_NAME}), e.g. "
                       f"output/pretrain/<run>")
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise LogError(f"{path}:{lineno}: not a JSON object ({e.msg})") from None
            if not isinstance(obj, dict):
                raise LogError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            if obj.get("kind") in ("skipped", "cpu_decoded"):
                continue  # a note on an image, not a measurement
            needed = REQUIRED if "knn_top1" not in obj else ("epoch", "step")
            missing = [k for k in needed if k not in obj]
            if missing:
                raise LogError(f"{path}:{lineno}: missing {missing} (each line needs {list(REQUIRED)}, "
                               f"evaluation lines may carry only epoch, step and knn_top1)")
            row = {k: math.nan if obj.get(k) is None else obj[k] for k in REQUIRED + ("knn_top1",)}
            row["kind"] = obj.get("kind")
            rows.append(row)
    if not rows:
        raise LogError(f"{path} is empty: the run has not logged a step yet")
    frame = pd.DataFrame(rows)
    try:
        frame = frame.astype({k: float for k in REQUIRED + ("knn_top1",)})
    except (TypeError, ValueError) as e:
        raise LogError(f"{path}: a value of {list(REQUIRED) + ['knn_top1']} is not a number ({e})") from None
    frame["finished_epochs"] = frame["epoch"] + (frame["kind"] == "epoch")
    return frame.sort_values("step", kind="stable").reset_index(drop=True)
