"""Datasets and the loader's pieces: labelled ImageFolder, a flat folder of images, the built-in synthetic set
(the augmentations themselves are cpu_aug.py and batch_aug.py, decoding decode.py).

Unreadable images are replaced by the next readable one, up to `max_bad` per dataset object (per
loader process), then a clear error stops the run. Reporting them: by default the dataset logs each
path once per dataset object; with `report_skips=True` (pretraining) it stays silent and each sample
carries the paths it skipped, so that the training process reports each once per run, whatever the
number of epochs and loader workers (Trainer: a warning and a "skipped" line in log.jsonl).

Decoding (data.decode, pretrain/decode.py) is the dataset's `read`; augmenting it is the transform
(pretrain/cpu_aug.py per image, or nothing here and pretrain/batch_aug.py on the device).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets.folder import IMG_EXTENSIONS

from mocobench.pretrain.config import PretrainConfig
from mocobench.pretrain.cpu_aug import MEAN, STD, TwoCrops, moco_augmentation, supervised_augmentation
from mocobench.pretrain.decode import ReadTensor, encoded_collate, read_encoded, read_pil

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset is missing, empty, or has too many unreadable images."""


def evenly_spaced(items: list, n: int | None) -> list:
    """At most n items spread evenly over the list (all of them when n is None or >= len)."""
    if not n or n >= len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)] if n > 1 else [items[0]]


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMG_EXTENSIONS


