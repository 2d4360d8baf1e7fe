"""The sizes each check runs at: `full` (the issue's shapes, one GPU, about 6 minutes together) and `tiny`
(the same code at toy sizes: a CPU, the test suite)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Shapes:
    # batched augmentation (memory, determinism): a decoded batch of ImageNet-like photos -> 2 views
    aug_batch: int
    aug_size: int
    aug_sources: tuple[tuple[int, int], ...]       # (h, w) of the decoded images
    aug_memory_budget_gib: float | None            # peak-memory ceiling of one batch (None: not judged)
    # the small MoCo of the step, logits, resume and DDP checks (ResNet-18, standard stem: 1/16 of the pixels
    # after its stride-4 stem, the cheapest network the suite builds)
    small_size: int
    small_batch: int
    small_queue: int
    resume_steps: int                              # N of "N steps vs N/2 + resume + N/2" (even)
    # MoCo v2 pretraining speed (ResNet-50) from JPEG files
    speed_arch: str
    speed_stem: str
    speed_size: int
    speed_batch: int
    speed_queue: int
    speed_warmup: int
    speed_steps: int
    speed_distinct_jpegs: int                      # distinct files written; the rest are hard links to them
    speed_sources: tuple[tuple[int, int], ...]     # (h, w) of the JPEG files
    speed_compile: bool                            # the compile stage (minutes of compilation on a CPU)
    # Detectron2 seconds per iteration
    d2_protocol_sizes: bool                        # True: the protocol configs' sizes; False: the demo deltas'
    d2_images_per_gpu: int
    d2_warmup: int
    d2_iters: int
    d2_tiny_input: int | None                      # tiny: shorter side (and crop) instead of the demo's 96 px

    def as_dict(self) -> dict:
        return asdict(self)


# MoCo's ImageNet photos are about 500 x 375 (both orientations)
IMAGENET_LIKE = ((375, 500), (500, 375), (333, 500), (500, 400))

FULL = Shapes(aug_batch=256, aug_size=224, aug_sources=IMAGENET_LIKE, aug_memory_budget_gib=4.0,
              small_size=64, small_batch=32, small_queue=1024, resume_steps=4,
              speed_arch="resnet50", speed_stem="standard", speed_size=224, speed_batch=256, speed_queue=65536,
              speed_warmup=5, speed_steps=10, speed_distinct_jpegs=64, speed_sources=IMAGENET_LIKE,
              speed_compile=True, d2_protocol_sizes=True, d2_images_per_gpu=2, d2_warmup=3, d2_iters=5,
              d2_tiny_input=None)
TINY = Shapes(aug_batch=8, aug_size=32, aug_sources=((40, 48), (48, 36)), aug_memory_budget_gib=None,
              small_size=32, small_batch=8, small_queue=32, resume_steps=2,
              speed_arch="resnet18", speed_stem="standard", speed_size=32, speed_batch=8, speed_queue=64,
              speed_warmup=0, speed_steps=1, speed_distinct_jpegs=4, speed_sources=((40, 48), (48, 36)),
              speed_compile=False, d2_protocol_sizes=False, d2_images_per_gpu=1, d2_warmup=0, d2_iters=1,
              d2_tiny_input=64)
SHAPES = {"full": FULL, "tiny": TINY}
