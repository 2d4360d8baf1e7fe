"""Exact resume on the device with bf16 autocast and channels_last (and the GPU augmentation, deterministic
mode): N steps in one run against N/2 steps, a resume from the checkpoint, N/2 more; every weight, BN
statistic and the queue must be bitwise equal. Then the kNN monitor and linear classification run on the device
from the final checkpoint."""
from __future__ import annotations

import math

import torch

from mocobench.benchmarks.perf.gpu_check.context import small_overrides, write_imagefolder
from mocobench.benchmarks.perf.gpu_check.harness import Outcome, failed, passed


def check(ctx) -> Outcome:
    from mocobench.pretrain.config import load_config
    from mocobench.pretrain.knn import knn_top1
    from mocobench.pretrain.lincls import LinclsSettings, linear_eval
    from mocobench.pretrain.trainer import Trainer

    s = ctx.shapes
    steps_per_epoch = s.resume_steps // 2
    root = ctx.folder("resume_data")
    train = write_imagefolder(root / "train", per_class=s.small_batch * steps_per_epoch // 2, size=s.small_size + 8)
    val = write_imagefolder(root / "val", per_class=s.small_batch // 2, size=s.small_size + 8, seed=1)

    def config(out):
        return load_config("demo", small_overrides(ctx, train, out, "data.aug_device=gpu", "train.amp=bf16",
                                                   "train.channels_last=true", "train.deterministic=true",
                                                   "optim.epochs=2"))

    full = Trainer(config(ctx.folder("resume_full"))).train()
    out = ctx.folder("resume_split")
    Trainer(config(out)).train(stop_after_epoch=1)
    resumed = Trainer(config(out), resume="auto")
    half_step = resumed.step
    final = resumed.train()
    a = torch.load(full, map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(final, map_location="cpu", weights_only=True)["state_dict"]
    differing = sorted(k for k in a if k not in b or not torch.equal(a[k], b[k]))
    queue_equal = torch.equal(a["module.queue"], b["module.queue"])
    steps = int(torch.load(final, map_location="cpu", weights_only=True)["step"])
    knn = knn_top1(resumed.model.backbone, train, val, image_size=s.small_size, device=ctx.device, k=5,
                   batch_size=s.small_batch, workers=0, progress=False)
    lin = linear_eval(final, train, val, LinclsSettings(epochs=1, lr=1.0, milestones=[1], batch_size=s.small_batch,
                                                        workers=0, device=ctx.device.type, progress=False))
    details = {"steps": steps, "resumed_at_step": half_step, "tensors": len(a), "differing": differing[:20],
               "queue_equal": queue_equal, "knn_top1": knn, "lincls_top1": lin["top1"],
               "lincls_backbone_unchanged": lin["backbone_unchanged"]}
    line = (f"{steps} steps vs {half_step} + resume + {steps - half_step}: "
            f"{len(a) - len(differing)}/{len(a)} tensors equal (queue {'equal' if queue_equal else 'differs'}); "
            f"kNN {knn:.1f}%, lincls {lin['top1']:.1f}% on {ctx.device.type}")
    problems = []
    if differing or a.keys() != b.keys():
        problems.append(f"differ: {', '.join(differing[:4])}")
    if steps != s.resume_steps or half_step != steps_per_epoch:
        problems.append(f"expected {s.resume_steps} steps resumed at {steps_per_epoch}")
    for name, value in (("kNN", knn), ("lincls", lin["top1"])):
        if not (math.isfinite(value) and 0 <= value <= 100):
            problems.append(f"{name} gave {value}")
    return failed(f"{line}; " + "; ".join(problems), **details) if problems else passed(line, **details)
