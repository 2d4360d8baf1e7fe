"""How long will a planned trial take? Seconds per iteration from the suite's own records of the same
benchmark on the same device when there are any; otherwise Detectron2's model-zoo training speed for the
same model (8 V100, the zoo's own configs); otherwise unknown. Every estimate says which it is.

From records: s/iter = the record's wall time (training + evaluation, every attempt that ended) / its
max_iter; the median over the matching records, times the planned max_iter. "Same device": the same GPU
model, GPU count and machine count; on CPUs the same host and CPU.

From the model zoo: GPU-seconds per image = zoo s/iter x 8 GPUs / zoo batch; times the planned images
(max_iter x IMS_PER_BATCH, unchanged by the fewer-GPU scaling rule), divided over the planned GPUs as if
each were a V100. The zoo's configs use FrozenBN backbones: the protocol's (naive)SyncBN is slower (zoo:
SyncBN R50-FPN 0.371 s/iter vs 0.261), so read these as lower bounds. No zoo figure is used for the
built-in demos (ResNet-18, tiny images), CPU runs, or models the zoo does not list (the FCN heads).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from mocobench.runner.plan import TrialPlan

RECORDS = "records"
MODEL_ZOO = "model-zoo"
UNKNOWN = "unknown"
ZOO_SOURCE = "Detectron2 MODEL_ZOO.md, train time on 8 V100"


@dataclass(frozen=True)
class ZooSpeed:
    name: str            # the zoo config
    seconds_per_iter: float
    ims_per_batch: int   # the zoo config's batch, over 8 GPUs
    gpus: int = 8
    source: str = ZOO_SOURCE
    note: str = "FrozenBN; a lower bound"

    @property
    def gpu_seconds_per_image(self) -> float:
        return self.seconds_per_iter * self.gpus / self.ims_per_batch


# Detectron2 MODEL_ZOO.md (facebookresearch/detectron2), "train time (s/iter)", 8 V100, R50 models.
ZOO = {
    "voc_faster_c4": ZooSpeed("PascalVOC-Detection/faster_rcnn_R_50_C4", 0.537, 16),
    "coco_faster_c4": ZooSpeed("COCO-Detection/faster_rcnn_R_50_C4_1x", 0.551, 16),
    "coco_faster_fpn": ZooSpeed("COCO-Detection/faster_rcnn_R_50_FPN_1x", 0.210, 16),
    "coco_mask_c4": ZooSpeed("COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x", 0.584, 16),
    "coco_mask_fpn": ZooSpeed("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x", 0.261, 16),
    "coco_keypoint_fpn": ZooSpeed("COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x", 0.315, 16),
    "lvis_mask_fpn": ZooSpeed("LVIS-InstanceSegmentation/mask_rcnn_R_50_FPN_1x", 0.292, 16),
    "cityscapes_mask_fpn": ZooSpeed("Cityscapes/mask_rcnn_R_50_FPN", 0.240, 8),
}
# ViTDet's own model table (detectron2 projects/ViTDet/README.md, "train time", measured on 8 nodes x 8 A100 at
# batch 64: one image per GPU, so its s/im is the s/iter), COCO Mask R-CNN, by ViT width (B, L, H).
VITDET_SOURCE = "ViTDet README (detectron2 projects/ViTDet), train time on 64 A100"
VITDET_ZOO = {
    768: ZooSpeed("ViTDet COCO mask_rcnn_vitdet_b_100ep", 0.314, 64, gpus=64, source=VITDET_SOURCE, note="AMP"),
    1024: ZooSpeed("ViTDet COCO mask_rcnn_vitdet_l_100ep", 0.603, 64, gpus=64, source=VITDET_SOURCE, note="AMP"),
    1280: ZooSpeed("ViTDet COCO mask_rcnn_vitdet_h_75ep", 1.098, 64, gpus=64, source=VITDET_SOURCE, note="AMP"),
}


@dataclass(frozen=True)
class Estimate:
    seconds: float | None      # wall-clock seconds of one trial on the planned devices
    devices: int               # devices the trial holds (GPUs, or 1 CPU machine)
    kind: str                  # RECORDS | MODEL_ZOO | UNKNOWN
    source: str                # what the figure comes from, in words
    seconds_per_iter: float | None = None

    @property
    def device_hours(self) -> float | None:
        return None if self.seconds is None else self.seconds * self.devices / 3600.0


def device_key(device: dict[str, Any] | None, num_gpus: int, num_machines: int = 1) -> tuple:
    """What "the same device" means for speed: GPU model x count x machines, or the CPU host."""
    device = device or {}
    if num_gpus > 0:
        gpus = device.get("gpus") or ["unknown GPU"]
        return ("gpu", gpus[0], num_gpus, num_machines)
    return ("cpu", device.get("hostname"), device.get("cpu"))


def local_device_key(num_gpus: int, num_machines: int = 1) -> tuple:
    from mocobench.common.provenance import device_info

    return device_key(device_info(), num_gpus, num_machines)


def _record_seconds_per_iter(record: dict[str, Any]) -> float | None:
    prov, max_iter = record.get("provenance") or {}, (record.get("protocol") or {}).get("max_iter")
    wall = prov.get("wall_time_s")
    if not isinstance(wall, (int, float)) or wall <= 0 or not isinstance(max_iter, int) or max_iter <= 0:
        return None
    return wall / max_iter


def from_records(plan: TrialPlan, records: Iterable[dict[str, Any]], key: tuple, devices: int) -> Estimate | None:
    speeds = []
    for r in records:
        prov = r.get("provenance") or {}
        if r.get("benchmark") != plan.benchmark:
            continue
        if device_key(prov.get("device"), int(prov.get("num_gpus") or 0), int(prov.get("num_machines") or 1)) != key:
            continue
        if (s := _record_seconds_per_iter(r)) is not None:
            speeds.append(s)
    if not speeds:
        return None
    s_iter = statistics.median(speeds)
    return Estimate(s_iter * plan.cfg.SOLVER.MAX_ITER, devices, RECORDS,
                    f"{len(speeds)} record(s) of {plan.benchmark} on this device, median {s_iter:.3g} s/iter",
                    s_iter)


def zoo_entry(cfg) -> ZooSpeed | None:
    """The model-zoo config of the same model and data, from the resolved config (None: not in the zoo)."""
    if cfg.MODEL.META_ARCHITECTURE != "GeneralizedRCNN":
        return None
    if "VIT" in cfg.MODEL and cfg.MODEL.BACKBONE.NAME == "build_vitdet_backbone":  # ViTDet's own table
        coco = "coco" in " ".join(cfg.DATASETS.TRAIN).lower() and cfg.MODEL.MASK_ON
        return VITDET_ZOO.get(cfg.MODEL.VIT.EMBED_DIM) if coco and cfg.MODEL.VIT.PATCH_SIZE == 16 else None
    if cfg.MODEL.RESNETS.DEPTH != 50:
        return None
    fpn = "fpn" in cfg.MODEL.BACKBONE.NAME.lower()
    data = " ".join(cfg.DATASETS.TRAIN).lower()
    if cfg.MODEL.KEYPOINT_ON:
        return ZOO["coco_keypoint_fpn"] if fpn else None
    if cfg.MODEL.MASK_ON:
        if "lvis" in data:
            return ZOO["lvis_mask_fpn"] if fpn else None
        if "cityscapes" in data:
            return ZOO["cityscapes_mask_fpn"] if fpn else None
        return ZOO["coco_mask_fpn" if fpn else "coco_mask_c4"]
    if "voc" in data and not fpn:
        return ZOO["voc_faster_c4"]
    return ZOO["coco_faster_fpn" if fpn else "coco_faster_c4"]


def from_model_zoo(plan: TrialPlan, num_gpus: int, devices: int) -> Estimate | None:
    if plan.protocol.get("builtin_synthetic") or num_gpus == 0:
        return None
    zoo = zoo_entry(plan.cfg)
    if zoo is None:
        return None
    images = plan.cfg.SOLVER.MAX_ITER * plan.cfg.SOLVER.IMS_PER_BATCH
    seconds = zoo.gpu_seconds_per_image * images / devices
    return Estimate(seconds, devices, MODEL_ZOO, f"{zoo.source}: {zoo.name} {zoo.seconds_per_iter} s/iter at batch "
                                                 f"{zoo.ims_per_batch} ({zoo.note})",
                    seconds / plan.cfg.SOLVER.MAX_ITER)


def estimate_trial(plan: TrialPlan, records: Iterable[dict[str, Any]], *, num_gpus: int, num_machines: int = 1,
                   key: tuple | None = None) -> Estimate:
    """The best estimate of one planned trial: own records, else the model zoo, else unknown."""
    devices = max(num_gpus, 1) * num_machines
    key = local_device_key(num_gpus, num_machines) if key is None else key
    est = from_records(plan, records, key, devices) or from_model_zoo(plan, num_gpus, devices)
    if est is not None:
        return est
    why = ("the built-in demo" if plan.protocol.get("builtin_synthetic") else
           "a CPU run" if num_gpus == 0 else "a model the zoo does not list")
    return Estimate(None, devices, UNKNOWN, f"no record of {plan.benchmark} on this device yet, and no model-zoo "
                                            f"figure for {why}")
