"""Large-scale jitter for yacs configs (Detectron2's yacs data path has none), as ViTDet's COCO loader sets it
(projects/ViTDet/configs/common/coco_loader_lsj.py): horizontal flip first, then ResizeScale (scale
INPUT.LSJ.MIN_SCALE..MAX_SCALE of an IMAGE_SIZE square, aspect kept), then FixedSizeCrop to IMAGE_SIZE (padded
where smaller), boxes recomputed from the cropped masks. The transforms are Detectron2's own."""
from __future__ import annotations


def lsj_augmentations(cfg) -> list:
    import detectron2.data.transforms as T

    size = cfg.INPUT.LSJ.IMAGE_SIZE
    return [T.RandomFlip(horizontal=True),
            T.ResizeScale(min_scale=cfg.INPUT.LSJ.MIN_SCALE, max_scale=cfg.INPUT.LSJ.MAX_SCALE, target_height=size,
                          target_width=size),
            T.FixedSizeCrop(crop_size=(size, size))]


def lsj_mapper(cfg):
    """Detectron2's DatasetMapper with the LSJ augmentations (recompute_boxes with masks, as ViTDet)."""
    from detectron2.data import DatasetMapper

    return DatasetMapper(is_train=True, augmentations=lsj_augmentations(cfg), image_format=cfg.INPUT.FORMAT,
                         use_instance_mask=cfg.MODEL.MASK_ON, instance_mask_format=cfg.INPUT.MASK_FORMAT,
                         use_keypoint=cfg.MODEL.KEYPOINT_ON, recompute_boxes=cfg.MODEL.MASK_ON)
