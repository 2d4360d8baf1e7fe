"""What split BN (Shuffle BN emulated on one device) costs: MoCo step time with 8 BN groups against plain BN.

    python -m mocobench.benchmarks.perf.split_bn_speed                  # R-18, 32 px, batch 64, K 4096, 2 threads
    python -m mocobench.benchmarks.perf.split_bn_speed --channels-last  # the same in channels_last

Runs the trainer's real step (`Trainer.run_step`: both encoders, queue, backward, SGD) on random pairs already
on the device, for three variants, interleaved over rounds so that a busy machine slows all of them alike:
    plain BN          moco.bn_groups=1 (nn.BatchNorm2d)
    split, fold       moco.bn_groups=8, SplitBatchNorm2d(per_chunk=False): the batch folded into channels,
                      one batch_norm, unfolded (the formula before issue 22; the default on a CPU)
    split, per chunk  moco.bn_groups=8, SplitBatchNorm2d(per_chunk=True): one batch_norm per chunk on views
                      (the default for channels_last on CUDA)
Prints the median seconds per step of each and its overhead over plain BN, and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

VARIANTS = {"plain BN": (1, None), "split, fold": (8, False), "split, per chunk": (8, True)}


def build(tmp: Path, *, bn_groups: int, per_chunk: bool | None, arch: str, size: int, batch: int, queue: int,
          channels_last: bool, device: str, threads: int):
    from mocobench.pretrain.config import load_config
    from mocobench.pretrain.norm import SplitBatchNorm2d
    from mocobench.pretrain.trainer import Trainer

    data = tmp / "data" / "c0"
    if not data.is_dir():  # the trainer wants a dataset of one batch; the timed steps feed random tensors
        data.mkdir(parents=True)
        for i in range(batch):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(data / f"{i}.png")
    out = tmp / f"out{bn_groups}{per_chunk}"
    cfg = load_config("demo", [
        f"arch={arch}", "stem=small", "data.source=imagefolder", f"data.path={data.parent}", f"data.image_size={size}",
        "data.aug_device=cpu", "data.workers=0", f"moco.queue_size={queue}", f"moco.bn_groups={bn_groups}",
        f"optim.batch_size={batch}", "optim.optimizer=sgd", f"train.device={device}",
        f"train.channels_last={channels_last}", f"train.output_dir={out}", "train.progress=false",
        f"train.threads={threads}", "knn.every=0"])
    trainer = Trainer(cfg)
    for m in trainer.model.modules():
        if isinstance(m, SplitBatchNorm2d):
            m.per_chunk = per_chunk
    trainer.model.train()
    return trainer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--queue", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant and round (default 3)")
    a = p.parse_args(argv)
    from mocobench.common import provenance

    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: build(Path(tmp), bn_groups=g, per_chunk=c, arch=a.arch, size=a.size, batch=a.batch,
                                queue=a.queue, channels_last=a.channels_last, device=a.device, threads=a.threads)
                    for name, (g, c) in VARIANTS.items()}
        dev = next(iter(trainers.values())).env.device
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        images = torch.randn(a.batch, 2, 3, a.size, a.size, device=dev)
        targets = torch.zeros(a.batch, dtype=torch.long)
        for trainer in trainers.values():  # warmup
            trainer.run_step((images, targets))
        for _ in range(a.rounds):
            for name, trainer in trainers.items():
                sync()
                start = time.perf_counter()
                for _ in range(a.steps):
                    trainer.run_step((images, targets))
                sync()
                times[name].append((time.perf_counter() - start) / a.steps)
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["plain BN"]
    for name, t in median.items():
        print(f"{name:16s} {t:7.3f} s/step  overhead {100 * (t / base - 1):+5.1f}%  "
              f"(rounds: {', '.join(f'{v:.3f}' for v in times[name])})")
    prov = provenance.collect()
    print(json.dumps({"arch": a.arch, "size": a.size, "batch": a.batch, "queue": a.queue, "threads": a.threads,
                      "channels_last": a.channels_last, "device": a.device, "rounds": a.rounds, "steps": a.steps,
                      "s_per_step": {k: round(v, 4) for k, v in median.items()},
                      "overhead_pct": {k: round(100 * (v / base - 1), 1) for k, v in median.items()},
                      "git_sha": prov["git_sha"], "torch": prov["versions"]["torch"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
