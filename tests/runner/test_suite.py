"""The suite: the plan and its estimate (own records of the same benchmark and device, else Detectron2's
model-zoo figures, else unknown), the order, finished trials skipped, a failing benchmark carried past
(Detectron2's launch faked: no training), the benchmark list from the registry; and one real
`run suite --only` of two benchmarks on the tiny built-in data."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml

from mocobench import records
from mocobench.__main__ import main as cli
from mocobench.common.hashing import canonical_hash
from mocobench.common.provenance import device_info
from mocobench.detection.engine import METRICS_FILE
from mocobench.runner import RunnerError
from mocobench.runner.benchmarks import BENCHMARKS
from mocobench.runner.estimate import MODEL_ZOO, RECORDS, UNKNOWN, ZOO, estimate_trial, local_device_key
from mocobench.runner.plan import plan_trial
from mocobench.runner.run import RunRequest
from mocobench.runner.suite import paper_benchmarks, plan_suite, render_plan, select_benchmarks
from mocobench.runner.weights import resolve_init
from tests.runner.test_runner import TINY


def _request(layout, tmp_path, **kw):
    base = dict(benchmark="suite", weights=["random"], data="synthetic", synthetic_root=str(layout.root.parent),
                synthetic_preset="tiny", num_gpus=0, results=str(tmp_path / "results"),
                output_dir=str(tmp_path / "out"), trials=2, jobs=1)
    base.update(kw)
    return RunRequest(**base)


def _fake_record(benchmark, wall, max_iter, *, hostname=None, trial=0):
    dev = device_info()
    if hostname:
        dev = dict(dev, hostname=hostname)
    protocol = {"benchmark": benchmark, "max_iter": max_iter, "note": f"{hostname}-{trial}"}
    return {"benchmark": benchmark, "protocol": protocol, "protocol_hash": canonical_hash(protocol), "trial": trial,
            "provenance": {"wall_time_s": wall, "device": dev, "num_gpus": 0, "num_machines": 1}}


def test_benchmarks_come_from_the_registry():
    names = paper_benchmarks()
    assert names == [n for n, b in BENCHMARKS.items() if b.epochs is None]  # new registrations join by themselves
    assert {"det-fpn", "mask-c4"}.isdisjoint(names) and {"voc0712-det-c4", "cityscapes-seg-fcn"} <= set(names)
    assert select_benchmarks(["voc-det,voc-seg"], None) == ["voc0712-det-c4", "voc-seg-fcn"]
    assert "voc0712-det-c4" not in select_benchmarks(None, ["voc-det"])
    with pytest.raises(RunnerError, match="not a benchmark of the suite"):
        select_benchmarks(["det-fpn"], None)


def test_plan_and_estimate_from_fake_records(synthetic_layout, tmp_path):
    """Own records of the same benchmark on this device give s/iter (median of wall time / max_iter); records
    of another machine are ignored; the estimated benchmark comes first (cheap first), the unknown after."""
    recs = [_fake_record("voc-seg-fcn-synthetic", w, 40) for w in (20.0, 30.0, 100.0)]
    recs.append(_fake_record("voc-seg-fcn-synthetic", 4000.0, 40, hostname="elsewhere"))
    recs.append(_fake_record("voc07-det-c4-synthetic", 1.0, 40, hostname="elsewhere"))
    plan = plan_suite(_request(synthetic_layout, tmp_path), ["voc07-det-c4", "voc-seg-fcn"], records=recs)
    assert [e.name for e in plan.entries] == ["voc-seg-fcn", "voc07-det-c4"]
    seg, det = plan.entries
    s_iter = statistics.median([20.0 / 40, 30.0 / 40, 100.0 / 40])
    assert [e.kind for e in seg.estimates] == [RECORDS, RECORDS]
    assert seg.estimates[0].seconds == pytest.approx(s_iter * 80)  # the demo FCN schedule: 80 iterations
    assert seg.todo_seconds == pytest.approx(2 * s_iter * 80) and seg.todo_device_hours == pytest.approx(
        2 * s_iter * 80 / 3600)
    assert [e.kind for e in det.estimates] == [UNKNOWN, UNKNOWN] and det.todo_seconds is None
    text = render_plan(plan)
    assert "3 record(s) of voc-seg-fcn-synthetic on this device" in text and "unknown: no record" in text
    assert f"{2 * s_iter * 80 / 3600:.3g} CPU machine-hours + unknown for 1" in text
    assert "2 (0 done)" in text and " 80 " in text and " 110 " in text  # trials, iterations of both demos
    # --jobs 2 (the built-in default on >= 2 cores): the records' times are of trials sharing the machine, and two
    # run at once, so the wall clock and machine-hours left are half the sum
    (seg2,) = plan_suite(_request(synthetic_layout, tmp_path, jobs=2), ["voc-seg-fcn"], records=recs).entries
    assert seg2.jobs == 2 and seg2.estimates == seg.estimates
    assert seg2.todo_seconds == pytest.approx(s_iter * 80) and seg2.todo_device_hours == pytest.approx(
        s_iter * 80 / 3600)


def test_model_zoo_estimate_on_the_real_protocol(tmp_path):
    """No own records: the VOC R50-C4 protocol on 8 GPUs takes the zoo's 0.537 s/iter at batch 16; on one GPU the
    scaling rule doubles the iterations and halves the batch, and the GPU-hours stay the same."""
    init = resolve_init("random", cache_dir=tmp_path)
    bench = BENCHMARKS["voc0712-det-c4"]
    out = {}
    for gpus, ims in ((8, 2), (1, 8)):
        args = RunRequest(bench.name, opts=[], num_gpus=gpus, amp=False, ims_per_gpu=ims, seed=0,
                          output_dir=str(tmp_path / "o"), results=str(tmp_path / "r"), norm=None)
        plan = plan_trial(bench, init, 0, request=args, synthetic=False, num_devices=gpus)
        out[gpus] = estimate_trial(plan, [], num_gpus=gpus, key=("gpu", "V100", gpus, 1))
    zoo = ZOO["voc_faster_c4"]
    assert out[8].kind == MODEL_ZOO and "faster_rcnn_R_50_C4" in out[8].source
    assert out[8].seconds == pytest.approx(zoo.seconds_per_iter * 24000)  # 8 GPUs, batch 16: the zoo's own setting
    assert out[1].seconds == pytest.approx(zoo.seconds_per_iter * 24000 * 8)
    assert out[8].device_hours == pytest.approx(out[1].device_hours) == pytest.approx(0.537 * 24000 * 8 / 3600)
    # the same plan on a CPU: the zoo's GPU figures do not apply
    assert estimate_trial(plan, [], num_gpus=0, key=local_device_key(0)).kind == UNKNOWN


def _fake_launch(calls, fail: str | None = None):
    """Detectron2's launch without training: writes the metrics file a trial's evaluation would write."""
    def launch(fn, num_gpus, *, num_machines, machine_rank, dist_url, args):
        cfg = yaml.safe_load(args[0])
        out = Path(cfg["OUTPUT_DIR"])
        calls.append(out)
        if fail and fail in str(out):
            raise RuntimeError(f"simulated crash in {fail}")
        metrics = {"sem_seg": {"mIoU": 50.0}} if cfg["MODEL"]["META_ARCHITECTURE"] == "SemanticSegmentor" else \
            {"bbox": {"AP": 10.0, "AP50": 20.0, "AP75": 5.0}}
        (out / METRICS_FILE).write_text(json.dumps(metrics))
    return launch


def test_suite_skips_finished_trials_and_carries_on_past_a_failing_benchmark(synthetic_layout, tmp_path, monkeypatch,
                                                                            capsys):
    import detectron2.engine

    calls = []
    monkeypatch.setattr(detectron2.engine, "launch", _fake_launch(calls, fail="voc-seg-fcn"))
    argv = ["run", "suite", "--only", "voc07-det-c4,voc-seg-fcn", "--skip", "cityscapes-seg", "--only",
            "cityscapes-seg-fcn", "--weights", "random", "--data", "synthetic", "--synthetic-root",
            str(synthetic_layout.root.parent), "--synthetic-preset", "tiny", "--num-gpus", "0", "--jobs", "1",
            "--trials", "1", "--results", str(tmp_path / "results"), "--output-dir", str(tmp_path / "out")]
    assert cli(argv) == 1  # one benchmark failed: the exit status says so
    out = capsys.readouterr().out
    assert "FAILED voc-seg-fcn: RuntimeError: simulated crash" in out
    written = {r["benchmark"] for r in records.load_records(tmp_path / "results")}
    assert written == {"voc07-det-c4-synthetic"}  # the other benchmark ran although voc-seg-fcn failed first
    assert len(calls) == 2 and "cityscapes" not in " ".join(map(str, calls))  # --skip wins over --only
    assert (tmp_path / "results" / "card" / "card.html").exists()
    # again, nothing failing now: the finished trial is skipped (no launch), the failed one runs
    calls.clear()
    monkeypatch.setattr(detectron2.engine, "launch", _fake_launch(calls))
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "1 (1 done)" in out and "finished already" in out
    assert [p.parts[-4] for p in calls] == ["voc-seg-fcn-synthetic"]
    assert {r["benchmark"] for r in records.load_records(tmp_path / "results")} == {
        "voc07-det-c4-synthetic", "voc-seg-fcn-synthetic"}


def test_dry_run_prints_only_the_plan(synthetic_layout, tmp_path, capsys):
    argv = ["run", "suite", "--only", "voc-seg", "--weights", "random", "--data", "synthetic", "--synthetic-root",
            str(synthetic_layout.root.parent), "--synthetic-preset", "tiny", "--num-gpus", "0", "--dry-run",
            "--results", str(tmp_path / "results"), "--output-dir", str(tmp_path / "out")]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "Suite plan" in out and "voc-seg-fcn-synthetic" in out and "Estimate of what is left" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "out").exists()


def test_missing_baseline_is_reported_once_for_the_whole_suite(synthetic_layout, tmp_path, capsys):
    """--skip-missing: a baseline not trained yet is left out of every benchmark's plan with one warning, not one
    per benchmark; the initialisations that exist are still planned everywhere."""
    argv = ["run", "suite", "--only", "voc-seg,voc-det", "--weights", str(tmp_path / "not_trained"), "--weights",
            "random", "--skip-missing", "--data", "synthetic", "--synthetic-root", str(synthetic_layout.root.parent),
            "--synthetic-preset", "tiny", "--num-gpus", "0", "--dry-run", "--results", str(tmp_path / "results"),
            "--output-dir", str(tmp_path / "out")]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert out.count("SKIPPED") == 1 and "not_trained" in out
    rows = [line for line in out.splitlines() if "-synthetic " in line and "random" in line]
    assert {r.split()[1] for r in rows} == {"voc-seg-fcn-synthetic", "voc0712-det-c4-synthetic"}


@pytest.mark.slow
def test_real_suite_only_two_benchmarks_on_tiny_data(synthetic_layout, tmp_path, capsys):
    argv = ["run", "suite", "--only", "voc07-det-c4,voc-seg-fcn", "--weights", "random", "--data", "synthetic",
            "--synthetic-root", str(synthetic_layout.root.parent), "--synthetic-preset", "tiny", "--num-gpus", "0",
            "--jobs", "1", "--trials", "1", "--results", str(tmp_path / "results"), "--output-dir",
            str(tmp_path / "out"), "--opts", *TINY]
    assert cli(argv) == 0
    recs = records.load_records(tmp_path / "results")
    assert sorted(r["benchmark"] for r in recs) == ["voc-seg-fcn-synthetic", "voc07-det-c4-synthetic"]
    card = tmp_path / "results" / "card"
    assert sorted(p.name for p in card.iterdir()) == ["card.csv", "card.html", "card.md", "card.png"]
    md = (card / "card.md").read_text()
    assert "VOC sem seg mIoU" in md and "VOC07 det AP50" in md and "| random |" in md
    # the next plan estimates from these records (same benchmark, same device)
    assert cli([*argv[:-len(TINY) - 1], "--dry-run"]) == 0
    assert "record(s) of voc07-det-c4-synthetic on this device" in capsys.readouterr().out


def test_submitted_suite_is_one_job_that_reruns_the_suite_on_each_node(synthetic_layout, tmp_path, capsys):
    """--submit --dry-run: the suite is planned here on the job's devices, and each node's command is the same
    `run suite ...` (so a requeue resumes the whole suite); nothing is submitted."""
    slurm = tmp_path / "slurm"
    argv = ["run", "suite", "--only", "voc-seg", "--weights", "random", "--data", "synthetic", "--synthetic-root",
            str(synthetic_layout.root.parent), "--synthetic-preset", "tiny", "--results", str(tmp_path / "results"),
            "--output-dir", str(tmp_path / "out"), "--submit", "--nodes", "2", "--gpus-per-node", "2",
            "--slurm-folder", str(slurm), "--dry-run"]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "Suite plan" in out and "voc-seg-fcn-synthetic" in out
    nodes = [line.split() for line in out.splitlines() if "--machine-rank" in line]
    assert len(nodes) == 2 and all(line[1:5] == ["-m", "mocobench", "run", "suite"] for line in nodes)
    assert [line[line.index("--machine-rank") + 1] for line in nodes] == ["0", "1"]
    assert not slurm.exists() and not (tmp_path / "out").exists()
