"""The segmentation benchmarks of the MoCo paper (Table 6), each defined here once: protocol config,
demo delta for the built-in data, table title and columns, and (by name) the paper's numbers in
reporting/reference.yaml. Config paths are absolute (segmentation/configs); the make targets use the
aliases (make cityscapes-mask, make voc-seg, make cityscapes-seg)."""
from __future__ import annotations

from mocobench.common.benchmark import Benchmark, lookup
from mocobench.segmentation import CONFIG_DIR

_FCN = "FCN R50 (dilated conv5)"
_MASK_COLUMNS = {"segm/AP": "AP (mask)", "segm/AP50": "AP50 (mask)"}


def _cfg(name: str) -> str:
    return str(CONFIG_DIR / name)


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark(name="cityscapes-mask-fpn", task="instance_seg",
              title="Cityscapes instance segmentation, Mask R-CNN R50-FPN",
              config=_cfg("cityscapes_mask_rcnn_R50_FPN.yaml"), demo_delta=_cfg("demo/synthetic-cityscapes-mask.yaml"),
              columns=_MASK_COLUMNS),
    Benchmark(name="voc-seg-fcn", task="sem_seg", title=f"PASCAL VOC semantic segmentation, {_FCN}",
              config=_cfg("voc_fcn_R50_dilated_30k.yaml"), demo_delta=_cfg("demo/synthetic-fcn.yaml")),
    Benchmark(name="cityscapes-seg-fcn", task="sem_seg", title=f"Cityscapes semantic segmentation, {_FCN}",
              config=_cfg("cityscapes_fcn_R50_dilated_90k.yaml"), demo_delta=_cfg("demo/synthetic-fcn.yaml")),
)}
ALIASES = {"cityscapes-mask": "cityscapes-mask-fpn", "voc-seg": "voc-seg-fcn", "cityscapes-seg": "cityscapes-seg-fcn"}


def resolve_benchmark(name: str) -> Benchmark:
    """A segmentation benchmark by name or alias; BenchmarkError names the known ones."""
    return lookup(BENCHMARKS, ALIASES, name)
