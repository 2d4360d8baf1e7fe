"""coco-kp and lvis-mask end to end on the built-in data (a few iterations: records, banner, tables), the
real-data rule for their Detectron2 builtin names, and their tables with the paper's rows and daggers."""
from __future__ import annotations

import pytest

from mocobench import records
from mocobench.__main__ import main as cli
from mocobench.reporting import aggregate
from mocobench.reporting import render as formats
from mocobench.runner import RunnerError
from mocobench.runner.benchmarks import resolve_benchmark
from mocobench.runner.plan import data_mode
from tests.helpers.records import make_record
from tests.runner.test_runner import TINY


def _run(layout, tmp_path, bench):
    argv = ["run", bench, "--data", "synthetic", "--synthetic-root", str(layout.root.parent), "--synthetic-preset",
            "tiny", "--num-gpus", "0", "--results", str(tmp_path / "results"), "--output-dir", str(tmp_path / "out"),
            "--trials", "1", "--jobs", "1", "--weights", "random"]
    return cli(argv + ["--opts", *TINY])


@pytest.mark.slow
@pytest.mark.parametrize("alias,name,task,metrics", [
    ("coco-kp", "coco-kp-fpn-2x", "keypoints", {"bbox", "keypoints"}),
    ("lvis-mask", "lvis-mask-fpn-2x", "instance_seg", {"bbox", "segm"})])
def test_builtin_data_run_writes_records_and_tables(synthetic_layout, tmp_path, capsys, alias, name, task, metrics):
    assert _run(synthetic_layout, tmp_path, alias) == 0
    assert "BUILT-IN SYNTHETIC DATA" in capsys.readouterr().out
    [rec] = records.load_records(tmp_path / "results")
    assert rec["benchmark"] == f"{name}-synthetic" and rec["task"] == task and set(rec["metrics"]) == metrics
    for values in rec["metrics"].values():  # NaN (nothing predicted after 4 iterations) is recorded as None
        assert {"AP", "AP50", "AP75"} <= set(values) and all(v is None or -100 <= v <= 100 for v in values.values())
    if name.startswith("lvis"):
        assert {"APr", "APc", "APf"} <= set(rec["metrics"]["segm"])  # LVISEvaluator's frequency groups
        assert rec["protocol"]["num_classes"] == synthetic_layout.params["lvis_categories"]
    else:
        assert "KEYPOINT_ON: true" in rec["config"] and rec["protocol"]["num_classes"] == 1
    [table] = aggregate.build_tables([rec])
    assert [c.key for c in table.columns] == list(resolve_benchmark(name).table_columns)
    assert table.synthetic and not table.reference


@pytest.mark.parametrize("bench,files", [
    ("coco-kp-fpn-2x", ["coco/annotations/person_keypoints_train2017.json", "coco/train2017"]),
    ("lvis-mask-fpn-2x", ["lvis/lvis_v0.5_train.json", "coco/train2017"])])
def test_real_data_rule(tmp_path, monkeypatch, bench, files):
    """Nothing under DETECTRON2_DATASETS: the built-in data; part of the files: an error naming the rest."""
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    b = resolve_benchmark(bench)
    assert data_mode(b, "auto") is True
    (tmp_path / files[1]).mkdir(parents=True)
    (tmp_path / files[0]).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / files[0]).write_text("{}")
    with pytest.raises(RunnerError, match="val"):  # train is there, val is not
        data_mode(b, "auto")


def _paper_protocol(name):
    return {"config_hash": f"cfg-{name}", "max_iter": 180000, "ims_per_batch": 16, "base_lr": 0.02, "scaling": "none",
            "amp": False, "builtin_synthetic": False}


def test_tables_show_the_papers_rows_with_a_dagger_on_each_unconfirmed_number():
    kp, lvis = "coco-kp-fpn-2x", "lvis-mask-fpn-2x"
    recs = [make_record(kp, "moco", "moco", 0, {"keypoints": {"AP": 60.0, "AP50": 80.0, "AP75": 65.0}},
                        protocol=_paper_protocol(kp), task="keypoints"),
            make_record(lvis, "moco", "moco", 0, {"segm": {"AP": 20.0, "AP50": 33.0, "AP75": 21.0}},
                        protocol=_paper_protocol(lvis), task="instance_seg")]
    tables = {t.benchmark: t for t in aggregate.build_tables(recs, reference=aggregate.load_reference())}
    assert [c.header for c in tables[kp].columns] == ["APkp", "AP50kp", "AP75kp"]
    assert [c.header for c in tables[lvis].columns] == ["APmk", "AP50mk", "AP75mk"]
    def paper_rows(table):
        md = formats.render_markdown([table])
        return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[3:-1]]
                for line in md.splitlines() if "reported (paper)" in line}

    paper = paper_rows(tables[kp])
    # keypoints: every number is from notes only (B): each carries a dagger, and so does the row's label;
    # AP50kp / AP75kp not found
    assert paper["supervised IN-1M — reported (paper)†"] == ["65.8†", "—", "—"]
    assert paper["MoCo IN-1M — reported (paper)†"][0].startswith("66.8")
    assert paper["MoCo IG-1B — reported (paper)†"][0].startswith("66.9")
    # LVIS: APmk confirmed (A), AP50mk and AP75mk not (B): a dagger on each of those numbers (and the label)
    # the frozen-BN supervised row goes with the --norm FrozenBN variant's table (FREEZE_AT 2), not this one
    from mocobench.detection.config import build_config
    from mocobench.runner.benchmarks import BENCHMARKS

    frozen_cfg = build_config(BENCHMARKS[lvis], weights=None, norm="FrozenBN")
    frozen = make_record(lvis, "sup", "supervised", 0, {"segm": {"AP": 20.0, "AP50": 33.0, "AP75": 21.0}},
                         protocol=dict(_paper_protocol(lvis), norm="FrozenBN"), task="instance_seg",
                         config=frozen_cfg.dump())
    [frozen_table] = aggregate.build_tables([frozen], reference=aggregate.load_reference())
    paper = paper_rows(frozen_table)
    assert paper["supervised IN-1M (frozen BN) — reported (paper)†"] == ["24.4", "37.8†", "25.8†"]
    paper = paper_rows(tables[lvis])
    assert "supervised IN-1M (frozen BN) — reported (paper)†" not in paper
    assert [c.split(" ")[0] for c in paper["MoCo IN-1M — reported (paper)†"]] == ["24.1", "37.4†", "25.5†"]
    assert [c.split(" ")[0] for c in paper["MoCo IG-1B — reported (paper)†"]] == ["24.9", "38.2†", "26.4†"]
    assert "supervised IN-1M (tunable BN) — reported (paper)†" in paper
    assert any("not verified against the paper" in n for n in tables[lvis].notes)
    frame = formats.tables_frame(list(tables.values()))
    flags = frame[(frame["benchmark"] == lvis) & (frame["init"] == "MoCo IN-1M") & (frame["source"] != "ours")]
    assert dict(zip(flags["metric"], flags["unverified"])) == {"segm/AP": False, "segm/AP50": True, "segm/AP75": True}
