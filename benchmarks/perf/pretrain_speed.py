"""MoCo pretraining throughput (image pairs per second) of the real training step.

Runs `pretrain.trainer.Trainer.run_step` (forward of both encoders, Shuffle BN, queue, backward, SGD)
on random images already on the device, so data loading is excluded: this is the model's ceiling.

    python -m mocobench.benchmarks.perf.pretrain_speed --preset cpu-tiny          # < 1 min on 2 CPU cores
    python -m mocobench.benchmarks.perf.pretrain_speed --preset cpu-r50           # ResNet-50 224 px, batch 8, CPU
    python -m mocobench.benchmarks.perf.pretrain_speed --preset gpu-r50 --amp bf16 --channels-last   # one GPU
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

PRESETS = {
    "cpu-tiny": dict(arch="resnet18", stem="small", size=32, batch=16, queue=4096, steps=4, warmup=1, device="cpu"),
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
            f"data.image_size={size}",
            f"moco.queue_size={queue}", f"moco.bn_groups={bn_groups}", f"optim.batch_size={batch}",
            f"train.device={device}", f"train.amp={amp}", f"train.channels_last={channels_last}",
            f"train.output_dir={tmp}/out", "train.progress=false", "data.workers=0",
            f"train.threads={threads if threads else 'null'}"])
        trainer = Trainer(cfg)
        images = torch.randn(batch, 2, 3, size, size, device=trainer.env.device)
        targets = torch.zeros(batch, dtype=torch.long)
        sync = torch.cuda.synchronize if trainer.env.device.type == "cuda" else (lambda: None)
        for _ in range(warmup):
            trainer.run_step((images, targets))
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.run_step((images, targets))
        sync()
        elapsed = time.perf_counter() - start
    prov = provenance.collect()
    return {"arch": arch, "stem": stem, "size": size, "batch": batch, "queue": queue, "amp": amp,
            "channels_last": channels_last, "device": device, "steps": steps,
            "pairs_per_s": round(batch * steps / elapsed, 2), "s_per_step": round(elapsed / steps, 3),
            "torch_threads": torch.get_num_threads(), "git_sha": prov["git_sha"],
            "gpus": prov["device"]["gpus"], "torch": prov["versions"]["torch"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    for key in ("arch", "stem", "device"):
        p.add_argument(f"--{key}")
    for key in ("size", "batch", "queue", "steps", "warmup"):
        p.add_argument(f"--{key}", type=int)
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    settings = dict(PRESETS[args.preset])
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    result = measure(**settings, amp=args.amp, channels_last=args.channels_last, threads=args.threads)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
