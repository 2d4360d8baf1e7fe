"""CPU speed of the ViTDet benchmark's built-in demo (coco-mask-vitdet-100ep on the synthetic data: the tiny ViT
of the demo delta, depth 2, width 64, 4 heads, patch 16; 128-px LSJ crops, batch 4, AdamW with layer decay),
seconds per training iteration; and the GPU-hour estimate the plan gives for the real recipe (ViT-B, COCO).

    .venv/bin/python -m mocobench.benchmarks.perf.vit_trial_speed --preset demo --iters 20 [--threads 1]

Training: `--iters` timed iterations (data loading, forward, backward, AdamW step) after 3 warm-up ones,
median wall-clock seconds and mean CPU seconds of this process (fair on a shared machine: with --threads 1 the
CPU seconds are what the step costs one free core).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile

import torch

from mocobench.benchmarks.perf.demo_steps import time_demo_steps
from mocobench.common.provenance import collect as collect_provenance
from mocobench.data.datasets import register_synthetic
from mocobench.data.synthetic import ensure_synthetic
from mocobench.detection.benchmarks import BENCHMARKS

NAME = "coco-mask-vitdet-100ep"
VIT_B = {"EMBED_DIM": 768, "DEPTH": 12, "NUM_HEADS": 12, "PATCH_SIZE": 16, "PRETRAIN_IMG_SIZE": 224,
         "MLP_RATIO": 4.0, "QKV_BIAS": True, "LAYER_SCALE": False, "heads_source": "MAE ViT-B", "arch": "vit_base"}


def measure(iters: int, out: str) -> dict[str, float]:
    t = time_demo_steps(NAME, iters, out)
    return {"wall_s_per_iter_median": statistics.median(t.wall), "cpu_s_per_iter_mean": statistics.mean(t.cpu),
            "ims_per_batch": t.cfg.SOLVER.IMS_PER_BATCH, "demo_max_iter": t.cfg.SOLVER.MAX_ITER}


def real_recipe_estimate(out: str) -> dict[str, float | str]:
    """The plan's estimate of one real trial (MAE ViT-B weights, COCO) on 8 and on 64 GPUs, no own records."""
    from mocobench.runner.estimate import estimate_trial
    from mocobench.runner.plan import plan_trial
    from mocobench.runner.request import RunRequest
    from mocobench.runner.weights import Init

    init = Init("mae-vit-b", "other", None, None, None, vit=VIT_B)
    res: dict[str, float | str] = {}
    for gpus in (8, 64):
        req = RunRequest(NAME, num_gpus=gpus, ims_per_gpu=2 if gpus == 8 else None, seed=0, output_dir=out,
                         results=out)
        plan = plan_trial(BENCHMARKS[NAME], init, 0, request=req, synthetic=False, num_devices=gpus)
        est = estimate_trial(plan, [], num_gpus=gpus, key=("gpu", "A100", gpus, 1))
        res[f"gpu_hours_{gpus}gpus"], res[f"wall_hours_{gpus}gpus"] = est.device_hours, est.seconds / 3600
        res["source"] = est.source
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="demo")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        register_synthetic(ensure_synthetic(root="output/synthetic", preset=a.preset, seed=0, progress=False))
        result = {"benchmark": f"{NAME}-synthetic", "preset": a.preset, "threads": torch.get_num_threads(),
                  **measure(a.iters, tmp), "real_recipe": real_recipe_estimate(tmp)}
    import os

    prov = collect_provenance()
    result["commit"], result["load_average"] = prov.get("git_sha"), os.getloadavg()
    json.dump(result, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
