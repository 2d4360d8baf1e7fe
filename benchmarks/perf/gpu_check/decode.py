"""JPEG decoding on the device (data.decode=gpu, pretrain/decode.py) next to decoding in the loader's workers:
MoCo v2 pairs/s end to end from the same JPEG files in the same run (the pretraining speed check's files and
shapes, on its fastest eager stage: bf16, channels_last, batched GPU augmentation), then

- the pixels nvJPEG gives against the CPU decoder's on those files (max |diff|, share of values that differ):
  a figure, not judged (nvJPEG's IDCT and chroma upsampling are its own);
- one data.decode=gpu step under torch.cuda.set_sync_debug_mode("error"): the step may not wait for the GPU
  (nvJPEG's own stream is synchronised inside the library, out of torch's sight; that is not counted).

On a CPU (tiny shapes) the same code runs with decode_jpeg on CPU tensors; the speeds are not comparable there."""
from __future__ import annotations

import os
import time

import torch

from mocobench.benchmarks.perf.gpu_check.harness import Outcome, failed, passed

WARMUP = 2  # steps before the sync-debug step (lazy initialisation, cuDNN autotuning)


def pixel_difference(files, device: torch.device) -> dict:
    from mocobench.pretrain.decode import as_bytes_tensor, decode_cpu, decode_jpegs

    worst, differing, total = 0, 0, 0
    datas = [p.read_bytes() for p in files]
    on_device = decode_jpegs([as_bytes_tensor(d) for d in datas], device)
    for data, image in zip(datas, on_device):
        diff = (image.cpu().int() - decode_cpu(data).int()).abs()
        worst, differing, total = max(worst, int(diff.max())), differing + int((diff > 0).sum()), total + diff.numel()
    return {"files": len(files), "max_abs_diff": worst, "fraction_differing": round(differing / total, 5)}


def sync_free_step(ctx, cfg) -> tuple[bool, str]:
    from mocobench.pretrain.trainer import Trainer

    trainer = Trainer(cfg)
    trainer.model.train()
    it = (tuple(b[:-1]) for b in trainer.loader)
    for _ in range(WARMUP):
        trainer.run_step(next(it))
    ctx.sync()
    batch = next(it)
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.run_step(batch)
        return True, ""
    except RuntimeError as e:
        return False, str(e).splitlines()[0][:300]
    finally:
        torch.cuda.set_sync_debug_mode("default")
        del trainer, it


def check(ctx) -> Outcome:
    from mocobench.benchmarks.perf.gpu_check.pretrain_speed import jpeg_folder, run_stage, stages
    from mocobench.pretrain.config import load_config

    s = ctx.shapes
    workers = min(12, os.cpu_count() or 1) if ctx.cuda else 0
    total = s.speed_batch * (max(s.speed_warmup, WARMUP + 1) + s.speed_steps)
    data = jpeg_folder(ctx.folder("decode_data"), distinct=s.speed_distinct_jpegs, total=total,
                       sizes=s.speed_sources)
    eager = [o for name, extra in stages() if name != "+ compile" for o in extra]
    base = [f"arch={s.speed_arch}", f"stem={s.speed_stem}", "data.source=imagefolder", f"data.path={data}",
            f"data.image_size={s.speed_size}", "data.aug=v2", "data.min_scale=0.2", f"data.workers={workers}",
            f"moco.queue_size={s.speed_queue}", f"moco.bn_groups={8 if s.speed_batch >= 64 else 2}",
            f"optim.batch_size={s.speed_batch}", "optim.optimizer=sgd", "optim.epochs=1",
            f"train.device={ctx.device.type}", "train.progress=false", "knn.every=0", *eager]
    rows = []
    for k, decode in enumerate(("torchvision", "gpu")):
        cfg = load_config("moco_v2", [*base, f"data.decode={decode}", f"train.output_dir={ctx.tmp / f'dec_out{k}'}"])
        rows.append({"decode": decode, "workers": workers, **run_stage(ctx, cfg)})
    files = sorted((data / "c0").glob("*.jpg"))[: s.speed_distinct_jpegs]
    pixels = pixel_difference(files, ctx.device)
    details = {"arch": s.speed_arch, "size": s.speed_size, "batch": s.speed_batch, "stages": rows,
               "nvjpeg_vs_cpu_pixels": pixels}
    cpu, gpu = rows
    line = (f"{s.speed_arch} {s.speed_size}px b{s.speed_batch}, {workers} workers: CPU decode "
            f"{cpu['pairs_per_s']:.3g} pairs/s, GPU decode {gpu['pairs_per_s']:.3g} pairs/s "
            f"({gpu['pairs_per_s'] / cpu['pairs_per_s']:.2f}x); pixels vs CPU: max |diff| {pixels['max_abs_diff']}")
    if not ctx.cuda:
        return passed(line + "; sync debug mode is CUDA-only (not run)", **details)
    start = time.perf_counter()
    cfg = load_config("moco_v2", [*base, "data.decode=gpu", f"train.output_dir={ctx.tmp / 'dec_sync'}"])
    ok, error = sync_free_step(ctx, cfg)
    details |= {"sync_free": ok, "sync_error": error, "sync_check_s": round(time.perf_counter() - start, 1)}
    if not ok:
        return failed(f"{line}; a data.decode=gpu step synchronised with the host: {error}", **details)
    return passed(line + "; its step has no host sync", **details)
