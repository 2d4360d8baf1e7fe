"""A pretraining config at a world size: what each process computes, checked in one place.

The trainer (at its real world size) and `submit` (at the job's nodes x processes, before anything is
queued) both call `plan_world`; a config that cannot run there is refused with one line.

    plan = plan_world(cfg, world_size=32)   # 4 nodes x 8 GPUs
    plan.per_process, plan.splits, plan.lr  # 32 images, 1 BN group per process, lr 0.12 (batch 1024)

BN groups. `moco.bn_groups` is the number of groups with their own BN statistics in the global batch (the paper's
8 GPUs of 32 images). Each process splits its batch into `splits = max(1, bn_groups // world)` groups:
  world = 1            the whole batch in bn_groups sub-batches (SplitBatchNorm2d): one CPU/GPU trains as 8 GPUs
  world divides it     bn_groups / world sub-batches per process: bn_groups groups in all, as in one process
  world >= bn_groups   one group per process, its own batch: the official DDP code (BN per GPU, no SyncBN,
                       keys computed on the batch shuffled across all processes); the job has `world` groups
  otherwise (e.g. 3)   bn_groups // world per process: world x that many groups, fewer and larger than asked
A process's batch must split evenly into its groups, the global batch over the processes, and the queue
(moco.queue_size) into global batches.
"""
from __future__ import annotations

from dataclasses import dataclass

from mocobench.common.config import ConfigError
from mocobench.pretrain.config import PretrainConfig
from mocobench.pretrain.schedules import scaled_lr


@dataclass(frozen=True)
class WorldPlan:
    world_size: int
    global_batch: int
    per_process: int     # images per process and step
    splits: int          # BN groups per process (1: the process's whole batch, as one GPU of the official code)
    lr: float            # optim.lr by the linear scaling rule at the global batch
    shuffle_bn: bool

    @property
    def bn_groups(self) -> int:
        """Groups with their own BN statistics in the whole job."""
        return self.splits * self.world_size

    @property
    def group_batch(self) -> int:
        """Images per BN group."""
        return self.per_process // self.splits

    def describe(self, cfg: PretrainConfig) -> list[str]:
        o = cfg.optim
        procs = f"{self.world_size} processes" if self.world_size > 1 else "1 process"
        lines = [f"world size {self.world_size}: global batch {self.global_batch} = {procs} x {self.per_process} "
                 f"images",
                 f"lr {self.lr:.4g} = optim.lr {o.lr} x {self.global_batch} / optim.base_batch {o.base_batch} "
                 f"(linear scaling rule)"]
        if cfg.mode != "moco":
            return lines + ["BN: per process (no SyncBN), supervised mode: no queue, no Shuffle BN"]
        m = cfg.moco
        lines.append(f"queue K={m.queue_size} = {m.queue_size // self.global_batch} global batches")
        if not self.shuffle_bn:
            lines.append("Shuffle BN off (moco.shuffle_bn=false): BN over each process's unshuffled batch")
        elif self.world_size == 1:
            lines.append(f"Shuffle BN: {self.bn_groups} BN groups of {self.group_batch} images (sub-batches of the "
                         f"one process), keys on the shuffled batch")
        else:
            groups = ("one per process, as the official DDP code" if self.splits == 1
                      else f"{self.splits} sub-batches per process")
            lines.append(f"Shuffle BN: {self.bn_groups} BN groups of {self.group_batch} images ({groups}; "
                         f"moco.bn_groups={m.bn_groups}), keys on the batch shuffled across all "
                         f"{self.world_size} processes")
        return lines


def data_paths(cfg: PretrainConfig) -> list[str]:
    """The folders a run reads (what planning does not check: it runs where they may not be)."""
    d, k = cfg.data, cfg.knn
    paths = [f"data.path={d.path}"] if d.source != "synthetic" else []
    return paths + [f"knn.{key}={path}" for key, path in (("train_path", k.train_path), ("val_path", k.val_path))
                    if k.every and path]


def bn_splits(bn_groups: int, world_size: int) -> int:
    """BN groups per process: bn_groups // world, at least one (one per process when world >= bn_groups)."""
    return max(1, bn_groups // world_size)


def plan_world(cfg: PretrainConfig, world_size: int) -> WorldPlan:
    """What each of `world_size` processes computes under `cfg`; ConfigError (one line) if it cannot run there."""
    if world_size < 1:
        raise ConfigError(f"world size must be >= 1, got {world_size}")
    o = cfg.optim
    batch = o.batch_size  # a positive integer (config.validate); here: whether the world can split it
    if batch % world_size:
        lower, upper = batch // world_size * world_size, (batch // world_size + 1) * world_size
        choices = f"{lower} or {upper}" if lower else f"{upper}"
        raise ConfigError(f"optim.batch_size={batch} (global) is not divisible by the {world_size} processes: "
                          f"choose a multiple of {world_size}, e.g. optim.batch_size={choices}")
    per_process = batch // world_size
    splits, shuffle = 1, False
    if cfg.mode == "moco":
        m = cfg.moco
        if m.bn_groups < 1:
            raise ConfigError(f"moco.bn_groups must be >= 1, got {m.bn_groups}")
        if m.queue_size % batch:
            raise ConfigError(f"the queue size K={m.queue_size} is not divisible by the global batch size {batch} "
                              f"(per-process batch x world size): the queue would not wrap on a batch boundary. "
                              f"Choose moco.queue_size as a multiple of the global batch.")
        shuffle = bool(m.shuffle_bn)
        if shuffle:
            splits = bn_splits(m.bn_groups, world_size)
            if per_process % splits:
                raise ConfigError(f"the per-process batch {per_process} (optim.batch_size={batch} / {world_size} "
                                  f"processes) cannot be split into {splits} BN groups (moco.bn_groups="
                                  f"{m.bn_groups} // {world_size}): choose moco.bn_groups or optim.batch_size so "
                                  f"that it can")
    lr = scaled_lr(o.lr, batch, o.base_batch)
    if not lr > 0:
        raise ConfigError(f"optim.lr={o.lr} gives lr {lr} by the scaling rule: it must be > 0")
    return WorldPlan(world_size=world_size, global_batch=batch, per_process=per_process, splits=splits, lr=lr,
                     shuffle_bn=shuffle)
