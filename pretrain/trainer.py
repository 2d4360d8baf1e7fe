"""The pretraining loop: MoCo (or the supervised baseline) with SGD (or AdamW), one visible step, hooks around it.

    trainer = Trainer(cfg, resume="auto"); final_checkpoint = trainer.train()

As Detectron2's trainers: construction in `build_*` methods, `run_step` (data -> loss -> backward -> step)
the one visible step, and everything else a hook (hooks.py: schedules, unreadable images, kNN monitor,
logging, checkpoints). The model is anything that meets `PretextModel` (pretext.py).

Works in one process (CPU or GPU; Shuffle BN emulated by BN over sub-batches) and under torchrun
(DDP, keys gathered in rank order, Shuffle BN across processes).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from mocobench.common import provenance
from mocobench.common.atomic import write_text
from mocobench.common.shared_folder import check_shared_folder
from mocobench.pretrain import checkpoint as ckpt_lib
from mocobench.pretrain import rng
from mocobench.pretrain.batches import DeviceAugmentedBatch, DeviceBatch, DeviceDecodedBatch
from mocobench.pretrain.config import ConfigError, PretrainConfig, config_diff, dump
from mocobench.pretrain.data import batch_augmentation, build_training_dataset, training_collate
from mocobench.pretrain.distributed import DistEnv, DistributedExchange, LocalExchange, init_distributed
from mocobench.pretrain.encoders import build_resnet
from mocobench.pretrain.hooks import (
    Checkpointer,
    EpochState,
    Hook,
    KnnMonitor,
    Logging,
    Schedules,
    SkippedImages,
    StepState,
)
from mocobench.pretrain.log import append_entry, trim_after
from mocobench.pretrain.moco import MoCo
from mocobench.pretrain.optimizer import build_optimizer
from mocobench.pretrain.pretext import PretextModel
from mocobench.pretrain.sampler import GlobalBatchSampler
from mocobench.pretrain.supervised import Supervised
from mocobench.pretrain.world import plan_world

log = logging.getLogger(__name__)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class RunError(RuntimeError):
    """The output directory or the resume checkpoint does not fit this run."""


def build_model(cfg: PretrainConfig, *, num_classes: int, world_size: int = 1,
                exchange=None) -> MoCo | Supervised:
    """The network a config describes (randomly initialised; seed the RNG before calling)."""
    if cfg.mode == "supervised":
        return Supervised(encoder=build_resnet(cfg.arch, num_classes=num_classes, stem=cfg.stem))
    m = cfg.moco
    plan = plan_world(cfg, world_size)  # the batch, the queue and the BN groups at this world size (world.py)
    encoder = build_resnet(cfg.arch, num_classes=m.dim, stem=cfg.stem, mlp=m.mlp, bn_splits=plan.splits)
    return MoCo(encoder=encoder, dim=m.dim, queue_size=m.queue_size, momentum=m.momentum,
                temperature=m.temperature, exchange=exchange, shuffle_keys=m.shuffle_bn)


class Trainer:
    def __init__(self, cfg: PretrainConfig, *, resume: str | None = None, env: DistEnv | None = None) -> None:
        self.cfg = cfg
        self.env = env or init_distributed(cfg.train.device)
        t = cfg.train
        if t.threads:
            torch.set_num_threads(int(t.threads))
        self.out = Path(t.output_dir)
        self.world = plan_world(cfg, self.env.world_size)  # refuses a config that cannot run at this world size
        if t.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True
        check_shared_folder(self.out, device=self.env.device)  # every node sees rank 0's checkpoints and log
        self.resume_from = self._check_output_dir(resume)

        self.prepare = self.build_batch_preparation(cfg)
        self.dataset, self.sampler, self.loader = self.build_loader(cfg)
        self.steps_per_epoch = len(self.sampler)
        torch.manual_seed(t.seed)  # identical initial weights and queue on every rank
        self.exchange = DistributedExchange(seed=t.seed) if self.env.world_size > 1 else LocalExchange(seed=t.seed)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        self.model: PretextModel = self.build_model(cfg)
        device_ids = [self.env.local_rank] if self.env.device.type == "cuda" else None
        self.ddp = (DistributedDataParallel(self.model, device_ids=device_ids, broadcast_buffers=False)
                    if self.env.world_size > 1 else None)
        self.base_lr = self.world.lr
        self.optimizer = self.build_optimizer(cfg, self.model)
        self.amp_dtype = AMP_DTYPES.get(t.amp)
        self.scaler = torch.amp.GradScaler(self.env.device.type, enabled=t.amp == "fp16")
        self.hooks: list[Hook] = self.build_hooks()
        self.start_epoch, self.step = 0, 0
        self.history: list[dict[str, Any]] = []  # what was logged, also kept in memory (tests, callers)
        if self.resume_from is not None:
            self._load(self.resume_from)
        elif self.env.is_main:
            trim_after(self.out, 0)  # a run killed before its first checkpoint: start its log afresh

    # ---------------------------------------------------------------- construction
    def build_batch_preparation(self, cfg: PretrainConfig) -> DeviceBatch | DeviceAugmentedBatch | DeviceDecodedBatch:
        """data.aug_device=gpu: the workers decode, the step augments the whole batch on the device
        (data.decode=gpu: the workers read the files, the step decodes and augments them)."""
        if cfg.data.aug_device != "gpu":
            return DeviceBatch(self.env.device)
        kind = DeviceDecodedBatch if cfg.data.decode == "gpu" else DeviceAugmentedBatch
        return kind(batch_augmentation(cfg), device=self.env.device, views=2 if cfg.mode == "moco" else 1,
                    seed=cfg.train.seed, rank=self.env.rank, collate_fn=training_collate(cfg))

    def build_loader(self, cfg: PretrainConfig) -> tuple[Any, GlobalBatchSampler, DataLoader]:
        dataset = build_training_dataset(cfg)
        dataset.seed = cfg.train.seed
        try:  # the batch itself was checked by plan_world (self.world)
            sampler = GlobalBatchSampler(len(dataset), global_batch=self.world.global_batch, rank=self.env.rank,
                                         world_size=self.env.world_size, seed=cfg.train.seed)
        except ValueError as e:  # fewer images than one global batch, or a batch the processes cannot split
            raise ConfigError(str(e)) from None
        if cfg.mode == "supervised" and len(dataset.classes) < 2:
            raise ConfigError("mode=supervised needs at least 2 classes in the ImageFolder")
        workers = cfg.data.workers
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                            pin_memory=self.env.device.type == "cuda", collate_fn=self.prepare.collate_fn,
                            # workers are not persistent: each epoch's workers take a fresh copy of the dataset with
                            # its current `epoch`, which seeds every sample's augmentation (persistent workers kept
                            # the epoch they started with: the same crops every epoch, and a resumed run's
                            # augmentations differed from the uninterrupted run's)
                            persistent_workers=False, prefetch_factor=cfg.data.prefetch if workers else None)
        return dataset, sampler, loader

    def build_model(self, cfg: PretrainConfig) -> PretextModel:
        model = build_model(cfg, num_classes=max(1, len(self.dataset.classes)), world_size=self.env.world_size,
                            exchange=self.exchange)
        model = model.to(self.env.device, memory_format=self.memory_format)
        if cfg.train.compile:
            for encoder in model.encoders():
                encoder.compile()  # in place: parameter names and checkpoints unchanged
        return model

    def build_optimizer(self, cfg: PretrainConfig, model: PretextModel) -> torch.optim.Optimizer:
        o = cfg.optim
        return build_optimizer(model.parameters(), name=o.optimizer, lr=self.base_lr, momentum=o.momentum,
                               weight_decay=o.weight_decay, impl=o.impl)

    def build_hooks(self) -> list[Hook]:
        """In calling order. The kNN monitor runs before Logging writes the epoch line that holds its value."""
        return [Schedules(), SkippedImages(), KnnMonitor(), Logging(), Checkpointer()]

    # ---------------------------------------------------------------- output directory and resume
    def _check_output_dir(self, resume: str | None) -> Path | None:
        saved = self.out / "config.yaml"
        latest = ckpt_lib.latest_checkpoint(self.out)
        if saved.is_file():
            import yaml

            diff = config_diff(yaml.safe_load(saved.read_text()), self.cfg)
            if diff:
                raise RunError(f"{self.out} holds another run (its config.yaml differs: {'; '.join(diff[:6])}). "
                               f"Choose another train.output_dir, or remove that folder yourself.")
        if resume is None:
            if latest is not None:
                raise RunError(f"{self.out} already holds checkpoints of this run (latest {latest.name}); pass "
                               f"--resume auto to continue it, or choose another train.output_dir")
            return None
        if resume == "auto":
            return latest
        path = Path(resume)
        if not path.is_file():
            raise RunError(f"--resume {resume}: no such file (use --resume auto for the latest in {self.out})")
        return path

    def _load(self, path: Path) -> None:
        ckpt = ckpt_lib.load(path)
        diff = config_diff(ckpt.get("config") or {}, self.cfg)
        if diff:
            raise RunError(f"--resume {path}: the checkpoint comes from another config ({'; '.join(diff[:6])})")
        self.model.load_checkpoint_state({k[len("module."):]: v for k, v in ckpt["state_dict"].items()})
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.exchange.load_state_dict(ckpt["exchange"])
        rng.restore(ckpt["rng"], self.env.device)
        self.start_epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        if self.env.is_main:
            trim_after(self.out, self.step)  # lines an interrupted run wrote after this checkpoint
        self.info(f"resumed from {path} (epoch {self.start_epoch}, step {self.step})")

    def _state_dict(self) -> dict[str, torch.Tensor]:
        return {f"module.{k}": v.detach().cpu() for k, v in self.model.checkpoint_state().items()}

    def save_checkpoint(self, finished_epochs: int) -> Path:
        path = ckpt_lib.checkpoint_path(self.out, finished_epochs)
        ckpt = {"epoch": finished_epochs, "arch": self.cfg.arch, "state_dict": self._state_dict(),
                "optimizer": self.optimizer.state_dict(), "config": self.cfg.to_dict(), "step": self.step,
                "scaler": self.scaler.state_dict(), "exchange": self.exchange.state_dict(),
                "sampler": {"seed": self.sampler.seed, "epoch": finished_epochs},
                "rng": rng.capture(self.env.device),
                "provenance": ckpt_lib.plain(provenance.collect() | {"world_size": self.env.world_size})}
        return ckpt_lib.save_atomic(ckpt, path)

    # ---------------------------------------------------------------- logging (used by the hooks)
    def info(self, msg: str) -> None:
        if self.env.is_main:
            log.info(msg)

    def write_log(self, entry: dict[str, Any], writer=None) -> None:
        """One line of log.jsonl (main process), its scalars to TensorBoard's `writer`; kept in `history`."""
        self.history.append(entry)
        if not self.env.is_main:
            return
        append_entry(self.out, entry)
        if writer is not None:
            for key, value in entry.items():
                if key not in ("epoch", "step", "kind") and isinstance(value, (int, float)):
                    writer.add_scalar(f"{entry['kind']}/{key}", value, entry["step"])

    # ---------------------------------------------------------------- the step
    def run_step(self, batch: tuple[torch.Tensor, ...], momentum: float | None = None) -> torch.Tensor:
        """data -> loss -> backward -> optimizer step, at the optimizer's lr (the Schedules hook sets it) and the
        key encoder's `momentum` (None: moco.momentum).

        Returns the local loss as a 0-d tensor on the device, without reading it (no host synchronisation):
        the Logging hook sums losses on the device and checks them for NaN/inf when it logs."""
        images, targets = self.prepare(batch, self.step)
        net = self.ddp or self.model
        with torch.autocast(self.env.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            inputs = self.model.step_inputs(images, targets, memory_format=self.memory_format)
            logits, labels = net(*inputs, momentum=momentum)  # keyword-only (PretextModel)
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return loss.detach()

    # ---------------------------------------------------------------- the loop
    def train(self, stop_after_epoch: int | None = None) -> Path:
        """Train to optim.epochs (or stop after `stop_after_epoch` finished epochs, as an interruption would)."""
        epochs = self.cfg.optim.epochs
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if not (self.out / "config.yaml").is_file():
                write_text(self.out / "config.yaml", dump(self.cfg))
        if self.start_epoch >= epochs:
            final = ckpt_lib.checkpoint_path(self.out, epochs)
            self.info(f"nothing to do: the run in {self.out} finished all {epochs} epochs")
            self.info(f"final checkpoint: {final}")
            return final
        last = epochs if stop_after_epoch is None else min(epochs, stop_after_epoch)
        self.model.train()
        try:
            for hook in self.hooks:
                hook.before_train(self)
            for epoch in range(self.start_epoch, last):
                self.sampler.set_epoch(epoch)
                self.dataset.epoch = epoch
                for hook in self.hooks:
                    hook.before_epoch(self, epoch)
                for *batch, skipped in self.loader:  # (images, [sizes,] targets, unreadable files replaced)
                    state = StepState(epoch=epoch, step=self.step, skipped=skipped)
                    for hook in self.hooks:
                        hook.before_step(self, state)
                    state.loss = self.run_step(tuple(batch), state.momentum)
                    for hook in self.hooks:
                        hook.after_step(self, state)
                finished = EpochState(epoch=epoch, last=last)
                for hook in self.hooks:
                    hook.after_epoch(self, finished)
        finally:
            for hook in self.hooks:
                hook.after_train(self)
        path = ckpt_lib.checkpoint_path(self.out, last)
        if last == epochs:
            self.info(f"final checkpoint: {path}")
        return path