def scan_imagefolder(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, class index) pairs and class names of root/<class>/*.<image ext>, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: an ImageFolder is root/<class>/<image files>")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class folders: an ImageFolder is root/<class>/<image files> "
                        f"(for unlabelled images use data.source=flat)")
    samples = [(p, i) for i, c in enumerate(classes) for p in sorted((root / c).rglob("*")) if _is_image(p)]
    if not samples:
        raise DataError(f"{root}: no images ({', '.join(IMG_EXTENSIONS)}) in its {len(classes)} class folders")
    return samples, classes


def scan_flat(root: str | Path) -> list[tuple[Path, int]]:
    """All images under root (recursively), label -1."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of images")
    samples = [(p, -1) for p in sorted(root.rglob("*")) if _is_image(p)]
    if not samples:
        raise DataError(f"{root}: no images with extensions {', '.join(IMG_EXTENSIONS)}")
    return samples


class ImageList(Dataset):
    """(path, label) samples -> (transform(image), label); unreadable images reported and skipped."""

    def __init__(self, samples: list[tuple[Path, int]], transform: Callable, *, classes: list[str] | None = None,
                 max_bad: int = 20, report_skips: bool = False, read: Callable = read_pil) -> None:
        if not samples:
            raise DataError("the dataset is empty")
        self.samples = samples
        self.transform = transform
        self.read = read  # path -> image (PIL RGB by default); raises OSError/ValueError for an unreadable file
        self.classes = classes or []
        self.max_bad = max_bad
        self.bad: set[str] = set()
        self.report_skips = report_skips  # samples are (x, label, "skipped paths, newline-separated")
        # seed: per-sample augmentation seeds (seed, epoch, index), independent of loader processes and ranks
        self.seed: int | None = None
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        skipped: list[str] = []
        for attempt in range(len(self.samples)):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                image = self.read(path)
            except (OSError, ValueError) as e:
                skipped.append(f"{path} ({type(e).__name__}: {e})")
                if str(path) not in self.bad:
                    self.bad.add(str(path))
                    if not self.report_skips:
                        log.warning("skipping unreadable image %s (%s)", path, e)
                if len(self.bad) > self.max_bad and not self.report_skips:  # else: the trainer counts
                    raise DataError(f"more than {self.max_bad} unreadable images (last: {path}); fix or remove "
                                    f"them, or raise data.max_bad_images") from e
                continue
            if self.seed is None:
                x = self.transform(image)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF_FFFF)
                    x = self.transform(image)
            return (x, label, "\n".join(skipped)) if self.report_skips else (x, label)
        raise DataError("no readable image in the dataset")


def synthetic_splits(path: str | Path, preset: str) -> tuple[Path, Path]:
    """(train, val) ImageFolders of the built-in synthetic set, built on first use."""
    try:
        from mocobench.data.synthetic import ensure_synthetic
    except ImportError as e:
        raise DataError(f"the built-in synthetic set (mocobench.data.synthetic) is not available: {e}") from e
    layout = ensure_synthetic(str(path), preset=preset)
    root = Path(layout.imagefolder)
    return root / "train", root / "val"


def training_samples(cfg: PretrainConfig) -> tuple[list[tuple[Path, int]], list[str]]:
    d = cfg.data
    if d.source == "synthetic":
        samples, classes = scan_imagefolder(synthetic_splits(d.path or "output/synthetic", d.synthetic_preset)[0])
    elif d.source == "imagefolder":
        samples, classes = scan_imagefolder(d.path)
    else:
        samples, classes = scan_flat(d.path), []
    samples = evenly_spaced(samples, d.limit)  # an evenly spread subset keeps every class represented
    return samples, classes


def unchanged(x):
    """The transform where the workers only decode (data.aug_device=gpu): the image as read."""
    return x


def decoded_image(image: Image.Image) -> torch.Tensor:
    """A PIL RGB image -> 3 x H x W uint8 tensor (what the workers hand over with data.aug_device=gpu)."""
    return T.functional.pil_to_tensor(image)


def pad_collate(batch: list[tuple]) -> tuple:
    """Decoded images of different sizes -> (N x 3 x Hmax x Wmax uint8, image b in the top-left corner;
    sizes N x 2 (h, w); labels N), plus the items' further fields (the skipped-files notes) as lists."""
    images = [item[0] for item in batch]
    sizes = torch.tensor([img.shape[1:] for img in images], dtype=torch.long)
    out = torch.zeros(len(batch), 3, int(sizes[:, 0].max()), int(sizes[:, 1].max()), dtype=torch.uint8)
    for b, img in enumerate(images):
        out[b, :, :img.shape[1], :img.shape[2]] = img
    extra = tuple([item[k] for item in batch] for k in range(2, len(batch[0])))
    return (out, sizes, torch.tensor([item[1] for item in batch], dtype=torch.long), *extra)


def batch_augmentation(cfg: PretrainConfig):
    """The on-device counterpart of the dataset's transform (data.aug_device=gpu)."""
    from mocobench.pretrain.batch_aug import BatchAugment

    d = cfg.data
    return BatchAugment(version=d.aug if cfg.mode == "moco" else "supervised", size=d.image_size,
                        min_scale=d.min_scale, mean=MEAN, std=STD)


def build_training_dataset(cfg: PretrainConfig) -> ImageList:
    samples, classes = training_samples(cfg)
    d = cfg.data
    read: Callable = read_pil
    if d.decode == "gpu":  # workers read the files; the step decodes and augments on the device
        read, transform = read_encoded, unchanged
    elif d.aug_device == "gpu":  # workers decode only; pretrain/batch_aug.py augments on the device
        read, transform = ReadTensor(jpeg_decoder=d.decode), unchanged
    elif cfg.mode == "moco":
        transform = TwoCrops(moco_augmentation(d.aug, d.image_size, d.min_scale))
    else:
        transform = supervised_augmentation(d.image_size, d.min_scale)
    return ImageList(samples, transform, classes=classes, max_bad=d.max_bad_images, report_skips=True, read=read)


def training_collate(cfg: PretrainConfig) -> Callable:
    """How the loader batches the dataset's items when the workers do not augment (data.aug_device=gpu)."""
    return encoded_collate if cfg.data.decode == "gpu" else pad_collate


def knn_paths(cfg: PretrainConfig) -> tuple[Path, Path]:
    k, d = cfg.knn, cfg.data
    if k.train_path and k.val_path:
        return Path(k.train_path), Path(k.val_path)
    if d.source == "synthetic":
        return synthetic_splits(d.path or "output/synthetic", d.synthetic_preset)
    raise DataError("the kNN monitor needs labelled data: set knn.train_path and knn.val_path "
                    "(ImageFolders), or knn.every=0")
