"""Multi-process trials through the runner (`--num-gpus 0 --num-procs N`: N gloo processes by Detectron2's
launch), their input checks, and the scaling rule's PreciseBN iterations."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode, get_cfg

from mocobench import records
from mocobench.detection.engine import Trainer
from tests.runner.test_runner import _run, _scaled


def test_scaling_rule_scales_precise_bn_iterations():
    """1 GPU x 2 images for the protocol's 8 x 2: PreciseBN must still average 200 x 16 = 3,200 images."""
    cfg, s = _scaled(1, 2)
    assert s.applied and s.factor == 8 and cfg.SOLVER.IMS_PER_BATCH == 2
    assert cfg.TEST.PRECISE_BN.NUM_ITER == 1600
    assert cfg.TEST.PRECISE_BN.NUM_ITER * cfg.SOLVER.IMS_PER_BATCH == 200 * 16
    assert s.reference["precise_bn_num_iter"] == 200 and s.result["precise_bn_num_iter"] == 1600
    cfg, s = _scaled(8, 2)  # the protocol's own devices: nothing scaled
    assert not s.applied and cfg.TEST.PRECISE_BN.NUM_ITER == 200 == s.result["precise_bn_num_iter"]


def test_scaled_precise_bn_iterations_are_not_a_deviation():
    """A record of the scaling rule holds PreciseBN's iterations x k: the documented scaling, not a deviation in
    the tables; any other value under the same scaling is one."""
    from mocobench.reporting import deviations
    from mocobench.runner.benchmarks import BENCHMARKS
    from tests.helpers.records import make_record, resolved_config
    from tests.reporting.test_deviations import COCO, COCO_1X

    scaled = dict(COCO_1X, ims_per_batch=8, base_lr=0.01, max_iter=180000,
                  scaling={"applied": True, "factor": 2.0, "num_devices": 1, "ims_per_device": 8})
    exact = resolved_config("coco-mask-fpn-1x", scaled)
    assert yaml.safe_load(exact)["TEST"]["PRECISE_BN"]["NUM_ITER"] == 400  # the protocol's 200, x 2
    rec = make_record("coco-mask-fpn-1x", "sup", "supervised", 0, COCO, task="instance_seg", protocol=scaled,
                      config=exact)
    assert deviations.deviations(rec, BENCHMARKS["coco-mask-fpn-1x"]) == []
    rec["config"] = resolved_config("coco-mask-fpn-1x", scaled, ["TEST.PRECISE_BN.NUM_ITER", "300"])
    [d] = deviations.deviations(rec, BENCHMARKS["coco-mask-fpn-1x"])
    assert (d.key, d.ours, d.paper) == ("TEST.PRECISE_BN.NUM_ITER", 300, 200)


def test_num_procs_input_errors(synthetic_layout, tmp_path, capsys):
    def err(*extra):
        rc = _run(synthetic_layout, tmp_path, "voc07-det-c4", "random", extra=["--dry-run", "--trials", "1", *extra])
        return rc, capsys.readouterr().err

    rc, msg = err("--num-procs", "0")
    assert rc == 2 and "--num-procs 0" in msg
    rc, msg = err("--num-procs", "2", "--jobs", "2")
    assert rc == 2 and "runs alone" in msg
    rc, msg = err("--num-procs", "2", "--norm", "SyncBN")  # torch's SyncBatchNorm refuses CPU processes
    assert rc == 2 and "MODEL.RESNETS.NORM" in msg and "naiveSyncBN" in msg
    assert err("--num-procs", "2")[0] == 0


def test_cpu_processes_are_launched_without_cuda(synthetic_layout, tmp_path, monkeypatch):
    """On a machine with GPUs, --num-gpus 0 must still give gloo CPU processes: Detectron2's launch picks
    NCCL whenever its children see CUDA, so they are started with CUDA hidden (and the parent's variable
    restored); each gets cores / N threads, on a free local port (dist_url auto)."""
    import detectron2.engine

    seen = {}

    def fake_launch(main_func, procs, *, num_machines, machine_rank, dist_url, args):
        seen.update(procs=procs, dist_url=dist_url, threads=args[2], env=os.environ.get("CUDA_VISIBLE_DEVICES"))
        raise RuntimeError("stop here")

    monkeypatch.setattr(detectron2.engine, "launch", fake_launch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(RuntimeError, match="stop here"):
        _run(synthetic_layout, tmp_path, "voc07-det-c4", "random", extra=["--trials", "1", "--num-procs", "2"])
    assert seen["procs"] == 2 and seen["dist_url"] == "auto" and seen["env"] == ""
    assert seen["threads"] == max(1, torch.get_num_threads() // 2)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


@pytest.mark.slow
def test_two_process_trial_writes_one_record_equal_to_one_process_evaluation(synthetic_layout, tmp_path, capsys):
    """A 2-process trial (gloo, DDP on the CPU, naiveSyncBN, PreciseBN) ends on both ranks and writes exactly
    one record; its metrics are those of evaluating its own model_final.pth again, here, in one process."""
    assert _run(synthetic_layout, tmp_path, "voc07-det-c4", "random",
                extra=["--trials", "1", "--num-procs", "2"]) == 0
    (path,) = records.find_records(tmp_path / "results")
    (rec,) = records.load_records(tmp_path / "results")
    out = Path(rec["provenance"]["output_dir"])
    assert rec["provenance"]["num_procs"] == 2 and rec["provenance"]["attempts"] == 1
    assert (out / "log.txt.rank1").exists()  # the second process ran (and logged) too
    assert "PreciseBN over all ranks" in (out / "log.txt").read_text()
    assert json.loads((out / "eval_results.json").read_text()) == rec["metrics"]

    cfg = get_cfg()
    cfg.merge_from_other_cfg(CfgNode.load_cfg(rec["config"]))
    assert yaml.safe_load(rec["config"])["MODEL"]["RESNETS"]["NORM"] == "naiveSyncBN"
    model = Trainer.build_model(cfg)
    DetectionCheckpointer(model).load(str(out / "model_final.pth"))
    again = Trainer.test(cfg, model)
    assert set(again) == set(rec["metrics"]) == {"bbox"}
    assert any(v > 0 for v in rec["metrics"]["bbox"].values())  # something detected: the comparison means something
    for k, v in rec["metrics"]["bbox"].items():
        assert again["bbox"][k] == pytest.approx(v, abs=1e-6), k
    # the same command again: finished, nothing re-run or overwritten
    before = open(path).read()
    assert _run(synthetic_layout, tmp_path, "voc07-det-c4", "random", extra=["--trials", "1", "--num-procs", "2"]) == 0
    assert "finished already" in capsys.readouterr().out and open(path).read() == before


def test_verbose_reaches_every_process_of_a_trial(synthetic_layout, tmp_path, monkeypatch):
    """--verbose travels to train_and_evaluate in each launched process (full log instead of the bar)."""
    import detectron2.engine

    seen = []

    def fake_launch(main_func, procs, *, num_machines, machine_rank, dist_url, args):
        seen.append(args[3])
        raise RuntimeError("stop here")

    monkeypatch.setattr(detectron2.engine, "launch", fake_launch)
    for extra in ([], ["--verbose"]):
        with pytest.raises(RuntimeError, match="stop here"):
            _run(synthetic_layout, tmp_path, "voc07-det-c4", "random", extra=["--trials", "1", *extra])
    assert seen == [False, True]
