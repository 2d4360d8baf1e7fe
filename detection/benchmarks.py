"""The detection benchmarks of the MoCo paper, each defined here once: protocol config, demo delta for
the built-in data, table title and columns, and (by name) the paper's numbers in reporting/reference.yaml.
The make targets use the aliases (make voc-det, make coco-mask)."""
from __future__ import annotations

from mocobench.common.benchmark import Benchmark, lookup
from mocobench.detection.vit import CONFIG_DIR as VIT_CONFIG_DIR

_COCO = "COCO detection and instance segmentation, Mask R-CNN"
BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark(name="voc0712-det-c4", task="detection",
              title="PASCAL VOC07+12 detection, Faster R-CNN R50-C4, 24k iterations",
              config="voc0712_faster_rcnn_R50_C4_24k.yaml", demo_delta="demo/synthetic-c4.yaml"),
    Benchmark(name="voc07-det-c4", task="detection", title="PASCAL VOC07 detection, Faster R-CNN R50-C4, 9k iterations",
              config="voc07_faster_rcnn_R50_C4_9k.yaml", demo_delta="demo/synthetic-c4.yaml"),
    Benchmark(name="coco-mask-fpn-1x", task="instance_seg", title=f"{_COCO} R50-FPN, 1x schedule",
              config="coco_mask_rcnn_R50_FPN_1x.yaml", demo_delta="demo/synthetic-fpn.yaml"),
    Benchmark(name="coco-mask-fpn-2x", task="instance_seg", title=f"{_COCO} R50-FPN, 2x schedule",
              config="coco_mask_rcnn_R50_FPN_2x.yaml", demo_delta="demo/synthetic-fpn.yaml"),
    Benchmark(name="coco-mask-c4-1x", task="instance_seg", title=f"{_COCO} R50-C4, 1x schedule",
              config="coco_mask_rcnn_R50_C4_1x.yaml", demo_delta="demo/synthetic-c4.yaml"),
    Benchmark(name="coco-mask-c4-2x", task="instance_seg", title=f"{_COCO} R50-C4, 2x schedule",
              config="coco_mask_rcnn_R50_C4_2x.yaml", demo_delta="demo/synthetic-c4.yaml"),
    # The paper's Table 6 / appendix COCO-image tasks: keypoints (columns TASK_COLUMNS["keypoints"]) and LVIS
    # (mask AP only, as the paper reports it; box AP stays in the records).
    Benchmark(name="coco-kp-fpn-2x", task="keypoints",
              title="COCO keypoint detection, Keypoint R-CNN R50-FPN, 2x schedule",
              config="coco_keypoint_rcnn_R50_FPN_2x.yaml", demo_delta="demo/synthetic-keypoints.yaml"),
    Benchmark(name="lvis-mask-fpn-2x", task="instance_seg",
              title="LVIS v0.5 instance segmentation, Mask R-CNN R50-FPN, 2x schedule",
              config="lvis_mask_rcnn_R50_FPN_2x.yaml", demo_delta="demo/synthetic-lvis.yaml",
              columns={"segm/AP": "APmk", "segm/AP50": "AP50mk", "segm/AP75": "AP75mk"}),
)}
# ---- Vision Transformer checkpoints: ViTDet (detection/vit; docs/vit.md). ViTDet's batch of 64 ran on 64 GPUs.
BENCHMARKS.update({b.name: b for b in (
    Benchmark(name="coco-mask-vitdet-100ep", task="instance_seg",
              title=f"{_COCO} ViTDet (plain ViT, simple feature pyramid), LSJ, 100 epochs",
              config=str(VIT_CONFIG_DIR / "coco_mask_rcnn_ViTDet_100ep.yaml"),
              demo_delta=str(VIT_CONFIG_DIR / "demo" / "synthetic-vit.yaml"), reference_gpus=64),
)})
# ---- generic benchmarks for a user's own data set (--dataset NAME; data/custom.py) ----
# The protocol's fine-tuning settings on any COCO- or VOC-format data set; the schedule is given in epochs
# (default 12, about COCO's 1x: 90k x 16 images / 118k) and converted to iterations from its size.
_USER = "Your data set, {} R50-{}, the protocol's fine-tuning settings"
USER_EPOCHS = 12.0
BENCHMARKS.update({b.name: b for b in (
    Benchmark(name="det-fpn", task="detection",
              title=_USER.format("Faster R-CNN", "FPN"), config="user/faster_rcnn_R50_FPN.yaml",
              epochs=USER_EPOCHS),
    Benchmark(name="det-c4", task="detection",
              title=_USER.format("Faster R-CNN", "C4"), config="user/faster_rcnn_R50_C4.yaml",
              epochs=USER_EPOCHS),
    Benchmark(name="mask-fpn", task="instance_seg",
              title=_USER.format("Mask R-CNN", "FPN"), config="user/mask_rcnn_R50_FPN.yaml",
              epochs=USER_EPOCHS),
    Benchmark(name="mask-c4", task="instance_seg",
              title=_USER.format("Mask R-CNN", "C4"), config="user/mask_rcnn_R50_C4.yaml",
              epochs=USER_EPOCHS),
    Benchmark(name="kp-fpn", task="keypoints",
              title=_USER.format("Keypoint R-CNN", "FPN"), config="user/keypoint_rcnn_R50_FPN.yaml",
              epochs=USER_EPOCHS),
)})
ALIASES = {"voc-det": "voc0712-det-c4", "coco-mask": "coco-mask-fpn-1x", "coco-kp": "coco-kp-fpn-2x",
           "lvis-mask": "lvis-mask-fpn-2x", "coco-vitdet": "coco-mask-vitdet-100ep"}
# On the built-in data, an alias may run another benchmark of the paper: `make coco-mask`'s demo is Mask R-CNN
# R50-C4 1x (the paper's Table 5 C4 rows), because the FPN model's randomly initialised FPN, RPN and box heads
# learn next to nothing in the minutes a CPU demo has (2-9 box AP50 for every initialisation, C4 7-12 at 60%
# of the cost: benchmarks/perf/RESULTS.md, "Issue 8"). Names given in full are always run as given.
DEMO_ALIASES = {"coco-mask": "coco-mask-c4-1x"}


def resolve_benchmark(name: str) -> Benchmark:
    """A benchmark by name or alias; BenchmarkError names the known ones."""
    return lookup(BENCHMARKS, ALIASES, name)
