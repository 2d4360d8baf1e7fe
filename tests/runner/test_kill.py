"""Kill anywhere, lose nothing, for a detection trial: SIGKILL during training resumes from the last
checkpoint; SIGKILL during evaluation resumes after training (nothing retrained) and evaluates; the record
appears once, complete, and a half-written record file is never read as one."""
from __future__ import annotations

from mocobench import records
from tests.helpers.kill import run_until
from tests.runner.test_runner import TINY


def _trial_dir(out):
    found = list(out.glob("*/*/*/trial00"))
    return found[0] if found else None


def _read(path):
    try:
        return path.read_text()
    except OSError:
        return ""


def test_detection_trial_killed_in_training_and_in_evaluation_resumes_without_retraining(synthetic_layout,
                                                                                          tmp_path):
    out, results = tmp_path / "out", tmp_path / "results"
    argv = ["-m", "mocobench", "run", "coco-mask-fpn-1x", "--data", "synthetic", "--synthetic-root",
            str(synthetic_layout.root.parent), "--synthetic-preset", "tiny", "--num-gpus", "0", "--trials", "1",
            "--results", str(results), "--output-dir", str(out), "--weights", "random", "--opts", *TINY]

    def in_training():  # the iteration-2 checkpoint is written, iterations 3-4 are running
        d = _trial_dir(out)
        return d is not None and _read(d / "last_checkpoint").strip() == "model_0000001.pth"

    def in_evaluation():  # training finished (model_final written), inference started
        d = _trial_dir(out)
        return d is not None and (d / "model_final.pth").is_file() and "Start inference" in _read(d / "log.txt")

    outcome, err = run_until(argv, in_training)
    assert outcome == "killed", err
    outcome, err = run_until(argv, in_evaluation)
    assert outcome == "killed", err
    trial = _trial_dir(out)
    log = _read(trial / "log.txt")
    assert "Starting training from iteration 2" in log  # the second attempt resumed, not restarted
    final_mtime = (trial / "model_final.pth").stat().st_mtime_ns
    assert not records.find_records(results)
    # a half-written record (an atomic write's temp file, as a kill leaves it) is never read as a record
    partial = results / "records" / "coco-mask-fpn-1x-synthetic" / "random" / ".tmp-abc.json"
    partial.parent.mkdir(parents=True)
    partial.write_text('{"schema": 1, "benchm')
    assert records.load_records(results) == []

    outcome, err = run_until(argv, lambda: False)
    assert outcome == "exited:0", err
    (rec,) = records.load_records(results)
    assert rec["provenance"]["attempts"] == 3 and rec["provenance"]["killed_attempts"] == 2
    assert {"bbox", "segm"} <= set(rec["metrics"])
    assert "Starting training from iteration 4" in _read(trial / "log.txt")  # evaluation only
    assert (trial / "model_final.pth").stat().st_mtime_ns == final_mtime  # nothing retrained
