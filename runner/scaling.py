"""The batch of a trial on the devices it has, and the linear scaling rule for fewer images than the protocol's.

The rule's source is Kaiming He's answer in facebookresearch/moco issue 11 ("Must detection experiments be
performed on 8 GPUs?"): if memory is sufficient, keep the config and use fewer GPUs (IMS_PER_BATCH is the
total batch and the BN is synchronised, so 4 GPUs x 4 images is the same computation as 8 x 2); if memory
is not sufficient, follow the linear lr scaling recipe of Goyal et al. 2017: e.g. on 4 GPUs keep 2 images per
GPU, IMS_PER_BATCH 8, BASE_LR 0.01, STEPS and MAX_ITER x 2 (not fully equivalent: the BN batch changes)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocobench.runner import RunnerError


@dataclass
class Scaling:
    applied: bool
    factor: float          # protocol batch / used batch (1 when not applied)
    num_devices: int
    ims_per_device: int    # the images one device takes per iteration (IMS_PER_BATCH / num_devices, after scaling)
    reference: dict[str, Any]  # the protocol's gpus, IMS_PER_BATCH, BASE_LR, MAX_ITER, STEPS, WARMUP_ITERS,
                               # TEST.PRECISE_BN.NUM_ITER
    result: dict[str, Any]     # the same keys after scaling
    rule: str = ("linear scaling (Kaiming He, facebookresearch/moco issue 11: fewer images -> e.g. IMS_PER_BATCH 8, "
                 "BASE_LR 0.01, 2x STEPS/MAX_ITER): batch / k, lr / k, iterations (and PreciseBN's) x k")


def apply_scaling_rule(cfg, *, num_devices: int, ims_per_device: int | None, reference_gpus: int) -> Scaling:
    """Fit the protocol's IMS_PER_BATCH onto num_devices devices taking at most ims_per_device images each.

    ims_per_device None (no --ims-per-gpu): the protocol's batch is kept and spread over the devices (16 on 4
    GPUs is 4 images each; with synchronised BN the same computation as 8 x 2), so nothing is scaled.
    With fewer devices than the protocol's reference_gpus and a batch that does not fit, the batch is
    divided by the smallest integer k that makes it fit (and divide evenly over the devices); BASE_LR
    is divided by k and MAX_ITER, STEPS, WARMUP_ITERS, CHECKPOINT_PERIOD, EVAL_PERIOD and
    TEST.PRECISE_BN.NUM_ITER multiplied by k, so the number of epochs, the lr per image and the number of
    images PreciseBN averages over (NUM_ITER x IMS_PER_BATCH, over all processes: detection.precise_bn)
    stay those of the protocol. Edits cfg in place."""
    if num_devices < 1 or (ims_per_device is not None and ims_per_device < 1):
        raise RunnerError(f"need at least one device and one image per device (got {num_devices}, {ims_per_device})")
    s = cfg.SOLVER
    ref = {"gpus": reference_gpus, "ims_per_batch": s.IMS_PER_BATCH, "base_lr": s.BASE_LR, "max_iter": s.MAX_ITER,
           "steps": list(s.STEPS), "warmup_iters": s.WARMUP_ITERS,
           "precise_bn_num_iter": cfg.TEST.PRECISE_BN.NUM_ITER}
    batch = s.IMS_PER_BATCH
    if ims_per_device is None:
        ims_per_device = -(-batch // num_devices)  # the protocol's batch over these devices
    fits = num_devices * ims_per_device >= batch and batch % num_devices == 0
    if num_devices >= reference_gpus or fits:
        if batch % num_devices:
            raise RunnerError(f"IMS_PER_BATCH {batch} cannot be split evenly over {num_devices} devices")
        return Scaling(False, 1.0, num_devices, batch // num_devices, ref, dict(ref))
    k = next((k for k in range(2, batch + 1) if batch % k == 0 and (batch // k) % num_devices == 0
              and batch // k <= num_devices * ims_per_device), None)
    if k is None:
        raise RunnerError(f"IMS_PER_BATCH {batch} cannot be scaled onto {num_devices} devices x {ims_per_device} "
                          f"images; choose a device count that divides {batch}")
    s.IMS_PER_BATCH = batch // k
    s.BASE_LR = s.BASE_LR / k
    s.MAX_ITER = s.MAX_ITER * k
    s.STEPS = tuple(step * k for step in s.STEPS)
    s.WARMUP_ITERS = s.WARMUP_ITERS * k
    s.CHECKPOINT_PERIOD = s.CHECKPOINT_PERIOD * k
    cfg.TEST.EVAL_PERIOD = cfg.TEST.EVAL_PERIOD * k
    cfg.TEST.PRECISE_BN.NUM_ITER = cfg.TEST.PRECISE_BN.NUM_ITER * k
    res = {"gpus": num_devices, "ims_per_batch": s.IMS_PER_BATCH, "base_lr": s.BASE_LR, "max_iter": s.MAX_ITER,
           "steps": list(s.STEPS), "warmup_iters": s.WARMUP_ITERS,
           "precise_bn_num_iter": cfg.TEST.PRECISE_BN.NUM_ITER}
    return Scaling(True, float(k), num_devices, s.IMS_PER_BATCH // num_devices, ref, res)
