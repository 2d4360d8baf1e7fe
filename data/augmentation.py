"""Training augmentations of the paper's semantic segmentation recipe (MoCo appendix): random scale of
the original image in [0.5, 2], a fixed-size crop (513 on VOC, 769 on Cityscapes; smaller images are
padded, labels with the ignore value) and a horizontal flip. Built from Detectron2's transforms:

    mapper = DatasetMapper(cfg, is_train=True, augmentations=sem_seg_train_augmentations(cfg))

The crop size comes from INPUT.CROP.SIZE (INPUT.CROP.TYPE "absolute"), the flip from INPUT.RANDOM_FLIP;
the scale range is the recipe's constant (Detectron2's config has no key for a scale of the original
image: MIN_SIZE_TRAIN sets absolute sizes). Inference uses the original size (INPUT.MIN_SIZE_TEST 0).
"""
from __future__ import annotations

import numpy as np
from detectron2.data import transforms as T

SCALE_RANGE = (0.5, 2.0)


class RandomScale(T.Augmentation):
    """Resize the image by a factor drawn uniformly from [min_scale, max_scale] (aspect ratio kept)."""

    def __init__(self, min_scale: float, max_scale: float):
        super().__init__()
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"RandomScale needs 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.min_scale, self.max_scale = min_scale, max_scale

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        s = np.random.uniform(self.min_scale, self.max_scale)
        return T.ResizeTransform(h, w, max(1, round(h * s)), max(1, round(w * s)))


def sem_seg_train_augmentations(cfg) -> list[T.Augmentation]:
    if not cfg.INPUT.CROP.ENABLED or cfg.INPUT.CROP.TYPE != "absolute":
        raise ValueError("the segmentation recipe crops a fixed size: set INPUT.CROP.ENABLED True, "
                         "INPUT.CROP.TYPE 'absolute' and INPUT.CROP.SIZE [h, w]")
    h, w = cfg.INPUT.CROP.SIZE
    # pad value: the pixel mean, so padding is zero after normalisation; labels padded with "ignore"
    augs = [RandomScale(*SCALE_RANGE),
            T.FixedSizeCrop((int(h), int(w)), pad=True, pad_value=float(np.mean(cfg.MODEL.PIXEL_MEAN)),
                            seg_pad_value=int(cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE))]
    if cfg.INPUT.RANDOM_FLIP == "horizontal":
        augs.append(T.RandomFlip(horizontal=True, vertical=False))
    elif cfg.INPUT.RANDOM_FLIP != "none":
        raise ValueError(f"INPUT.RANDOM_FLIP {cfg.INPUT.RANDOM_FLIP!r}: the recipe flips horizontally")
    return augs
