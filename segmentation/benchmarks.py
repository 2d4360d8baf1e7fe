"""The segmentation benchmarks of the MoCo paper. Not runnable yet (no configs): defined here so that
their tables have their titles and columns when records arrive."""
from __future__ import annotations

from mocobench.common.benchmark import Benchmark

_FCN = "FCN R50 (dilated conv5)"
BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("cityscapes-inst-fpn", "instance_seg", "Cityscapes instance segmentation, Mask R-CNN R50-FPN",
              columns={"segm/AP": "AP (mask)", "segm/AP50": "AP50 (mask)"}),
    Benchmark("voc-semseg-fcn", "sem_seg", f"PASCAL VOC semantic segmentation, {_FCN}"),
    Benchmark("cityscapes-semseg-fcn", "sem_seg", f"Cityscapes semantic segmentation, {_FCN}"),
)}
