"""A training step with torch.cuda.set_sync_debug_mode("error"): any host synchronisation inside the step
(a blocking copy, .item(), a data-dependent shape) raises. The step is the trainer's own (`run_step`) on the
fullest path: GPU augmentation, bf16 autocast, channels_last, on a batch from its own pinned-memory loader,
after warm-up steps (cuDNN autotuning and lazy initialisation may synchronise once)."""
from __future__ import annotations

import torch

from mocobench.benchmarks.perf.gpu_check.context import small_overrides, write_imagefolder
from mocobench.benchmarks.perf.gpu_check.harness import Outcome, failed, passed, skipped

WARMUP_STEPS = 2


def check(ctx) -> Outcome:
    from mocobench.pretrain.config import load_config
    from mocobench.pretrain.trainer import Trainer

    s = ctx.shapes
    data = write_imagefolder(ctx.folder("sync_data"), per_class=s.small_batch * 2, size=s.small_size + 8)
    cfg = load_config("demo", small_overrides(ctx, data, ctx.folder("sync_out"), "data.aug_device=gpu",
                                              "train.amp=bf16", "train.channels_last=true", "optim.epochs=1"))
    trainer = Trainer(cfg)
    trainer.model.train()
    batches = [tuple(b[:-1]) for b in trainer.loader]  # (uint8 images, sizes, targets); the skipped-files notes off
    if not ctx.cuda:  # the same step, once (no warm-up needed: nothing is judged)
        loss = float(trainer.run_step(batches[0]))
        return skipped(f"set_sync_debug_mode is CUDA-only; the same step ran on the CPU (loss {loss:.3f})", loss=loss)
    for batch in batches[:WARMUP_STEPS]:
        trainer.run_step(batch)
    ctx.sync()
    batch = batches[WARMUP_STEPS % len(batches)]
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = trainer.run_step(batch)
    except RuntimeError as e:
        torch.cuda.set_sync_debug_mode("default")
        return failed(f"the step synchronised with the host: {str(e).splitlines()[0][:200]}",
                      error=str(e)[:2000])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    value = float(loss)
    ok = value == value  # not NaN
    return (passed if ok else failed)(f"run_step (GPU aug, bf16, channels_last) without a host sync; loss {value:.3f}",
                                      loss=value, warmup_steps=WARMUP_STEPS)
