"""`run coco-vitdet` plans ViT weights (converted with their proof, size from the weights), refuses ResNet
weights, joins the suite, and estimates the real recipe from ViTDet's published training speed."""
from __future__ import annotations

import pytest

from mocobench.__main__ import main as cli
from mocobench.detection.benchmarks import BENCHMARKS
from mocobench.runner.estimate import MODEL_ZOO, VITDET_ZOO, estimate_trial
from mocobench.runner.plan import plan_trial
from mocobench.runner.request import RunRequest
from mocobench.runner.weights import Init
from tests.helpers import vit_layouts as W

VIT_B = {"EMBED_DIM": 768, "DEPTH": 12, "NUM_HEADS": 12, "PATCH_SIZE": 16, "PRETRAIN_IMG_SIZE": 224,
         "MLP_RATIO": 4.0, "QKV_BIAS": True, "LAYER_SCALE": False, "heads_source": "test", "arch": "mae_vit_base"}


def _argv(layout, tmp_path, *extra):
    return ["run", "coco-vitdet", "--data", "synthetic", "--synthetic-root", str(layout.root.parent),
            "--synthetic-preset", "tiny", "--num-gpus", "0", "--results", str(tmp_path / "results"),
            "--output-dir", str(tmp_path / "out"), *extra]


@pytest.mark.parametrize("width, hours", [(768, 0.314), (1024, 0.603)])
def test_estimate_from_vitdets_published_speed(tmp_path, width, hours):
    """No own records: ViTDet's s/iter at batch 64 on 64 A100; on 8 GPUs the scaling rule keeps the images, so
    the GPU-hours are the same: s/iter x 184,375 iterations x 64 images / 64 GPUs... per GPU."""
    vit = {**VIT_B, "EMBED_DIM": width, "DEPTH": 24 if width == 1024 else 12, "NUM_HEADS": 16 if width == 1024 else 12}
    init = Init("mae", "other", None, None, None, vit=vit)
    out = {}
    for gpus in (64, 8):
        req = RunRequest("coco-vitdet", num_gpus=gpus, ims_per_gpu=2 if gpus == 8 else None, seed=0,
                         output_dir=str(tmp_path / "o"), results=str(tmp_path / "r"))
        plan = plan_trial(BENCHMARKS["coco-mask-vitdet-100ep"], init, 0, request=req, synthetic=False,
                          num_devices=gpus)
        assert plan.cfg.SOLVER.AMP.ENABLED and plan.protocol["amp"]  # the recipe trains in AMP on GPUs
        assert plan.protocol["backbone"]["embed_dim"] == width and plan.protocol["depth"] is None
        out[gpus] = estimate_trial(plan, [], num_gpus=gpus, key=("gpu", "A100", gpus, 1))
    assert out[64].kind == MODEL_ZOO and "64 A100" in out[64].source and VITDET_ZOO[width].name in out[64].source
    assert out[64].seconds == pytest.approx(hours * 184375)
    assert out[8].device_hours == pytest.approx(out[64].device_hours) == pytest.approx(hours * 184375 * 64 / 3600)


def test_dry_run_converts_and_plans_vit_weights(synthetic_layout, tmp_path, capsys):
    src = W.write_mae(tmp_path / "mae.pth", W.tiny_vit(64, 2, 4), training=True)
    assert cli(_argv(synthetic_layout, tmp_path, "--weights", str(src), "--vit-heads", "4", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "proof OK" in out and "coco-mask-vitdet-100ep-synthetic / mae trial 0" in out
    assert "ViT width 64, depth 2, patch 16, 4 heads (--vit-heads 4)" in out  # the plan says where heads came from
    assert list((tmp_path / "out" / "converted").glob("mae-*-vit-h4.pkl"))


def test_vitdet_refuses_resnet_weights_and_resnets_refuse_vit(synthetic_layout, tmp_path, capsys):
    import torch

    from tests.helpers.checkpoints import randomised_resnet, wrap

    r18 = tmp_path / "moco.pth.tar"
    torch.save(wrap("moco", randomised_resnet(18)), r18)
    assert cli(_argv(synthetic_layout, tmp_path, "--weights", str(r18), "--dry-run")) == 2
    assert "builds a Vision Transformer" in capsys.readouterr().err
    vit = W.write_flat(tmp_path / "hub.pth", W.tiny_vit(64, 2, 4))
    argv = _argv(synthetic_layout, tmp_path, "--weights", str(vit), "--vit-heads", "4", "--dry-run")
    argv[1] = "coco-mask-fpn-1x"
    assert cli(argv) == 2
    assert "are a Vision Transformer but coco-mask-fpn-1x builds a ResNet" in capsys.readouterr().err


def test_suite_gives_each_benchmark_its_backbone_family(synthetic_layout, tmp_path, capsys):
    vit = W.write_flat(tmp_path / "hub.pth", W.tiny_vit(64, 2, 4))
    argv = ["run", "suite", "--only", "coco-vitdet,voc07-det-c4", "--weights", str(vit), "--weights", "random",
            "--vit-heads", "4", *(_argv(synthetic_layout, tmp_path)[2:]), "--dry-run"]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "coco-mask-vitdet-100ep-synthetic" in out and "voc07-det-c4-synthetic" in out
    rows = [line for line in out.splitlines() if "-synthetic" in line and " hub " in line]
    assert rows and all("vitdet" in line for line in rows)  # the ViT only in ViTDet; random in both


@pytest.mark.slow
def test_two_process_vitdet_trial_writes_one_record(synthetic_layout, tmp_path):
    """ViTDet in 2 gloo processes on the CPU (DDP over AdamW with layer decay, LSJ loader per rank): one record."""
    from mocobench import records

    src = W.write_flat(tmp_path / "hub.pth", W.tiny_vit(64, 2, 4))
    argv = _argv(synthetic_layout, tmp_path, "--weights", str(src), "--vit-heads", "4", "--trials", "1",
                 "--num-procs", "2", "--opts", "SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "(1,)",
                 "SOLVER.WARMUP_ITERS", "1", "SOLVER.IMS_PER_BATCH", "2", "MODEL.RPN.POST_NMS_TOPK_TEST", "20",
                 "TEST.DETECTIONS_PER_IMAGE", "5")
    assert cli(argv) == 0
    (rec,) = records.load_records(tmp_path / "results")
    assert rec["provenance"]["num_procs"] == 2 and rec["benchmark"] == "coco-mask-vitdet-100ep-synthetic"
    assert {"bbox", "segm"} <= set(rec["metrics"])
