"""The batched augmentation (data.aug_device=gpu, pretrain/batch_aug.py) on the device: its peak memory on a
batch of decoded ImageNet-like photos, and its determinism: the same seed gives the same views under
torch.use_deterministic_algorithms(True) (what train.deterministic sets), whose peak memory is judged too
(torchvision's roi_align falls back to a pure-Python version in that mode on CUDA: issue 22 item 2)."""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch

from mocobench.benchmarks.perf.gpu_check.harness import Outcome, failed, passed


def gib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**30, 3)


@contextmanager
def deterministic_algorithms():
    before, cublas = torch.are_deterministic_algorithms_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def decoded_batch(ctx) -> tuple[torch.Tensor, torch.Tensor]:
    """What pad_collate hands the trainer: N x 3 x Hmax x Wmax uint8 (image b top-left), sizes N x 2; on the device."""
    from mocobench.pretrain.data import pad_collate

    s = ctx.shapes
    g = torch.Generator().manual_seed(0)
    items = []
    for b in range(s.aug_batch):
        h, w = s.aug_sources[b % len(s.aug_sources)]
        items.append((torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8), 0))
    images, sizes, _ = pad_collate(items)
    return images.to(ctx.device), sizes.to(ctx.device)


def views_and_peak(augment, images, sizes, seed: int, ctx) -> tuple[torch.Tensor, int | None]:
    """Two views per image from one seeded generator; the peak device memory above what was allocated before."""
    generator = torch.Generator(ctx.device).manual_seed(seed)
    if ctx.cuda:
        ctx.sync()
        torch.cuda.reset_peak_memory_stats(ctx.device)
        base = torch.cuda.memory_allocated(ctx.device)
    out = augment.views(images, sizes, 2, generator)
    if not ctx.cuda:
        return out, None
    ctx.sync()
    return out, torch.cuda.max_memory_allocated(ctx.device) - base


def check(ctx) -> Outcome:
    from mocobench.pretrain.batch_aug import BatchAugment
    from mocobench.pretrain.cpu_aug import MEAN, STD

    s = ctx.shapes
    augment = BatchAugment(version="v2", size=s.aug_size, min_scale=0.2, mean=MEAN, std=STD)
    images, sizes = decoded_batch(ctx)
    out, peak = views_and_peak(augment, images, sizes, 1, ctx)
    with deterministic_algorithms():
        a, peak_det = views_and_peak(augment, images, sizes, 2, ctx)
        b, _ = views_and_peak(augment, images, sizes, 2, ctx)
    c, _ = views_and_peak(augment, images, sizes, 3, ctx)
    details = {"batch": s.aug_batch, "size": s.aug_size, "input_shape": list(images.shape),
               "output_shape": list(out.shape), "input_gib": gib(images.numel()), "output_gib": gib(out.numel() * 4),
               "peak_gib": gib(peak), "peak_deterministic_gib": gib(peak_det),
               "budget_gib": s.aug_memory_budget_gib, "same_seed_equal": bool(torch.equal(a, b)),
               "other_seed_differs": not torch.equal(a, c), "finite": bool(torch.isfinite(out).all())}
    memory = (f"peak {details['peak_gib']} GiB, deterministic {details['peak_deterministic_gib']} GiB"
              if ctx.cuda else "memory not measured on a CPU")
    line = f"batch {s.aug_batch} -> {tuple(out.shape)}: {memory}"
    problems = []
    if not details["same_seed_equal"]:
        problems.append("same seed gave different views under deterministic algorithms")
    if not details["other_seed_differs"]:
        problems.append("another seed gave the same views")
    if not details["finite"]:
        problems.append("non-finite values")
    budget = s.aug_memory_budget_gib
    if ctx.cuda and budget is not None:
        for key in ("peak_gib", "peak_deterministic_gib"):
            if details[key] > budget:
                problems.append(f"{key} {details[key]} > budget {budget} GiB")
    if problems:
        return failed(f"{line}; " + "; ".join(problems), **details)
    return passed(f"{line}; same seed -> same views (deterministic mode)"
                  + (f"; within {budget} GiB" if ctx.cuda and budget else ""), **details)
