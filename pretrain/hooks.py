"""What happens around the training step: small hook objects, called in order by `Trainer.train()`.

    before_train -> [before_epoch -> [before_step -> run_step -> after_step] * steps -> after_epoch] * epochs
    -> after_train (also when training stops on an error)

A hook reads the trainer and the state of the step or epoch it is handed, and writes only to that state
(or to what it owns: the optimizer's lr, the log, the checkpoint folder). Nothing comes back through
attributes of the trainer.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from mocobench.common import provenance
from mocobench.common.agreement import ranks_with
from mocobench.pretrain.data import DataError, knn_paths
from mocobench.pretrain.decode import CPU_DECODED
from mocobench.pretrain.distributed import all_gather_objects, barrier
from mocobench.pretrain.knn import knn_top1
from mocobench.pretrain.log import append_entry, skipped_images
from mocobench.pretrain.metrics import LossWindow, Reading
from mocobench.pretrain.schedules import key_momentum, learning_rate

if TYPE_CHECKING:
    from mocobench.pretrain.trainer import Trainer

log = logging.getLogger("mocobench.pretrain.trainer")


@dataclass
class StepState:
    """One training step, as the hooks see it."""
    epoch: int
    step: int  # steps finished before this one
    skipped: list[str]  # the loader's notes on unreadable files it replaced in this batch ("" for none)
    lr: float = math.nan  # set by Schedules
    momentum: float | None = None  # of the key encoder (MoCo), set by Schedules
    loss: torch.Tensor | None = None  # the step's local loss, on the device (not read: no host sync)


@dataclass
class EpochState:
    """One finished epoch, as the hooks see it."""
    epoch: int  # 0-based: epoch + 1 epochs are done
    last: int  # the epoch count this call of train() stops at
    entry: dict[str, Any] = field(default_factory=dict)  # extra fields of the epoch's log line (kNN)

    @property
    def finished(self) -> int:
        return self.epoch + 1


class Hook:
    def before_train(self, trainer: Trainer) -> None: ...

    def before_epoch(self, trainer: Trainer, epoch: int) -> None: ...

    def before_step(self, trainer: Trainer, state: StepState) -> None: ...

    def after_step(self, trainer: Trainer, state: StepState) -> None: ...

    def after_epoch(self, trainer: Trainer, state: EpochState) -> None: ...

    def after_train(self, trainer: Trainer) -> None: ...


class Schedules(Hook):
    """This step's learning rate (set on the optimizer) and key-encoder momentum, from optim.* and moco.*."""

    def before_step(self, trainer: Trainer, state: StepState) -> None:
        optim, moco = trainer.cfg.optim, trainer.cfg.moco
        state.lr = learning_rate(state.step, steps_per_epoch=trainer.steps_per_epoch, epochs=optim.epochs,
                                 base_lr=trainer.base_lr, schedule=optim.schedule, milestones=optim.steps,
                                 warmup_epochs=optim.warmup_epochs)
        for group in trainer.optimizer.param_groups:
            group["lr"] = state.lr
        state.momentum = key_momentum(state.step, total_steps=optim.epochs * trainer.steps_per_epoch,
                                      base=moco.momentum, schedule=moco.momentum_schedule)


