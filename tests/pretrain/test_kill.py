"""Kill anywhere, lose nothing: pretraining killed with SIGKILL at several points (mid-epoch, and during
checkpoint writes), resumed each time with --resume auto, ends with a final checkpoint bitwise equal to
the uninterrupted run (CPU, train.deterministic=true); a half-written checkpoint is never taken for one."""
from __future__ import annotations

import json
import random
import time

import torch

from mocobench.pretrain import checkpoint as ckpt_lib
from tests.helpers.kill import run_until
from tests.helpers.pretrain import tiny_overrides


def _tmp_files(out):
    return [p for p in out.glob(".tmp-*")] if out.is_dir() else []


def _steps_logged(out):
    log = out / "log.jsonl"
    return sum(1 for ln in log.read_text().splitlines() if '"kind": "step"' in ln) if log.is_file() else 0


def test_sigkill_at_random_points_and_during_checkpoint_writes_resumes_bitwise(finished_run, data, tmp_path):
    _, _, reference, _ = finished_run  # the same tiny 2-epoch deterministic run, never interrupted
    out = tmp_path / "killed"
    argv = ["-m", "mocobench.pretrain", "train", "--config", "demo",
            *tiny_overrides(data / "train", out, "train.deterministic=true")]
    rng = random.Random(11)
    kills = []
    # 1: during the first checkpoint's write; 2: a random moment after the next logged step (mid-epoch);
    # 3: during the next checkpoint write; then run to the end.
    plans = ["write", "step", "write"]
    for attempt, plan in enumerate(plans + ["finish"]):
        resume = [] if attempt == 0 else ["--resume", "auto"]
        start_steps, start_tmp = _steps_logged(out), set(_tmp_files(out))
        kill_at = {"time": None}
        delay = rng.uniform(0.0, 0.2)

        def trigger():
            if plan == "write":
                return bool(set(_tmp_files(out)) - start_tmp)  # a temp checkpoint file exists: mid-write
            if plan == "step":
                if kill_at["time"] is None and _steps_logged(out) > start_steps:
                    kill_at["time"] = time.monotonic() + delay
                return kill_at["time"] is not None and time.monotonic() >= kill_at["time"]
            return False

        outcome, err = run_until([*argv[:3], *resume, *argv[3:]], trigger)
        kills.append((plan, outcome))
        if plan == "finish":
            assert outcome == "exited:0", err
        else:
            assert outcome == "killed", (plan, outcome, err)
            # what a kill leaves: never a checkpoint_NNNN file that does not load completely
            for p in out.glob("checkpoint_*.pth.tar"):
                ckpt_lib.load(p)
    assert [k for k, _ in kills] == ["write", "step", "write", "finish"]
    assert _tmp_files(out), "no kill landed inside a checkpoint write"
    assert ckpt_lib.latest_checkpoint(out).name == reference.name  # temp leftovers are never taken
    a, b = torch.load(reference, weights_only=True), torch.load(out / reference.name, weights_only=True)
    for part in ("state_dict", "exchange"):
        _assert_equal(a[part], b[part], part)
    # torch's generator drives the augmentations and the queue; numpy's and Python's global generators are
    # neither seeded nor used by training, so they differ between processes and are not compared
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    _assert_equal(a["optimizer"]["state"], b["optimizer"]["state"], "optimizer")
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    # the log holds each step once, as the uninterrupted run's
    steps = [json.loads(ln)["step"] for ln in (out / "log.jsonl").read_text().splitlines() if '"step"' in ln
             and json.loads(ln)["kind"] == "step"]
    assert steps == sorted(set(steps)) == list(range(1, a["step"] + 1))


def _assert_equal(x, y, where):
    if isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    elif isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            _assert_equal(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)):
            _assert_equal(u, v, f"{where}[{i}]")
    else:
        assert x == y, where
