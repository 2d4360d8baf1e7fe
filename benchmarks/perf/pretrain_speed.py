"""MoCo pretraining throughput (image pairs per second) of the real training step.

Runs `pretrain.trainer.Trainer.run_step` (forward of both encoders, Shuffle BN, queue, backward, SGD)
on random images already on the device, so data loading is excluded: this is the model's ceiling.

    python -m mocobench.benchmarks.perf.pretrain_speed --preset cpu-tiny          # < 1 min on 2 CPU cores
    python -m mocobench.benchmarks.perf.pretrain_speed --preset cpu-r50           # ResNet-50 224 px, batch 8, CPU
    python -m mocobench.benchmarks.perf.pretrain_speed --preset gpu-r50 --amp bf16 --channels-last   # one GPU

The ladder measures end to end from JPEG files (DataLoader workers, augmentation, step), one cumulative
stage at a time: fp32 with CPU augmentation, + AMP (bf16), + channels_last, + GPU augmentation
(data.aug_device=gpu: workers only decode), + torch.compile; with each stage's ratio to the first:
    python -m mocobench.benchmarks.perf.pretrain_speed --ladder                     # tiny CPU shape, < 1 min
    python -m mocobench.benchmarks.perf.pretrain_speed --ladder --preset gpu-r50    # ResNet-50 224 px, one GPU
The paper's reference: 8 V100, fp32, batch 256: ~168 pairs/s per V100 (53 h for 200 ImageNet epochs).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mocobench.common.warnings_policy import apply_command_policy
from mocobench.pretrain.batches import DeviceBatch

PRESETS = {
    "cpu-tiny": dict(arch="resnet18", stem="small", size=32, batch=16, queue=4096, steps=4, warmup=1, device="cpu"),
    "cpu-ladder": dict(arch="resnet18", stem="small", size=32, batch=32, queue=4096, steps=4, warmup=2, device="cpu"),
    "cpu-r50": dict(arch="resnet50", stem="standard", size=224, batch=8, queue=4096, steps=3, warmup=1, device="cpu"),
    "gpu-r50": dict(arch="resnet50", stem="standard", size=224, batch=256, queue=65536, steps=30, warmup=10,
                    device="cuda"),
}


def measure(arch: str, stem: str, size: int, batch: int, queue: int, steps: int, warmup: int, device: str,
            amp: str = "none", channels_last: bool = False, bn_groups: int = 8, threads: int | None = None) -> dict:
    from mocobench.common import provenance
    from mocobench.pretrain.config import load_config
    from mocobench.pretrain.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        # the trainer wants a dataset of at least one batch; the timed steps feed random tensors instead
        for i in range(batch):
            (Path(tmp) / "data" / "c0").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(Path(tmp) / "data" / "c0" / f"{i}.png")
        cfg = load_config("demo", [
            f"arch={arch}", f"stem={stem}", "data.source=imagefolder", f"data.path={tmp}/data",
            f"data.image_size={size}", *RECIPE,
            f"moco.queue_size={queue}", f"moco.bn_groups={bn_groups}", f"optim.batch_size={batch}",
            f"train.device={device}", f"train.amp={amp}", f"train.channels_last={channels_last}",
            f"train.output_dir={tmp}/out", "train.progress=false", "data.workers=0",
            f"train.threads={threads if threads else 'null'}"])
        trainer = Trainer(cfg)
        # the step takes (augmented views, targets), as with data.aug_device=cpu
        assert isinstance(trainer.prepare, DeviceBatch)
        images = torch.randn(batch, 2, 3, size, size, device=trainer.env.device)
        targets = torch.zeros(batch, dtype=torch.long)
        sync = torch.cuda.synchronize if trainer.env.device.type == "cuda" else (lambda: None)
        for _ in range(warmup):
            trainer.run_step((images, targets))
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            loss = trainer.run_step((images, targets))
        sync()
        elapsed = time.perf_counter() - start
    prov = provenance.collect()
    return {"arch": arch, "stem": stem, "size": size, "batch": batch, "queue": queue, "amp": amp,
            "channels_last": channels_last, "device": device, "steps": steps,
            "pairs_per_s": round(batch * steps / elapsed, 2), "s_per_step": round(elapsed / steps, 3),
            "loss": round(float(loss), 3),
            "torch_threads": torch.get_num_threads(), "git_sha": prov["git_sha"],
            "gpus": prov["device"]["gpus"], "torch": prov["versions"]["torch"]}


# what the demo config (the base of both measurements) changes from MoCo v2 that matters here: it batches the
# augmentation on the device and trains with AdamW; the benchmark measures the paper's step (SGD) and starts
# from the per-image CPU augmentation in the loader workers
RECIPE = ("data.aug_device=cpu", "optim.optimizer=sgd")
# cumulative stages of the ladder: each adds its overrides to the previous ones
LADDER = (("fp32, CPU aug", ()), ("+ AMP bf16", ("train.amp=bf16",)),
          ("+ channels_last", ("train.channels_last=true",)), ("+ GPU aug", ("data.aug_device=gpu",)),
          ("+ compile", ("train.compile=true",)))
# source JPEG sizes: CIFAR-like for the small-stem shapes, ImageNet-like (varying, ~500 x 375) otherwise
SOURCES = {"small": [(32, 32)], "standard": [(375, 500), (500, 375), (333, 500), (500, 400)]}


def write_jpegs(root: Path, n: int, sizes: list[tuple[int, int]], seed: int = 0) -> Path:
    """n JPEG files (quality 90) with smooth colours and noise, in one class folder; returns the ImageFolder."""
    rng = np.random.default_rng(seed)
    folder = root / "jpeg" / "c0"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:h, 0:w]
        img = rng.random(3) * 255 * (0.5 + 0.5 * np.stack([xx / w, yy / h, 1 - xx / w], -1))
        img = (img + rng.normal(0, 20, img.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:05d}.jpg", quality=90)
    return folder.parent


def ladder(arch: str, stem: str, size: int, batch: int, queue: int, steps: int, warmup: int, device: str,
           workers: int, threads: int | None = None, stages: int = len(LADDER)) -> list[dict]:
    """pairs/s end to end (JPEG files -> loader -> augmentation -> step) for each cumulative stage (warmup >= 1)."""
    from mocobench.pretrain.config import load_config
    from mocobench.pretrain.trainer import Trainer

    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_jpegs(Path(tmp), batch * (warmup + steps), SOURCES[stem])
        overrides: list[str] = []
        for k, (name, extra) in enumerate(LADDER[:stages]):
            overrides += list(extra)
            cfg = load_config("demo", [
                f"arch={arch}", f"stem={stem}", "data.source=imagefolder", f"data.path={data}",
                f"data.image_size={size}", "data.aug=v2", "data.min_scale=0.2", f"data.workers={workers}",
                f"moco.queue_size={queue}", f"optim.batch_size={batch}", *RECIPE,
                f"train.device={device}", f"train.output_dir={tmp}/out{k}", "train.progress=false",
                f"train.threads={threads if threads else 'null'}", *overrides])
            trainer = Trainer(cfg)
            sync = torch.cuda.synchronize if trainer.env.device.type == "cuda" else (lambda: None)
            trainer.model.train()
            # one epoch of warmup + steps batches, workers already started; a batch's last field lists the
            # unreadable files the loader skipped (the trainer's loop reports them), not a step input
            it = (tuple(batch[:-1]) for batch in trainer.loader)
            compile_start = time.perf_counter()
            first = next(it)  # CPU aug: float views N x 2 x 3 x S x S; batched aug: the decoded uint8 images
            loaded = str(first[0].dtype).removeprefix("torch.")
            trainer.run_step(first)
            for _ in range(warmup - 1):
                trainer.run_step(next(it))
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                loss = trainer.run_step(next(it))
            sync()
            elapsed = time.perf_counter() - start
            rate = batch * steps / elapsed
            results.append({"stage": name, "pairs_per_s": round(rate, 2),
                            # the augmentation this stage's trainer ran: per image in the loader workers (cpu) or
                            # batched in the training process (gpu: on the device, the CPU on a CPU-only machine)
                            "aug_device": "cpu" if isinstance(trainer.prepare, DeviceBatch) else "gpu",
                            "loaded": loaded,
                            "ratio": round(rate / results[0]["pairs_per_s"], 2) if results else 1.0,
                            "warmup_s": round(start - compile_start, 1), "loss": round(float(loss), 3)})
            print(f"{name:18s} {rate:9.1f} pairs/s  x{results[-1]['ratio']:.2f}  "
                  f"(warmup {results[-1]['warmup_s']} s)", flush=True)
            del trainer, it
    return results


def main(argv: list[str] | None = None) -> int:
    apply_command_policy()  # the command's warnings policy (and its children's), before Detectron2 loads
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="default: cpu-tiny (with --ladder: cpu-ladder)")
    p.add_argument("--ladder", action="store_true", help="end to end from JPEG files, per cumulative stage")
    p.add_argument("--workers", type=int, default=None, help="--ladder: loader workers (default: 2 on CPU, 12 on GPU)")
    p.add_argument("--stages", type=int, default=len(LADDER), help="--ladder: the first N stages only")
    for key in ("arch", "stem", "device"):
        p.add_argument(f"--{key}")
    for key in ("size", "batch", "queue", "steps", "warmup"):
        p.add_argument(f"--{key}", type=int)
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    args.preset = args.preset or ("cpu-ladder" if args.ladder else "cpu-tiny")
    settings = dict(PRESETS[args.preset])
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    if args.ladder:
        from mocobench.common import provenance

        workers = args.workers if args.workers is not None else (2 if settings["device"] == "cpu" else 12)
        stages = ladder(**settings, workers=workers, threads=args.threads, stages=args.stages)
        prov = provenance.collect()
        print(json.dumps({"ladder": stages, **settings, "workers": workers, "torch_threads": torch.get_num_threads(),
                          "git_sha": prov["git_sha"], "gpus": prov["device"]["gpus"],
                          "torch": prov["versions"]["torch"]}))
        return 0
    result = measure(**settings, amp=args.amp, channels_last=args.channels_last, threads=args.threads)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