class SkippedImages(Hook):
    """Unreadable images the loaders replaced: each reported once per run (a warning and a "skipped" line in
    log.jsonl), however many epochs, ranks and loader workers meet it, and counted over all ranks, so that every
    rank stops at the same step when there are more than data.max_bad_images. Under data.decode=gpu, the files
    the workers decoded on the CPU instead (notes prefixed CPU_DECODED) are reported the same way, once per run
    (an info line and a "cpu_decoded" line), and counted in `cpu_decoded`, not against data.max_bad_images.

    The notes are gathered from all ranks (a collective) every train.log_every steps and at the end of each
    epoch, the same steps on every rank, rather than every step: no extra host synchronisation per step."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.cpu_decoded: set[str] = set()
        self.unreported: list[str] = []

    def before_train(self, trainer: Trainer) -> None:
        # reported before an interruption: not again (a fresh run's log was emptied when it was built)
        resumed = trainer.resume_from is not None
        self.seen = set(skipped_images(trainer.out)) if resumed else set()
        self.cpu_decoded = set(skipped_images(trainer.out, kind="cpu_decoded")) if resumed else set()

    def before_step(self, trainer: Trainer, state: StepState) -> None:
        self.unreported += [item for item in state.skipped if item]

    def after_step(self, trainer: Trainer, state: StepState) -> None:
        if trainer.step % trainer.cfg.train.log_every == 0:
            self.report(trainer, state.epoch, trainer.step)

    def after_epoch(self, trainer: Trainer, state: EpochState) -> None:
        self.report(trainer, state.epoch, trainer.step)

    def report(self, trainer: Trainer, epoch: int, step: int) -> None:
        gathered = [item for part in all_gather_objects(self.unreported) for item in part]
        self.unreported = []
        for text in (t for item in gathered for t in item.split("\n")):
            if text.startswith(CPU_DECODED):
                self.report_cpu_decoded(trainer, text[len(CPU_DECODED):], epoch, step)
                continue
            path, _, reason = text.partition(" (")
            if path in self.seen:
                continue
            self.seen.add(path)
            if trainer.env.is_main:
                log.warning("skipping unreadable image %s (%s; listed in %s)", path, reason.rstrip(")"),
                            trainer.out / "log.jsonl")
                append_entry(trainer.out, {"kind": "skipped", "path": path, "reason": reason.rstrip(")"),
                                           "epoch": epoch, "step": step})
        limit = trainer.cfg.data.max_bad_images
        if len(self.seen) > limit:
            raise DataError(f"more than {limit} unreadable images (listed in {trainer.out / 'log.jsonl'}); fix or "
                            f"remove them, or raise data.max_bad_images")

    def report_cpu_decoded(self, trainer: Trainer, text: str, epoch: int, step: int) -> None:
        path, _, reason = text.partition(" (")
        if path in self.cpu_decoded:
            return
        self.cpu_decoded.add(path)
        if trainer.env.is_main:
            log.info("decoded on the CPU, not on the device: %s (%s)", path, reason.rstrip(")"))
            append_entry(trainer.out, {"kind": "cpu_decoded", "path": path, "reason": reason.rstrip(")"),
                                       "epoch": epoch, "step": step})


class KnnMonitor(Hook):
    """kNN top-1 of the backbone every knn.every epochs and after the last one, into the epoch's log line."""

    def after_epoch(self, trainer: Trainer, state: EpochState) -> None:
        every, epochs = trainer.cfg.knn.every, trainer.cfg.optim.epochs
        if every and (state.finished % every == 0 or state.finished == epochs):
            state.entry["knn_top1"] = self.measure(trainer)

    @staticmethod
    def measure(trainer: Trainer) -> float:
        """kNN top-1 of the backbone (rank 0's), the extraction shared by all ranks (pretrain/knn.py)."""
        cfg, knn = trainer.cfg, trainer.cfg.knn
        train_dir, val_dir = knn_paths(cfg)
        return knn_top1(trainer.model.backbone, train_dir, val_dir, image_size=cfg.data.image_size,
                        device=trainer.env.device, k=knn.k, temperature=knn.temperature, batch_size=knn.batch_size,
                        workers=cfg.data.workers, progress=cfg.train.progress, limit=knn.limit,
                        distributed=trainer.env.world_size > 1)


def finite(reading: Reading, device=None) -> float:
    """The value of a loss reading; a NaN/inf loss on any rank stops every rank at the same step (agreed by one
    all-reduce, common/agreement.py), with what to change."""
    value = reading.value()
    ranks = ranks_with(not np.isfinite(value), device=device)
    if ranks:
        m = reading.meta
        raise FloatingPointError(f"non-finite loss in steps {m['first']}..{m['step']} on rank(s) {ranks} (this "
                                 f"rank's {value}, lr {m['lr']:.4g}); every rank stops here. Lower optim.lr or "
                                 f"switch train.amp to bf16/none")
    return value


