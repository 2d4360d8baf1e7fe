"""Users' own data sets for the tests (no tests here): the built-in generator's COCO and VOC layouts with
their own class names (three of its shapes, neither VOC's nor COCO's classes), and copies to break."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

CLASSES = ["star", "heart", "crescent"]
COUNTS = {"coco": {"train": 10, "val": 6}, "voc2007": {"trainval": 10, "test": 6}}

# A few iterations on 128x96 images with few proposals and ROIs: seconds per trial on 2 CPU cores.
TINY_USER = ["MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64", "SOLVER.IMS_PER_BATCH", "2",
             "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "96",
             "INPUT.MAX_SIZE_TEST", "128", "TEST.PRECISE_BN.NUM_ITER", "2", "DATALOADER.NUM_WORKERS", "0",
             "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "300", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "50",
             "MODEL.RPN.PRE_NMS_TOPK_TEST", "300", "MODEL.RPN.POST_NMS_TOPK_TEST", "20",
             "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "8", "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "6",
             "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", "7", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
             "TEST.DETECTIONS_PER_IMAGE", "20"]


def user_layout(root: Path):
    from mocobench.data.synthetic import ensure_synthetic

    return ensure_synthetic(root, preset="tiny", seed=3, progress=False,
                            overrides={"categories": CLASSES, "counts": COUNTS})


def coco_specs(layout) -> tuple[str, str]:
    c = layout.coco
    return (f"coco:{c}/annotations/instances_train.json:{c}/train", f"coco:{c}/annotations/instances_val.json:{c}/val")


def voc_specs(layout) -> tuple[str, str]:
    return f"voc:{layout.voc2007}:trainval", f"voc:{layout.voc2007}:test"


def copy_coco(layout, dest: Path) -> tuple[Path, Path, Path, Path]:
    """A writable copy: (train json, train images, val json, val images)."""
    shutil.copytree(layout.coco, dest)
    return (dest / "annotations/instances_train.json", dest / "train", dest / "annotations/instances_val.json",
            dest / "val")


def edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))
