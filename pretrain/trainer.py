"""The pretraining loop: MoCo (or the supervised baseline) with SGD (or AdamW), one visible step, hooks around it.

    trainer = Trainer(cfg, resume="auto"); final_checkpoint = trainer.train()

Works in one process (CPU or GPU; Shuffle BN emulated by BN over sub-batches) and under torchrun
(DDP, keys gathered in rank order, Shuffle BN across processes).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from mocobench.common import provenance
from mocobench.common.atomic import write_text
from mocobench.pretrain import checkpoint as ckpt_lib
from mocobench.pretrain import rng
from mocobench.pretrain.config import ConfigError, config_diff, dump
from mocobench.pretrain.data import DataError, batch_augmentation, build_training_dataset, knn_paths, pad_collate
from mocobench.pretrain.distributed import (
    DistEnv,
    DistributedExchange,
    LocalExchange,
    all_gather_objects,
    barrier,
    init_distributed,
)
from mocobench.pretrain.encoders import build_resnet
from mocobench.pretrain.knn import knn_top1
from mocobench.pretrain.log import append_entry, skipped_images, trim_after
from mocobench.pretrain.metrics import LossWindow, Reading
from mocobench.pretrain.moco import MoCo, Supervised
from mocobench.pretrain.optimizer import build_optimizer
from mocobench.pretrain.sampler import GlobalBatchSampler
from mocobench.pretrain.schedules import key_momentum, learning_rate, scaled_lr

log = logging.getLogger(__name__)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class RunError(RuntimeError):
    """The output directory or the resume checkpoint does not fit this run."""


def build_model(cfg: dict, *, num_classes: int, world_size: int = 1,
                exchange=None) -> MoCo | Supervised:
    """The network a config describes (randomly initialised; seed the RNG before calling)."""
    if cfg["mode"] == "supervised":
        return Supervised(encoder=build_resnet(cfg["arch"], num_classes=num_classes, stem=cfg["stem"]))
    m, batch = cfg["moco"], cfg["optim"]["batch_size"]
    splits = 1
    if m["shuffle_bn"]:
        if m["bn_groups"] % world_size:
            raise ConfigError(f"moco.bn_groups={m['bn_groups']} is not divisible by the world size {world_size}")
        splits = max(1, m["bn_groups"] // world_size)
        if (batch // world_size) % splits:
            raise ConfigError(f"per-process batch {batch // world_size} is not divisible into {splits} BN groups "
                              f"(moco.bn_groups / world size)")
    encoder = build_resnet(cfg["arch"], num_classes=m["dim"], stem=cfg["stem"], mlp=m["mlp"], bn_splits=splits)
    model = MoCo(encoder=encoder, dim=m["dim"], queue_size=m["queue_size"], momentum=m["momentum"],
                 temperature=m["temperature"], exchange=exchange, shuffle_keys=m["shuffle_bn"])
    try:
        model.check_batch(batch)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return model


class Trainer:
    def __init__(self, cfg: dict, *, resume: str | None = None, env: DistEnv | None = None) -> None:
        self.cfg = cfg
        self.env = env or init_distributed(cfg["train"]["device"])
        t, o = cfg["train"], cfg["optim"]
        if t["threads"]:
            torch.set_num_threads(int(t["threads"]))
        self.out = Path(t["output_dir"])
        if o["batch_size"] % self.env.world_size:
            raise ConfigError(f"optim.batch_size={o['batch_size']} (global) is not divisible by the "
                              f"{self.env.world_size} processes")
        if t["deterministic"]:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True
        self.resume_from = self._check_output_dir(resume)

        self.dataset = build_training_dataset(cfg)
        self.dataset.seed = t["seed"]
        try:
            self.sampler = GlobalBatchSampler(len(self.dataset), global_batch=o["batch_size"], rank=self.env.rank,
                                              world_size=self.env.world_size, seed=t["seed"])
        except ValueError as e:  # fewer images than one global batch, or a batch the processes cannot split
            raise ConfigError(str(e)) from None
        d = cfg["data"]
        workers = d["workers"]
        # data.aug_device=gpu: the workers decode, `self.augment` crops and colours the whole batch on the device
        self.augment = batch_augmentation(cfg) if d["aug_device"] == "gpu" else None
        self.aug_generator = torch.Generator(self.env.device)
        self.loader = DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=workers,
                                 pin_memory=self.env.device.type == "cuda",
                                 collate_fn=pad_collate if self.augment else None,
                                 # workers are not persistent: each epoch's workers take a fresh copy of the dataset
                                 # with its current `epoch`, which seeds every sample's augmentation (persistent
                                 # workers kept the epoch they started with: the same crops every epoch, and a
                                 # resumed run's augmentations differed from the uninterrupted run's)
                                 persistent_workers=False, prefetch_factor=d["prefetch"] if workers else None)
        self.steps_per_epoch = len(self.sampler)

        torch.manual_seed(t["seed"])  # identical initial weights and queue on every rank
        exchange = (DistributedExchange(seed=t["seed"]) if self.env.world_size > 1 else LocalExchange(seed=t["seed"]))
        self.exchange = exchange
        model = build_model(cfg, num_classes=max(1, len(self.dataset.classes)), world_size=self.env.world_size,
                            exchange=exchange)
        if cfg["mode"] == "supervised" and len(self.dataset.classes) < 2:
            raise ConfigError("mode=supervised needs at least 2 classes in the ImageFolder")
        self.memory_format = torch.channels_last if t["channels_last"] else torch.contiguous_format
        self.model = model.to(self.env.device, memory_format=self.memory_format)
        device_ids = [self.env.local_rank] if self.env.device.type == "cuda" else None
        self.ddp = (DistributedDataParallel(self.model, device_ids=device_ids, broadcast_buffers=False)
                    if self.env.world_size > 1 else None)
        self.base_lr = scaled_lr(o["lr"], o["batch_size"], o["base_batch"])
        self.optimizer = build_optimizer(self.model.parameters(), name=o["optimizer"], lr=self.base_lr,
                                         momentum=o["momentum"], weight_decay=o["weight_decay"], impl=o["impl"])
        if t["compile"]:
            for encoder in self.model.encoders():
                encoder.compile()  # in place: parameter names and checkpoints unchanged
        self.amp_dtype = AMP_DTYPES.get(t["amp"])
        self.scaler = torch.amp.GradScaler(self.env.device.type, enabled=t["amp"] == "fp16")
        self.start_epoch, self.step = 0, 0
        self.history: list[dict[str, Any]] = []  # what was logged, also kept in memory (tests, callers)
        self.skipped: set[str] = set()  # unreadable training images reported so far in this run
        self.writer = None
        if self.resume_from is not None:
            self._load(self.resume_from)
        elif self.env.is_main:
            trim_after(self.out, 0)  # a run killed before its first checkpoint: start its log afresh

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
        self.skipped = set(skipped_images(self.out))  # reported before the interruption: not again
        self._info(f"resumed from {path} (epoch {self.start_epoch}, step {self.step})")

    def _state_dict(self) -> dict[str, torch.Tensor]:
        return {f"module.{k}": v.detach().cpu() for k, v in self.model.checkpoint_state().items()}

    def save_checkpoint(self, finished_epochs: int) -> Path:
        path = ckpt_lib.checkpoint_path(self.out, finished_epochs)
        ckpt = {"epoch": finished_epochs, "arch": self.cfg["arch"], "state_dict": self._state_dict(),
                "optimizer": self.optimizer.state_dict(), "config": self.cfg, "step": self.step,
                "scaler": self.scaler.state_dict(), "exchange": self.exchange.state_dict(),
                "sampler": {"seed": self.sampler.seed, "epoch": finished_epochs},
                "rng": rng.capture(self.env.device),
                "provenance": ckpt_lib.plain(provenance.collect() | {"world_size": self.env.world_size})}
        return ckpt_lib.save_atomic(ckpt, path)

    # ---------------------------------------------------------------- logging
    def _info(self, msg: str) -> None:
        if self.env.is_main:
            log.info(msg)

    def _log(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        if not self.env.is_main:
            return
        append_entry(self.out, entry)
        if self.writer is not None:
            for key, value in entry.items():
                if key not in ("epoch", "step", "kind") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{entry['kind']}/{key}", value, entry["step"])

    def _report_skipped(self, skipped: list[str], epoch: int) -> None:
        """Unreadable images the loaders replaced since the last report, on every rank (gathered: a collective,
        called by all ranks at the same step): each reported once per run (warning and a "skipped" line in
        log.jsonl), however many epochs, ranks and loader workers meet it, and counted over all ranks, so that
        every rank stops at once when there are more than data.max_bad_images."""
        skipped = [item for part in all_gather_objects([item for item in skipped if item]) for item in part]
        for text in (t for item in skipped if item for t in item.split("\n")):
            path, _, reason = text.partition(" (")
            if path in self.skipped:
                continue
            self.skipped.add(path)
            if self.env.is_main:
                log.warning("skipping unreadable image %s (%s; listed in %s)", path, reason.rstrip(")"),
                            self.out / "log.jsonl")
                append_entry(self.out, {"kind": "skipped", "path": path, "reason": reason.rstrip(")"),
                                        "epoch": epoch, "step": self.step})
        limit = self.cfg["data"]["max_bad_images"]
        if len(self.skipped) > limit:
            raise DataError(f"more than {limit} unreadable images (listed in {self.out / 'log.jsonl'}); fix or "
                            f"remove them, or raise data.max_bad_images")

    # ---------------------------------------------------------------- the step
    def augment_batch(self, images: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """data.aug_device=gpu: decoded uint8 images (padded) on the device -> the augmented views, as the CPU
        path's loader gives them (MoCo: N x 2 x C x H x W; supervised: N x C x H x W). Seeded per step and rank."""
        self.aug_generator.manual_seed(hash((self.cfg["train"]["seed"], self.step, self.env.rank)) & 0x7FFF_FFFF_FFFF)
        views = self.augment.views(images, sizes, 2 if self.cfg["mode"] == "moco" else 1, self.aug_generator)
        return views if self.cfg["mode"] == "moco" else views[:, 0]

    def run_step(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """data -> loss -> backward -> optimizer step, at this step's lr and key momentum.

        Returns the local loss as a 0-d tensor on the device, without reading it (no host synchronisation):
        the training loop sums losses on the device and checks them for NaN/inf when it logs."""
        o, total = self.cfg["optim"], self.cfg["optim"]["epochs"] * self.steps_per_epoch
        lr = learning_rate(self.step, steps_per_epoch=self.steps_per_epoch, epochs=o["epochs"], base_lr=self.base_lr,
                           schedule=o["schedule"], milestones=o["steps"], warmup_epochs=o["warmup_epochs"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.augment is not None:  # (uint8 images, sizes, targets) from pad_collate
            images, sizes, targets = batch
            images = self.augment_batch(images.to(self.env.device, non_blocking=True), sizes)
        else:
            images, targets = batch
            images = images.to(self.env.device, non_blocking=True)
        momentum = key_momentum(self.step, total_steps=total, base=self.cfg["moco"]["momentum"],
                                schedule=self.cfg["moco"]["momentum_schedule"])  # of the key encoder (MoCo)
        net = self.ddp or self.model
        with torch.autocast(self.env.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            inputs = self.model.step_inputs(images, targets.to(self.env.device, non_blocking=True),
                                            memory_format=self.memory_format)
            logits, labels = net(*inputs, momentum)
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        self._lr = lr
        return loss.detach()

    def _finite(self, reading: Reading) -> float:
        """The value of a loss reading; a NaN/inf loss stops the run with what to change."""
        value = reading.value()
        if not np.isfinite(value):
            m = reading.meta
            raise FloatingPointError(f"non-finite loss {value} in steps {m['first']}..{m['step']} (lr {m['lr']:.4g}); "
                                     f"lower optim.lr or switch train.amp to bf16/none")
        return value

    def _log_steps(self, reading: Reading) -> None:
        m = reading.meta
        loss = self._finite(reading)
        self._log({"kind": "step", "epoch": m["epoch"], "step": m["step"], "loss": loss, "lr": m["lr"],
                   "pairs_per_s": m["rate"]})
        m["bar"].set_postfix(loss=f"{loss:.3f}", lr=f"{m['lr']:.3g}", pairs_s=f"{m['rate']:.1f}")

    # ---------------------------------------------------------------- hooks
    def run_knn(self) -> float:
        """kNN top-1 of the backbone (rank 0's), the extraction shared by all ranks (pretrain/knn.py)."""
        k = self.cfg["knn"]
        train_dir, val_dir = knn_paths(self.cfg)
        return knn_top1(self.model.backbone, train_dir, val_dir, image_size=self.cfg["data"]["image_size"],
                        device=self.env.device, k=k["k"], temperature=k["temperature"], batch_size=k["batch_size"],
                        workers=self.cfg["data"]["workers"], progress=self.cfg["train"]["progress"],
                        limit=k["limit"], distributed=self.env.world_size > 1)

    def train(self, stop_after_epoch: int | None = None) -> Path:
        """Train to optim.epochs (or stop after `stop_after_epoch` finished epochs, as an interruption would)."""
        o, t = self.cfg["optim"], self.cfg["train"]
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if not (self.out / "config.yaml").is_file():
                write_text(self.out / "config.yaml", dump(self.cfg))
        if self.start_epoch >= o["epochs"]:
            final = ckpt_lib.checkpoint_path(self.out, o["epochs"])
            self._info(f"nothing to do: the run in {self.out} finished all {o['epochs']} epochs")
            self._info(f"final checkpoint: {final}")
            return final
        if self.env.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # a bare GPU image without tensorboard: log.jsonl still has everything
                log.warning("TensorBoard unavailable (%s): scalars only in log.jsonl", e)
            else:
                self.writer = SummaryWriter(str(self.out / "tb"))
            prov = provenance.collect()
            self._info(f"git {prov['git_sha']}, torch {prov['versions']['torch']}, device {self.env.device}, "
                        f"world size {self.env.world_size}")
            self._info(f"{self.cfg['mode']} {self.cfg['arch']} ({self.cfg['stem']} stem): {len(self.dataset)} images, "
                        f"global batch {o['batch_size']}, lr {self.base_lr:.4g} (= {o['lr']} x {o['batch_size']}/"
                        f"{o['base_batch']}), {self.steps_per_epoch} steps/epoch, "
                        f"epochs {self.start_epoch}->{o['epochs']}")
        last = o["epochs"] if stop_after_epoch is None else min(o["epochs"], stop_after_epoch)
        path = None
        self.model.train()
        for epoch in range(self.start_epoch, last):
            self.sampler.set_epoch(epoch)
            self.dataset.epoch = epoch
            # losses stay on the device; each log interval's mean is read one interval later (metrics.py)
            window, epoch_losses, pending = LossWindow(self.env.device), LossWindow(self.env.device), None
            bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{o['epochs']}",
                       disable=not (self.env.is_main and t["progress"]), dynamic_ncols=True)
            tick, first = time.perf_counter(), self.step + 1
            unreported: list[str] = []  # unreadable files skipped since the last report (gathered when logging)
            for *batch, skipped in bar:  # (images, [sizes,] targets, unreadable files skipped for this batch)
                unreported += skipped
                loss = self.run_step(tuple(batch))
                window.add(loss)
                epoch_losses.add(loss)
                if self.step % t["log_every"] == 0 or window.count == self.steps_per_epoch:
                    now = time.perf_counter()
                    rate = window.count * o["batch_size"] / (now - tick)
                    reading = window.read_async(epoch=epoch, step=self.step, first=first, lr=self._lr, rate=rate,
                                                bar=bar)
                    if pending is not None:
                        self._log_steps(pending)
                    pending, tick, first = reading, now, self.step + 1
                    self._report_skipped(unreported, epoch)
                    unreported = []
            self._report_skipped(unreported, epoch)
            if pending is not None:
                self._log_steps(pending)
            entry = {"kind": "epoch", "epoch": epoch, "step": self.step,
                     "loss": self._finite(epoch_losses.read_async(first=self.step - epoch_losses.count + 1,
                                                                  step=self.step, lr=self._lr)), "lr": self._lr}
            finished = epoch + 1
            k_every = self.cfg["knn"]["every"]
            if k_every and (finished % k_every == 0 or finished == o["epochs"]):
                entry["knn_top1"] = self.run_knn()
            self._log(entry)
            self._info(f"epoch {finished}/{o['epochs']}: loss {entry['loss']:.4f}"
                        + (f", kNN top-1 {entry['knn_top1']:.2f}%" if entry.get("knn_top1") is not None else ""))
            if finished % t["checkpoint_every"] == 0 or finished == last:
                if self.env.is_main:
                    path = self.save_checkpoint(finished)
                    self._info(f"saved {path}")
                barrier()
        if self.writer is not None:
            self.writer.close()
        path = path or ckpt_lib.checkpoint_path(self.out, last)
        if last == o["epochs"]:
            self._info(f"final checkpoint: {path}")
        return path
