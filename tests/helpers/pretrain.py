"""Helpers for the pretrain tests (no tests here): tiny ImageFolders and tiny configs."""
from __future__ import annotations

from pathlib import Path

from mocobench.benchmarks.perf.gpu_check.context import write_imagefolder
from mocobench.pretrain.config import PretrainConfig, load_config


def make_imagefolder(root: Path, classes: int = 2, per_class: int = 8, size: int = 20, seed: int = 0) -> Path:
    """root/c<i>/<n>.png: noisy images whose mean colour depends on the class (the GPU check's writer)."""
    return write_imagefolder(root, classes=classes, per_class=per_class, size=size, seed=seed)


def tiny_overrides(data: Path, out: Path, *overrides: str) -> list[str]:
    """MoCo v2, ResNet-18 small stem, 16 px crops, K=32, global batch 8, 2 BN groups, no workers."""
    return [
        "data.source=imagefolder", f"data.path={data}", "data.image_size=16", "data.workers=0", "stem=small",
        "moco.queue_size=32", "moco.bn_groups=2", "optim.batch_size=8", "optim.epochs=2",
        "optim.warmup_epochs=0", "train.device=cpu", "train.progress=false", "knn.every=0",
        "train.checkpoint_every=1", "train.log_every=1", f"train.output_dir={out}",
        "train.threads=1",  # one thread: the same float sums in this process and in subprocesses
        # MoCo v2 as a real run makes it (the demo config itself uses v1 augmentation, AdamW, batched augmentation)
        "data.aug=v2", "data.aug_device=cpu", "optim.optimizer=sgd", "optim.lr=0.03", "optim.weight_decay=5e-4",
        *overrides]


def tiny_config(data: Path, out: Path, *overrides: str) -> PretrainConfig:
    return load_config("demo", tiny_overrides(data, out, *overrides))
