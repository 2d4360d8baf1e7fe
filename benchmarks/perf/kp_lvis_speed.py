"""CPU speed of the keypoint and LVIS benchmarks on the built-in data: seconds per training iteration and per
evaluated image, with the benchmark's resolved config (demo delta included) from random init.

    .venv/bin/python -m mocobench.benchmarks.perf.kp_lvis_speed --preset demo --iters 20 [--threads 2]

Training: `--iters` timed iterations (data loading, forward, backward, step) after 3 warm-up ones, median
wall-clock seconds and mean CPU seconds of this process (fair on a shared machine: with --threads 1 the CPU
seconds are what the step costs one free core). Evaluation: the test split through the benchmark's evaluator
(inference and the final evaluate(), which scores with pycocotools / the lvis package), per image, wall and
CPU seconds, and the detections kept per image.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import torch

from mocobench.benchmarks.perf.demo_steps import time_demo_steps
from mocobench.common.provenance import collect as collect_provenance
from mocobench.common.warnings_policy import apply_command_policy
from mocobench.data.datasets import register_synthetic
from mocobench.data.synthetic import ensure_synthetic
from mocobench.detection.engine import Trainer, build_evaluator

NAMES = ("coco-kp-fpn-2x", "lvis-mask-fpn-2x")


def measure(name: str, iters: int, out: str) -> dict[str, float]:
    from detectron2.evaluation import inference_on_dataset

    t = time_demo_steps(name, iters, out)
    cfg, model, loss = t.cfg, t.model, t.loss
    test = cfg.DATASETS.TEST[0]
    loader = Trainer.build_test_loader(cfg, test)
    evaluator = build_evaluator(cfg, test, out)

    class Count:  # detections kept per image (the cost of the mask / keypoint heads at test time)
        n = 0

    def counting(inputs, outputs):
        Count.n += sum(len(o["instances"]) for o in outputs)

    original = evaluator.process
    evaluator.process = lambda i, o: (counting(i, o), original(i, o))
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        inference_on_dataset(model, loader, evaluator)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    images = len(loader.dataset)
    return {"iter_s_median": statistics.median(t.wall), "iter_cpu_s_mean": statistics.mean(t.cpu),
            "iters": iters, "ims_per_batch": cfg.SOLVER.IMS_PER_BATCH, "eval_s_per_image": seconds / images,
            "eval_cpu_s_per_image": cpu_seconds / images, "eval_images": images,
            "detections_per_image": Count.n / images, "loss_finite": bool(torch.isfinite(loss))}


def main(argv: list[str] | None = None) -> int:
    apply_command_policy()  # the command's warnings policy (and its children's), before Detectron2 loads
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--root", default="output/synthetic")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--bench", action="append", choices=NAMES, help="default: both")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    layout = ensure_synthetic(args.root, preset=args.preset, progress=False)
    register_synthetic(layout)
    out = {"preset": args.preset, "threads": torch.get_num_threads(), "provenance": collect_provenance()}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.bench or NAMES:
            out[name] = measure(name, args.iters, tmp)
            print(name, json.dumps(out[name]), flush=True)
    print(json.dumps({k: v for k, v in out.items() if k != "provenance"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
