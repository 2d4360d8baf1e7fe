"""--jobs: trials side by side in spawned processes, with the records a sequential run writes."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from mocobench import records
from mocobench.runner import RunnerError
from mocobench.runner.parallel import auto_jobs
from tests.runner.test_runner import _run


def test_auto_jobs_rule():
    assert auto_jobs(None, synthetic=True, num_gpus=0, trials=6) == 2
    assert auto_jobs(None, synthetic=True, num_gpus=0, trials=1) == 1      # nothing to overlap
    assert auto_jobs(None, synthetic=False, num_gpus=0, trials=6) == 1     # real data: as asked only
    assert auto_jobs(None, synthetic=True, num_gpus=1, trials=6) == 1
    assert auto_jobs(3, synthetic=False, num_gpus=0, trials=2) == 2        # never more than the trials
    for bad, gpus in ((0, 0), (2, 1)):
        with pytest.raises(RunnerError, match="--jobs"):
            auto_jobs(bad, synthetic=True, num_gpus=gpus, trials=4)


@pytest.mark.slow
def test_two_jobs_run_trials_at_once_and_write_the_sequential_records(synthetic_layout, tmp_path, capsys):
    assert _run(synthetic_layout, tmp_path, "voc-det", "random", extra=["--trials", "2", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 trial(s), 2 at a time" in out
    recs = sorted(records.load_records(tmp_path / "results"), key=lambda r: r["trial"])
    assert [(r["trial"], r["seed"]) for r in recs] == [(0, 1000), (1, 1001)]
    # the same record paths (protocol hash) as the sequential plan
    planned = _run(synthetic_layout, tmp_path / "dry", "voc-det", "random", extra=["--trials", "2", "--dry-run"])
    assert planned == 0 and str(recs[0]["protocol_hash"])[:12] in capsys.readouterr().out
    # they overlapped: each started before the other ended
    spans = []
    for r in recs:
        lines = [json.loads(x) for x in open(f"{r['provenance']['output_dir']}/attempts.jsonl")]
        start = next(x for x in lines if x["event"] == "start")["started"]
        end = next(x for x in lines if x["event"] == "end")
        spans.append((start, end["seconds"]))
    t = [(datetime.fromisoformat(s), datetime.fromisoformat(s) + timedelta(seconds=d)) for s, d in spans]
    overlap = min(t[0][1], t[1][1]) - max(t[0][0], t[1][0])
    assert overlap > timedelta(seconds=1), t
    # nothing is re-run by a second call
    assert _run(synthetic_layout, tmp_path, "voc-det", "random", extra=["--trials", "2", "--jobs", "2"]) == 0
    assert "0 record(s) written" in capsys.readouterr().out
