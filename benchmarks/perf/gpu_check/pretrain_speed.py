"""MoCo v2 pretraining speed end to end from JPEG files (DataLoader workers, augmentation, the trainer's step):
ResNet-50, 224 px, batch 256, K 65536 on a GPU; pairs/s and peak device memory per cumulative stage
    fp32 (CPU augmentation) -> + bf16 and channels_last -> + GPU augmentation -> + torch.compile,
built from benchmarks/perf/pretrain_speed.py's ladder stages and JPEG writer. The photos are synthetic,
ImageNet-sized (about 500 x 375, quality 90): a few distinct files, hard-linked to fill the steps.

The speed goal is printed next to the fastest stage and never judged: a figure, not a pass/fail."""
from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import torch

from mocobench.benchmarks.perf.gpu_check.harness import Outcome, failed, passed

GOAL_PAIRS_PER_S = 3000  # one H100, ResNet-50, 224 px, v2 augmentation, batch 256, from JPEG (issue 22)
OFFICIAL_V100_PAIRS_PER_S = 168  # the official code: 8 V100, 53 h for 200 ImageNet epochs
COMPILE_RESERVE_S = 150  # time the compile stage needs (compilation of both encoders, then the steps)


def stages():
    """(name, cumulative overrides) from the speed ladder's stages (pretrain_speed.LADDER)."""
    from mocobench.benchmarks.perf.pretrain_speed import LADDER

    o = {name: list(extra) for name, extra in LADDER}
    return [("fp32, CPU aug", ["data.aug_device=cpu"]),
            ("+ bf16, channels_last", o["+ AMP bf16"] + o["+ channels_last"]),
            ("+ GPU aug", o["+ GPU aug"]),
            ("+ compile", o["+ compile"])]


def jpeg_folder(root: Path, *, distinct: int, total: int, sizes) -> Path:
    from mocobench.benchmarks.perf.pretrain_speed import write_jpegs

    folder = write_jpegs(root, distinct, list(sizes))
    files = sorted((folder / "c0").glob("*.jpg"))
    for i in range(distinct, total):
        os.link(files[i % distinct], folder / "c0" / f"{i:05d}.jpg")
    return folder


def run_stage(ctx, cfg) -> dict:
    from mocobench.pretrain.trainer import Trainer

    s = ctx.shapes
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    trainer = Trainer(cfg)
    trainer.model.train()
    it = (tuple(b[:-1]) for b in trainer.loader)  # a batch's last field lists skipped files, not a step input
    t0 = time.perf_counter()
    for _ in range(s.speed_warmup):
        trainer.run_step(next(it))
    ctx.sync()
    start = time.perf_counter()
    for _ in range(s.speed_steps):
        loss = trainer.run_step(next(it))
    ctx.sync()
    elapsed = time.perf_counter() - start
    out = {"pairs_per_s": round(s.speed_batch * s.speed_steps / elapsed, 1),
           "s_per_step": round(elapsed / s.speed_steps, 4), "warmup_s": round(start - t0, 1),
           "loss": round(float(loss), 3),
           "peak_gib": round(torch.cuda.max_memory_allocated(ctx.device) / 2**30, 2) if ctx.cuda else None}
    del trainer, it
    gc.collect()
    if ctx.cuda:
        torch.cuda.empty_cache()
    return out


def check(ctx) -> Outcome:
    from mocobench.pretrain.config import load_config

    s = ctx.shapes
    workers = min(12, os.cpu_count() or 1) if ctx.cuda else 0
    total = s.speed_batch * (s.speed_warmup + s.speed_steps)
    data = jpeg_folder(ctx.folder("speed_data"), distinct=s.speed_distinct_jpegs, total=total,
                       sizes=s.speed_sources)
    base = [f"arch={s.speed_arch}", f"stem={s.speed_stem}", "data.source=imagefolder", f"data.path={data}",
            f"data.image_size={s.speed_size}", "data.aug=v2", "data.min_scale=0.2", f"data.workers={workers}",
            f"moco.queue_size={s.speed_queue}", f"moco.bn_groups={8 if s.speed_batch >= 64 else 2}",
            f"optim.batch_size={s.speed_batch}", "optim.optimizer=sgd",
            "optim.epochs=1", f"train.device={ctx.device.type}", "train.progress=false", "knn.every=0"]
    results, overrides, errors = [], [], []
    started = time.perf_counter()
    for k, (name, extra) in enumerate(stages()):
        overrides += extra
        row = {"stage": name}
        if name == "+ compile" and not s.speed_compile:
            row["skipped"] = "tiny shapes: compiling both encoders takes ~25 s on a CPU"
        elif (name == "+ compile" and ctx.remaining_s is not None
              and ctx.remaining_s - (time.perf_counter() - started) < COMPILE_RESERVE_S):
            row["skipped"] = f"under {COMPILE_RESERVE_S} s of the --budget-s left"
        else:
            try:
                cfg = load_config("moco_v2", [*base, f"train.output_dir={ctx.tmp / f'speed_out{k}'}", *overrides])
                row.update(run_stage(ctx, cfg))
            except Exception as e:  # noqa: BLE001 - one stage's failure is reported, the next stages still run
                row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                errors.append(name)
                if ctx.cuda:
                    torch.cuda.empty_cache()
        results.append(row)
    measured = [r for r in results if "pairs_per_s" in r]
    best = max(measured, key=lambda r: r["pairs_per_s"]) if measured else None
    details = {"arch": s.speed_arch, "size": s.speed_size, "batch": s.speed_batch, "queue": s.speed_queue,
               "workers": workers, "steps": s.speed_steps, "warmup": s.speed_warmup, "stages": results,
               "goal_pairs_per_s": GOAL_PAIRS_PER_S, "goal_note": "one H100, never asserted",
               "official_v100_pairs_per_s": OFFICIAL_V100_PAIRS_PER_S}
    parts = [f"{r['stage']}: {r['pairs_per_s']:.3g} pairs/s" + (f", {r['peak_gib']} GiB" if r.get("peak_gib") else "")
             if "pairs_per_s" in r else f"{r['stage']}: {'skipped' if 'skipped' in r else 'FAILED'}" for r in results]
    line = (f"{s.speed_arch} {s.speed_size}px b{s.speed_batch} K{s.speed_queue}: " + "; ".join(parts)
            + (f" | best {best['pairs_per_s']:.3g} vs goal {GOAL_PAIRS_PER_S} pairs/s (H100)" if best else ""))
    return failed(f"{line}; failed stages: {errors}", **details) if errors else passed(line, **details)
