"""Plots carry the table's numbers (bar heights, error bars, epoch curves) and the logs' values."""
from __future__ import annotations

import json
import statistics

import pytest

from mocobench.pretrain import log as pretrain_logs
from mocobench.records import load_records, write_record
from mocobench.reporting import aggregate, plots
from tests.helpers.records import VOC_TRIALS, det, make_record, write_voc


def test_bars_are_means_with_sample_std_error_bars(tmp_path):
    trials = dict(VOC_TRIALS)
    trials[("single", "other")] = [det(70.0, 45.0, 47.0)]
    write_voc(tmp_path, trials=trials)
    [table] = aggregate.build_tables(load_records(tmp_path), reference=aggregate.load_reference())
    fig = plots.bar_figure(table)
    containers = {c.get_label(): c for c in fig.axes[0].containers}
    for (label, _), values in trials.items():
        bars = containers[f"{label} (n={len(values)})"]
        for patch, metric in zip(bars.patches, ("AP50", "AP", "AP75")):
            assert patch.get_height() == pytest.approx(statistics.mean(v["bbox"][metric] for v in values))
        if len(values) == 1:
            assert bars.errorbar is None  # one trial: no std, no error bar
            continue
        segments = bars.errorbar.lines[2][0].get_segments()
        for seg, metric in zip(segments, ("AP50", "AP", "AP75")):
            half = (seg[1][1] - seg[0][1]) / 2
            assert half == pytest.approx(statistics.stdev(v["bbox"][metric] for v in values))
    reported = [c for label, c in containers.items() if "(reported" in label]
    assert len(reported) == len(table.reference) == 6
    assert all(p.get_hatch() == "//" for c in reported for p in c.patches)
    assert "MoCo IG-1B (reported, unverified)" in containers


def test_transfer_vs_epoch_curve_per_pretraining_run(tmp_path):
    run = str(tmp_path / "run1")
    values = {100: [50.0, 51.0], 200: [55.0, 55.4], 400: [57.0]}
    for epoch, aps in values.items():
        for trial, ap in enumerate(aps):
            write_record(make_record("voc0712-det-c4", f"run1-ep{epoch}", "moco", trial, det(80, ap, 60),
                                     pretrain={"run": run, "epoch": epoch}), tmp_path)
    write_record(make_record("voc0712-det-c4", "sup", "supervised", 0, det(81, 53.5, 58.8)), tmp_path)
    [table] = aggregate.build_tables(load_records(tmp_path))
    fig = plots.epoch_figure(table)
    ap_axis = fig.axes[[c.header for c in table.columns].index("AP")]
    line = next(c for c in ap_axis.containers if c.get_label() == "run1").lines[0]  # errorbar's data line
    assert list(line.get_xdata()) == [100, 200, 400]
    assert list(line.get_ydata()) == pytest.approx([statistics.mean(v) for v in values.values()])
    sup = next(line for line in ap_axis.get_lines() if line.get_label() == "sup")
    assert sup.get_ydata()[0] == pytest.approx(53.5)


def test_no_epoch_curve_from_a_single_epoch(tmp_path):
    write_record(make_record("voc0712-det-c4", "run1-ep100", "moco", 0, det(80, 50, 60),
                             pretrain={"run": "r", "epoch": 100}), tmp_path)
    [table] = aggregate.build_tables(load_records(tmp_path))
    assert plots.epoch_figure(table) is None


def _write_log(run, lines):
    run.mkdir(parents=True, exist_ok=True)
    (run / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_pretraining_curves_from_the_log(tmp_path):
    # The trainer's format: "step" lines (window loss) and "epoch" lines (epoch mean, kNN, 0-based epoch index).
    steps = [{"kind": "step", "epoch": e, "step": 10 * e + s, "loss": 9.0 - 0.1 * (10 * e + s), "lr": 0.03,
              "pairs_per_s": 100.0} for e in range(3) for s in range(1, 11)]
    epochs = [{"kind": "epoch", "epoch": e, "step": 10 * e + 10, "loss": 8.5 - e, "lr": 0.03, "knn_top1": 10.0 + e}
              for e in range(3)]
    _write_log(tmp_path / "run", epochs[::-1] + steps)  # written out of order: sorted by step when read
    log = pretrain_logs.read_log(tmp_path / "run")
    fig = plots.pretrain_figure(log, "run")
    loss_line, epoch_dots = fig.axes[0].get_lines()
    assert list(loss_line.get_xdata()) == [x["step"] for x in steps]
    assert list(loss_line.get_ydata()) == pytest.approx([x["loss"] for x in steps])
    assert list(epoch_dots.get_ydata()) == [8.5, 7.5, 6.5]
    knn_line = fig.axes[1].get_lines()[0]
    assert list(knn_line.get_xdata()) == [1, 2, 3]  # epochs finished, the axis of checkpoint epochs
    assert list(knn_line.get_ydata()) == [10.0, 11.0, 12.0]
    out = plots.save_figure(fig, tmp_path / "plots" / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_malformed_log_names_the_line(tmp_path):
    _write_log(tmp_path / "run", [{"epoch": 0, "step": 0, "loss": 1.0, "lr": 0.1}, {"epoch": 0, "loss": 1.0}])
    with pytest.raises(pretrain_logs.LogError, match=r"log.jsonl:2: missing \['step', 'lr'\]"):
        pretrain_logs.read_log(tmp_path / "run")
    (tmp_path / "run" / "log.jsonl").write_text('{"epoch": 0, "step": 0, "loss": 1, "lr": 0.1}\n{oops\n')
    with pytest.raises(pretrain_logs.LogError, match="log.jsonl:2: not a JSON object"):
        pretrain_logs.read_log(tmp_path / "run")
    with pytest.raises(pretrain_logs.LogError, match="not found"):
        pretrain_logs.read_log(tmp_path / "nowhere")
