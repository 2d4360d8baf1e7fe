"""One built-in benchmark's training steps, timed outside the trainer's hooks: the shared core of the speed
scripts that report s/iter of a demo trial (kp_lvis_speed.py, vit_trial_speed.py)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from mocobench.detection.benchmarks import BENCHMARKS
from mocobench.detection.config import build_config, num_classes_of
from mocobench.detection.engine import Trainer


@dataclass
class StepTimes:
    cfg: Any                                  # the resolved config the steps ran
    model: torch.nn.Module
    wall: list[float] = field(default_factory=list)   # seconds per step, after the warm-up
    cpu: list[float] = field(default_factory=list)    # process CPU seconds per step, after the warm-up
    loss: torch.Tensor | None = None                  # the last step's total loss


def time_demo_steps(name: str, iters: int, out: str, warmup: int = 3) -> StepTimes:
    """Build benchmark NAME's demo (random init, built-in data, CPU) as the suite's Trainer builds it, and run
    warmup + iters plain steps (data -> losses -> backward -> optimizer step) under Detectron2's EventStorage."""
    from detectron2.utils.events import EventStorage

    cfg = build_config(BENCHMARKS[name], weights=None, random_init=True, synthetic=True)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes_of((*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST))
    cfg.MODEL.DEVICE, cfg.OUTPUT_DIR = "cpu", out
    model = Trainer.build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    data = iter(Trainer.build_train_loader(cfg))
    model.train()
    times = StepTimes(cfg, model)
    with EventStorage():  # what Detectron2's trainer opens around its steps (the losses log into it)
        for i in range(warmup + iters):
            start, start_cpu = time.perf_counter(), time.process_time()
            times.loss = sum(model(next(data)).values())
            optimizer.zero_grad()
            times.loss.backward()
            optimizer.step()
            if i >= warmup:
                times.wall.append(time.perf_counter() - start)
                times.cpu.append(time.process_time() - start_cpu)
    return times
