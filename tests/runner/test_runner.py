"""mocobench.runner: the scaling rule, weights resolution, and real (tiny) Detectron2 trials on the
synthetic VOC and COCO data: records written, read back, never re-run, interrupted trials resumed."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from detectron2.config import get_cfg

from mocobench import records
from mocobench.__main__ import main as cli
from mocobench.common.config import ConfigError
from mocobench.common.logs import cli_logging
from mocobench.detection import engine
from mocobench.detection.benchmarks import BENCHMARKS
from mocobench.runner import RunnerError
from mocobench.runner.cli import DEMO_TRIALS
from mocobench.runner.plan import init_config
from mocobench.runner.scaling import apply_scaling_rule
from mocobench.runner.weights import resolve_init
from tests.helpers.checkpoints import randomised_resnet, wrap

# A few iterations, few ROIs and proposals: seconds per trial on 2 CPU cores.
TINY = ["SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "(2, 3)", "SOLVER.WARMUP_ITERS", "1", "SOLVER.CHECKPOINT_PERIOD", "2",
        "SOLVER.IMS_PER_BATCH", "2", "TEST.PRECISE_BN.NUM_ITER", "2", "DATALOADER.NUM_WORKERS", "0",
        "MODEL.RPN.POST_NMS_TOPK_TEST", "20", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "8"]


def _scaled(num_devices, ims, ref_gpus=8):
    cfg = get_cfg()
    cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER = 16, 0.02, 24000
    cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS = (18000, 22000), 100
    return cfg, apply_scaling_rule(cfg, num_devices=num_devices, ims_per_device=ims, reference_gpus=ref_gpus)


def test_scaling_rule_official_one_gpu_advice():
    cfg, s = _scaled(1, 8)  # MoCo's advice: IMS_PER_BATCH 8, BASE_LR 0.01, doubled STEPS/MAX_ITER
    assert s.applied and s.factor == 2
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER) == (8, 0.01, 48000)
    assert tuple(cfg.SOLVER.STEPS) == (36000, 44000) and cfg.SOLVER.WARMUP_ITERS == 200
    assert s.reference["ims_per_batch"] == 16 and s.result["ims_per_batch"] == 8


@pytest.mark.parametrize("devices,ims", [(1, 2), (2, 2), (4, 2), (2, 4), (1, 4)])
def test_scaling_rule_keeps_epochs_and_lr_per_image(devices, ims):
    cfg, s = _scaled(devices, ims)
    batch = cfg.SOLVER.IMS_PER_BATCH
    assert s.applied and batch == min(16, devices * ims) and batch % devices == 0
    assert cfg.SOLVER.MAX_ITER * batch == 24000 * 16          # same number of images seen
    assert cfg.SOLVER.BASE_LR / batch == pytest.approx(0.02 / 16)  # same lr per image
    assert [st * batch for st in cfg.SOLVER.STEPS] == [18000 * 16, 22000 * 16]


@pytest.mark.parametrize("devices,ims", [(8, 2), (4, 4), (2, 8), (16, 1)])
def test_scaling_rule_not_applied_when_batch_fits(devices, ims):
    cfg, s = _scaled(devices, ims)
    assert not s.applied and cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.MAX_ITER == 24000


def test_scaling_rule_refuses_uneven_split():
    with pytest.raises(RunnerError, match="cannot"):
        _scaled(3, 2)


def _pretrain_dir(tmp_path, *, stem="standard"):
    """A pretraining output folder as `make pretrain` leaves it (MoCo format, two epochs)."""
    run = tmp_path / "moco_run"
    run.mkdir()
    for epoch in (1, 2):
        ck = wrap("moco", randomised_resnet(18, seed=epoch))
        ck["epoch"], ck["config"]["stem"] = epoch, stem
        torch.save(ck, run / f"checkpoint_{epoch - 1:04d}.pth.tar")
    return run


def test_resolve_init_latest_checkpoint_converted_and_cached(tmp_path, capsys):
    cli_logging()
    run = _pretrain_dir(tmp_path)
    init = resolve_init(str(run), cache_dir=tmp_path / "cache")
    assert init.kind == "moco" and init.pretrain == {"run": str(run), "epoch": 2}
    assert init.label == "moco_run-ep2" and init.weights.endswith("checkpoint_0001.pth.tar")
    assert "proof OK" in capsys.readouterr().out
    again = resolve_init(str(run), cache_dir=tmp_path / "cache")
    assert again.pkl == init.pkl and "using the cached conversion" in capsys.readouterr().out.splitlines()[-1]
    assert resolve_init("random", cache_dir=tmp_path).kind == "random"


def test_resolve_init_errors(tmp_path):
    with pytest.raises(RunnerError, match="no such file"):
        resolve_init(str(tmp_path / "nope"), cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunnerError, match="no checkpoint"):
        resolve_init(str(tmp_path / "empty"), cache_dir=tmp_path)
    (tmp_path / "s").mkdir()
    small = _pretrain_dir(tmp_path / "s", stem="small")
    with pytest.raises(RunnerError, match="stem 'small'"):
        resolve_init(str(small), cache_dir=tmp_path / "cache")


def test_cli_input_errors(capsys, tmp_path):
    assert cli(["run", "no-such-bench", "--weights", "random", "--data", "synthetic"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
    assert cli(["run", "voc-det", "--weights", "random", "--amp", "--num-gpus", "0"]) == 2
    assert "--amp needs CUDA" in capsys.readouterr().err


def _run(layout, tmp_path, bench, *weights, extra=("--trials", "1")):
    argv = ["run", bench, "--data", "synthetic", "--synthetic-root", str(layout.root.parent),
            "--synthetic-preset", "tiny",
            "--num-gpus", "0", "--results", str(tmp_path / "results"), "--output-dir", str(tmp_path / "out"),
            *extra]
    for w in weights:
        argv += ["--weights", w]
    return cli(argv + ["--opts", *TINY])


@pytest.mark.slow
def test_voc_c4_trials_records_and_no_rerun(synthetic_layout, tmp_path, capfd):
    run = _pretrain_dir(tmp_path)
    assert _run(synthetic_layout, tmp_path, "voc07-det-c4", str(run), "random") == 0
    captured = capfd.readouterr()
    out = captured.out
    assert "BUILT-IN SYNTHETIC DATA" in out
    # the terminal shows a bar per trial and a result line; Detectron2's full log is in each trial's log.txt
    # (capfd: the trials run in processes of their own, --jobs 2 on the built-in data)
    assert "GeneralizedRCNN(" not in out and "4/4" in captured.err and "voc07-det-c4-synthetic random" in captured.err
    assert sum("wrote " in line and ".json: bbox AP" in line for line in out.splitlines()) == 2, out
    logs = sorted((tmp_path / "out").rglob("log.txt"))
    assert len(logs) == 2 and all("GeneralizedRCNN(" in p.read_text() for p in logs)
    # the converter's counts, not its 100-line key map; fvcore's list of head tensors missing from the backbone
    # checkpoint goes to the trial's log.txt, not the terminal
    assert "proof OK" in out and "backbone tensors" in out and "encoder_q.layer1.0.conv1.weight" not in out
    assert "not found in the checkpoint" not in captured.out + captured.err
    assert any("not found in the checkpoint" in p.read_text() for p in logs if "moco_run" in str(p))
    recs = {r["init"]["label"]: r for r in records.load_records(tmp_path / "results")}
    assert set(recs) == {"moco_run-ep2", "random"}
    moco = recs["moco_run-ep2"]
    assert moco["benchmark"] == "voc07-det-c4-synthetic" and moco["protocol"]["builtin_synthetic"] is True
    assert moco["init"]["kind"] == "moco" and moco["init"]["pretrain"]["epoch"] == 2
    assert set(moco["metrics"]["bbox"]) >= {"AP", "AP50", "AP75"}
    assert all(v is None or 0 <= v <= 100 for v in moco["metrics"]["bbox"].values())
    assert moco["seed"] == 1000 and moco["trial"] == 0 and moco["provenance"]["num_gpus"] == 0
    assert moco["provenance"]["wall_time_s"] > 0 and moco["provenance"]["git_sha"]
    assert moco["protocol"]["max_iter"] == 4 and moco["protocol"]["depth"] == 18
    assert moco["protocol"]["num_classes"] == len(synthetic_layout.classes)
    assert "Res5ROIHeadsExtraNorm" in moco["config"] and "SEED: 1000" in moco["config"]
    # config_hash is the hash of the resolved config without the per-trial fields (seed, output folder,
    # weights): two records share it exactly when their configs differ only in those fields
    def without_trial_fields(text):
        cfg = yaml.safe_load(text)
        cfg["SEED"], cfg["OUTPUT_DIR"], cfg["MODEL"]["WEIGHTS"] = -1, "", ""
        return cfg

    assert yaml.safe_load(moco["config"])["OUTPUT_DIR"] != yaml.safe_load(recs["random"]["config"])["OUTPUT_DIR"]
    same_config = without_trial_fields(moco["config"]) == without_trial_fields(recs["random"]["config"])
    assert same_config == (moco["protocol"]["config_hash"] == recs["random"]["protocol"]["config_hash"])
    # the same command again: nothing re-run, nothing overwritten
    path = moco["_path"]
    before = open(path).read()
    assert _run(synthetic_layout, tmp_path, "voc07-det-c4", str(run)) == 0
    assert "finished already" in capfd.readouterr().out and open(path).read() == before
    assert len(records.find_records(tmp_path / "results")) == 2


@pytest.mark.slow
def test_interrupted_trial_resumes(synthetic_layout, tmp_path, monkeypatch, capsys):
    """Training reaches its final checkpoint, then evaluation crashes: the next run resumes from the
    checkpoint (no iteration repeated), evaluates, and writes a record that counts both attempts."""
    real = engine.build_evaluator
    calls = {"n": 0}

    def crash_once(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(engine, "build_evaluator", crash_once)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(synthetic_layout, tmp_path, "coco-mask-fpn-1x", "random")
    assert not records.find_records(tmp_path / "results")
    assert _run(synthetic_layout, tmp_path, "coco-mask-fpn-1x", "random") == 0
    assert "resuming from model_final.pth" in capsys.readouterr().out
    (rec,) = records.load_records(tmp_path / "results")
    assert rec["benchmark"] == "coco-mask-fpn-1x-synthetic" and rec["task"] == "instance_seg"
    assert {"bbox", "segm"} <= set(rec["metrics"]) and "AP50" in rec["metrics"]["segm"]
    assert rec["provenance"]["attempts"] == 2
    log = open(f"{rec['provenance']['output_dir']}/log.txt").read()
    assert "Starting training from iteration 4" in log  # resumed at the end, not from scratch
    assert json.loads(open(f"{rec['provenance']['output_dir']}/eval_results.json").read()) == rec["metrics"]


def test_depth_mismatch_is_refused(tmp_path):
    """R18 weights into the R50 protocol would load nothing (silently, by Detectron2's heuristics)."""
    init = resolve_init(str(_pretrain_dir(tmp_path)), cache_dir=tmp_path / "cache")
    assert init.depth == 18
    with pytest.raises(ConfigError, match="ResNet-18 but the config builds ResNet-50"):
        init_config(BENCHMARKS["voc0712-det-c4"], init, synthetic=False)
    cfg = init_config(BENCHMARKS["voc0712-det-c4"], init, synthetic=True)  # the demo is R18
    assert cfg.MODEL.WEIGHTS == init.pkl


def test_skip_missing_baselines_in_dry_run(synthetic_layout, tmp_path, capsys):
    (tmp_path / "empty_run").mkdir()
    rc = _run(synthetic_layout, tmp_path, "voc-det", str(tmp_path / "nope"), str(tmp_path / "empty_run"), "random",
              extra=["--skip-missing", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("SKIPPED") == 2 and "dry run: voc0712-det-c4-synthetic / random trial 0" in out
    assert not records.find_records(tmp_path / "results")
    # without --trials, the built-in data gets DEMO_TRIALS trials (a std in every demo cell), seeds 1000, 1001
    planned = [line for line in out.splitlines() if "dry run:" in line]
    assert len(planned) == DEMO_TRIALS == 2 and "trial 1 seed 1001" in planned[1]


def test_norm_default_is_official_and_variant_is_recorded(synthetic_layout, tmp_path):
    """naiveSyncBN (the official configs' norm) by default; SyncBN only as the named variant, which
    changes the protocol (hash, record folder), so tables never average or mix the two."""
    from mocobench.runner.plan import plan_trial
    from mocobench.runner.request import RunRequest

    args = RunRequest("coco-mask-fpn-1x", opts=[], num_gpus=0, amp=False, ims_per_gpu=2, seed=0,
                      output_dir=str(tmp_path / "o"), results=str(tmp_path / "r"), norm=None)
    init = resolve_init("random", cache_dir=tmp_path)
    plans = {}
    for norm in (None, "SyncBN"):
        args.norm = norm
        plans[norm] = plan_trial(BENCHMARKS["coco-mask-fpn-1x"], init, 0, request=args, synthetic=True, num_devices=1)
    default, variant = plans[None], plans["SyncBN"]
    assert default.protocol["norm"] == "naiveSyncBN" == default.cfg.MODEL.FPN.NORM
    assert variant.protocol["norm"] == "SyncBN" == variant.cfg.MODEL.FPN.NORM == variant.cfg.MODEL.RESNETS.NORM
    assert default.record_path.parent != variant.record_path.parent
    args.norm = "GN"
    with pytest.raises(ConfigError, match="choose one of"):
        plan_trial(BENCHMARKS["voc0712-det-c4"], init, 0, request=args, synthetic=True, num_devices=1)


def test_protocol_names_the_builtin_data_version(synthetic_layout, tmp_path):
    """Records of two versions of the built-in data (another generator version, preset parameter or seed) never
    share a protocol: a changed demo data set must not reuse, or be averaged with, the old one's trials."""
    from mocobench.data.datasets import register_synthetic
    from mocobench.data.synthetic import ensure_synthetic
    from mocobench.runner.plan import plan_trial
    from mocobench.runner.request import RunRequest

    args = RunRequest("voc0712-det-c4", opts=[], num_gpus=0, amp=False, ims_per_gpu=2, seed=0,
                      output_dir=str(tmp_path / "o"), results=str(tmp_path / "r"), norm=None)
    init = resolve_init("random", cache_dir=tmp_path)
    first = plan_trial(BENCHMARKS["voc0712-det-c4"], init, 0, request=args, synthetic=True, num_devices=1)
    assert first.protocol["synthetic_data"] == synthetic_layout.root.name
    other = ensure_synthetic(root=tmp_path / "syn", preset="tiny", seed=1, progress=False)
    try:
        register_synthetic(other, replace=True)
        second = plan_trial(BENCHMARKS["voc0712-det-c4"], init, 0, request=args, synthetic=True, num_devices=1)
    finally:
        register_synthetic(synthetic_layout, replace=True)
    assert second.protocol["synthetic_data"] == other.root.name != first.protocol["synthetic_data"]
    assert second.record_path.parent != first.record_path.parent and second.output_dir != first.output_dir


def test_coco_mask_alias_runs_the_c4_demo_on_builtin_data_only(synthetic_layout, tmp_path, capsys, monkeypatch):
    """`coco-mask` on the built-in data is Mask R-CNN C4 1x (DEMO_ALIASES), recorded and titled as such; on real
    data the alias stays the paper's FPN 1x; a full benchmark name is always run as given."""
    from mocobench.runner import run as runner_run

    assert _run(synthetic_layout, tmp_path, "coco-mask", "random", extra=["--dry-run", "--trials", "1"]) == 0
    out = capsys.readouterr().out
    assert "runs its demo benchmark coco-mask-c4-1x" in out and "coco-mask-c4-1x-synthetic / random" in out
    assert _run(synthetic_layout, tmp_path, "coco-mask-fpn-1x", "random", extra=["--dry-run", "--trials", "1"]) == 0
    assert "coco-mask-fpn-1x-synthetic / random" in capsys.readouterr().out
    monkeypatch.setattr(runner_run, "data_mode", lambda bench, requested: False)  # as if real COCO were there
    assert _run(synthetic_layout, tmp_path, "coco-mask", "random", extra=["--dry-run", "--trials", "1"]) == 0
    out = capsys.readouterr().out
    assert "demo benchmark" not in out and "coco-mask-fpn-1x / random" in out