class Logging(Hook):
    """The run's header, the progress bar, a "step" line every train.log_every steps and an "epoch" line per
    epoch in log.jsonl (and TensorBoard). Losses stay on the device; each interval's mean is read one
    interval later (metrics.py), so logging never makes the host wait for the GPU."""

    def __init__(self) -> None:
        self.writer = None
        self.bar = None

    def before_train(self, trainer: Trainer) -> None:
        if not trainer.env.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # a bare GPU image without tensorboard: log.jsonl still has everything
            log.warning("TensorBoard unavailable (%s): scalars only in log.jsonl", e)
        else:
            self.writer = SummaryWriter(str(trainer.out / "tb"))
        cfg, optim, world = trainer.cfg, trainer.cfg.optim, trainer.world
        prov = provenance.collect()
        log.info(f"git {prov['git_sha']}, torch {prov['versions']['torch']}, device {trainer.env.device}, "
                 f"world size {trainer.env.world_size}")
        log.info(f"{cfg.mode} {cfg.arch} ({cfg.stem} stem): {len(trainer.dataset)} images, "
                 f"global batch {world.global_batch}, lr {trainer.base_lr:.4g} (= {optim.lr} x {world.global_batch}/"
                 f"{optim.base_batch}), {world.per_process} images per process"
                 + (f" in {world.splits} BN group(s)" if world.shuffle_bn else "")
                 + f", {trainer.steps_per_epoch} steps/epoch, "
                 f"epochs {trainer.start_epoch}->{optim.epochs}")

    def before_epoch(self, trainer: Trainer, epoch: int) -> None:
        device = trainer.env.device
        self.window, self.epoch_losses, self.pending = LossWindow(device), LossWindow(device), None
        self.bar = tqdm(total=trainer.steps_per_epoch, desc=f"epoch {epoch + 1}/{trainer.cfg.optim.epochs}",
                        disable=not (trainer.env.is_main and trainer.cfg.train.progress), dynamic_ncols=True)
        self.tick, self.first, self.lr = time.perf_counter(), trainer.step + 1, math.nan

    def after_step(self, trainer: Trainer, state: StepState) -> None:
        self.window.add(state.loss)
        self.epoch_losses.add(state.loss)
        self.lr = state.lr
        self.bar.update(1)
        if trainer.step % trainer.cfg.train.log_every == 0 or self.window.count == trainer.steps_per_epoch:
            now = time.perf_counter()
            rate = self.window.count * trainer.world.global_batch / (now - self.tick)
            reading = self.window.read_async(epoch=state.epoch, step=trainer.step, first=self.first, lr=state.lr,
                                             rate=rate)
            if self.pending is not None:
                self._write_steps(trainer, self.pending)
            self.pending, self.tick, self.first = reading, now, trainer.step + 1

    def _write_steps(self, trainer: Trainer, reading: Reading) -> None:
        m = reading.meta
        loss = finite(reading, trainer.env.device)
        trainer.write_log({"kind": "step", "epoch": m["epoch"], "step": m["step"], "loss": loss, "lr": m["lr"],
                           "pairs_per_s": m["rate"]}, self.writer)
        self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{m['lr']:.3g}", pairs_s=f"{m['rate']:.1f}")

    def after_epoch(self, trainer: Trainer, state: EpochState) -> None:
        if self.pending is not None:
            self._write_steps(trainer, self.pending)
        self.bar.close()
        epochs, step = trainer.cfg.optim.epochs, trainer.step
        loss = finite(self.epoch_losses.read_async(first=step - self.epoch_losses.count + 1, step=step, lr=self.lr),
                      trainer.env.device)
        entry = {"kind": "epoch", "epoch": state.epoch, "step": step, "loss": loss, "lr": self.lr} | state.entry
        trainer.write_log(entry, self.writer)
        knn = entry.get("knn_top1")
        trainer.info(f"epoch {state.finished}/{epochs}: loss {loss:.4f}"
                     + (f", kNN top-1 {knn:.2f}%" if knn is not None else ""))

    def after_train(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Checkpointer(Hook):
    """A checkpoint every train.checkpoint_every epochs and at the last epoch of this call (main process)."""

    def after_epoch(self, trainer: Trainer, state: EpochState) -> None:
        if state.finished % trainer.cfg.train.checkpoint_every == 0 or state.finished == state.last:
            if trainer.env.is_main:
                trainer.info(f"saved {trainer.save_checkpoint(state.finished)}")
            barrier()
