"""The three segmentation benchmarks end to end on the tiny built-in data, through the runner's CLI:
a few iterations of the real Detectron2 models, evaluation by Detectron2's evaluators, records, tables.
The Cityscapes instance evaluation writes nothing into the working directory."""
from __future__ import annotations

import os

import pytest
import torch

from mocobench import records
from mocobench.__main__ import main as cli
from mocobench.detection.config import build_config
from mocobench.reporting.aggregate import build_tables, load_reference
from mocobench.runner.benchmarks import BENCHMARKS
from tests.helpers.checkpoints import randomised_resnet, wrap
from tests.helpers.records import PAPER_VOC, make_record

TINY = ["SOLVER.MAX_ITER", "3", "SOLVER.STEPS", "(2,)", "SOLVER.WARMUP_ITERS", "1", "SOLVER.CHECKPOINT_PERIOD", "2",
        "SOLVER.IMS_PER_BATCH", "2", "TEST.PRECISE_BN.NUM_ITER", "2"]
DETECTOR = ["MODEL.RPN.POST_NMS_TOPK_TEST", "20", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "8"]


def _run(layout, tmp_path, bench, *weights, opts=(), trials=("--trials", "1")):
    argv = ["run", bench, "--data", "synthetic", "--synthetic-root", str(layout.root.parent),
            "--synthetic-preset", "tiny", "--num-gpus", "0", *trials,
            "--results", str(tmp_path / "results"), "--output-dir", str(tmp_path / "out")]
    for w in weights:
        argv += ["--weights", w]
    return cli(argv + ["--opts", *TINY, *opts])


@pytest.mark.slow
def test_cityscapes_mask_rcnn_trials_side_by_side_in_their_own_folders(synthetic_layout, tmp_path, monkeypatch,
                                                                        capsys):
    """Two trials at once (--jobs 2, what the built-in data gets by default): each runs in a worker process that
    must be able to start processes of its own, since Detectron2's Cityscapes loader opens a multiprocessing
    pool (a daemonic worker refuses: "daemonic processes are not allowed to have children")."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert _run(synthetic_layout, tmp_path, "cityscapes-mask", "random", opts=DETECTOR,
                trials=("--trials", "2", "--jobs", "2")) == 0
    out = capsys.readouterr().out
    assert "BUILT-IN SYNTHETIC DATA" in out and "2 trial(s), 2 at a time" in out
    assert os.listdir(cwd) == []  # cityscapesscripts' files went to the trial folders
    recs = sorted(records.load_records(tmp_path / "results"), key=lambda r: r["trial"])
    assert [(r["trial"], r["seed"]) for r in recs] == [(0, 1000), (1, 1001)]
    for rec in recs:
        assert rec["benchmark"] == "cityscapes-mask-fpn-synthetic" and rec["task"] == "instance_seg"
        assert set(rec["metrics"]["segm"]) == {"AP", "AP50"} and rec["protocol"]["num_classes"] == 8
        assert all(0 <= v <= 100 for v in rec["metrics"]["segm"].values())
    assert len(list((tmp_path / "out").rglob("inference/matches.json"))) == 2


@pytest.mark.slow
@pytest.mark.parametrize("bench,name,classes", [("voc-seg", "voc-seg-fcn", 11),
                                                ("cityscapes-seg", "cityscapes-seg-fcn", 19)])
def test_semantic_segmentation_trials_records_and_tables(synthetic_layout, tmp_path, bench, name, classes):
    ckpt = tmp_path / "moco.pth.tar"
    torch.save(wrap("moco", randomised_resnet(18)), ckpt)
    assert _run(synthetic_layout, tmp_path, bench, str(ckpt), "random") == 0
    recs = {r["init"]["label"]: r for r in records.load_records(tmp_path / "results")}
    assert set(recs) == {"moco", "random"}
    for rec in recs.values():
        assert rec["benchmark"] == f"{name}-synthetic" and rec["task"] == "sem_seg"
        assert 0 <= rec["metrics"]["sem_seg"]["mIoU"] <= 100 and rec["protocol"]["num_classes"] == classes
        assert rec["protocol"]["max_iter"] == 3 and "FCNHead" in rec["config"]
    assert recs["moco"]["init"]["kind"] == "moco"  # converted, proven, and checked to sit in the model
    (table,) = build_tables(records.load_records(tmp_path / "results"))
    assert [r.label for r in table.rows] == ["random", "moco"] and [c.key for c in table.columns] == ["sem_seg/mIoU"]
    assert table.synthetic and table.reference == []  # toy numbers never sit next to the paper's


@pytest.mark.parametrize("name,task,metrics", [
    ("cityscapes-mask-fpn", "instance_seg", {"segm": {"AP": 30.0, "AP50": 58.0}}),
    ("voc-seg-fcn", "sem_seg", {"sem_seg": {"mIoU": 70.0}}),
    ("cityscapes-seg-fcn", "sem_seg", {"sem_seg": {"mIoU": 74.0}})])
def test_real_records_get_the_papers_table6_rows(name, task, metrics):
    bench = BENCHMARKS[name]
    cfg = build_config(bench, weights=None)  # the paper's own schedule: no deviation, so the paper's rows show
    protocol = {**PAPER_VOC, "benchmark": name, "builtin_synthetic": False, "max_iter": cfg.SOLVER.MAX_ITER,
                "ims_per_batch": cfg.SOLVER.IMS_PER_BATCH, "base_lr": cfg.SOLVER.BASE_LR}
    recs = [make_record(name, "supervised", "supervised", 0, metrics, protocol=protocol, task=task),
            make_record(name, "moco", "moco", 0, metrics, protocol=protocol, task=task)]
    (table,) = build_tables(recs, reference=load_reference())
    expected = {"instance_seg": ["segm/AP", "segm/AP50"], "sem_seg": ["sem_seg/mIoU"]}[task]
    assert [c.key for c in table.columns] == expected and not table.synthetic
    labels = [r.label for r in table.reference]
    assert labels == ["random init", "supervised IN-1M", "MoCo IN-1M", "MoCo IG-1B"]
    paper = {"cityscapes-mask-fpn": 32.9, "voc-seg-fcn": 74.4, "cityscapes-seg-fcn": 74.6}[name]  # supervised row
    assert table.reference[1].cells[expected[0]].mean == paper
