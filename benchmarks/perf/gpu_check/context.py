"""What every check is handed: the device, the shapes, a scratch folder, the time left."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mocobench.benchmarks.perf.gpu_check.shapes import Shapes


@dataclass
class Context:
    device: torch.device
    shapes: Shapes
    tmp: Path                       # removed at the end of the run
    remaining_s: float | None = None  # of the --budget-s, set before each check

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def folder(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def small_overrides(ctx: Context, data: Path, out: Path, *extra: str) -> list[str]:
    """The small MoCo v2 of the step / logits / resume / DDP checks: ResNet-18, SGD, on ctx.device."""
    s = ctx.shapes
    return ["data.source=imagefolder", f"data.path={data}", f"data.image_size={s.small_size}", "data.workers=0",
            "arch=resnet18", "stem=standard", f"moco.queue_size={s.small_queue}", "moco.bn_groups=2",
            f"optim.batch_size={s.small_batch}", "optim.epochs=2", "optim.warmup_epochs=0", "data.aug=v2",
            "data.aug_device=cpu", "optim.optimizer=sgd", "optim.lr=0.03", "optim.weight_decay=5e-4",
            f"train.device={ctx.device.type}", "train.progress=false", "knn.every=0", "train.checkpoint_every=1",
            "train.log_every=1", f"train.output_dir={out}", *extra]


def write_imagefolder(root: Path, *, classes: int = 2, per_class: int, size: int, seed: int = 0) -> Path:
    """root/c<i>/<n>.png: noisy images whose mean colour depends on the class (kNN / lincls can tell them apart)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / f"c{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.array([255 * (c % 2), 255 * ((c // 2) % 2), 128], dtype=np.float64)
            pixels = (0.6 * base + 0.4 * rng.random((size, size, 3)) * 255).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(d / f"{i}.png")
    return root
