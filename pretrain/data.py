"""Datasets and augmentations: labelled ImageFolder, a flat folder of images, the built-in synthetic set.

Unreadable images are replaced by the next readable one, up to `max_bad` per dataset object (per
loader process), then a clear error stops the run. Reporting them: by default the dataset logs each
path once per dataset object; with `report_skips=True` (pretraining) it stays silent and each sample
carries the paths it skipped, so that the training process reports each once per run, whatever the
number of epochs and loader workers (Trainer: a warning and a "skipped" line in log.jsonl).
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

log = logging.getLogger(__name__)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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
                 max_bad: int = 20, report_skips: bool = False) -> None:
        if not samples:
            raise DataError("the dataset is empty")
        self.samples = samples
        self.transform = transform
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
                with Image.open(path) as im:
                    image = im.convert("RGB")
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


class TwoCrops:
    """Two independent augmentations of one image: (query, key)."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform

    def __call__(self, image):
        return torch.stack([self.transform(image), self.transform(image)])


def moco_augmentation(version: str, size: int, min_scale: float = 0.2) -> T.Compose:
    """v1: the paper's; v2: aug+ (jitter p=0.8 with hue 0.1, blur sigma 0.1-2 with p=0.5, scaled by size/224
    below 224 px)."""
    crop = T.RandomResizedCrop(size, scale=(min_scale, 1.0))
    if version == "v1":
        ops = [crop, T.RandomGrayscale(p=0.2), T.ColorJitter(0.4, 0.4, 0.4, 0.4), T.RandomHorizontalFlip()]
    elif version == "v2":
        kernel = max(3, int(0.1 * size) // 2 * 2 + 1)  # ~10% of the image, odd
        # sigma 0.1-2 px is the recipe's at 224 px; smaller images get proportionally less blur (at 64 px,
        # sigma 2 would wipe out the shapes), so that blur removes the same share of detail at any size
        sigma = (0.1 * min(1.0, size / 224), 2.0 * min(1.0, size / 224))
        ops = [crop, T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
               T.RandomApply([T.GaussianBlur(kernel, sigma=sigma)], p=0.5), T.RandomHorizontalFlip()]
    else:
        raise ValueError(f"augmentation must be v1 or v2, got {version!r}")
    return T.Compose(ops + [T.ToTensor(), T.Normalize(MEAN, STD)])


def supervised_augmentation(size: int, min_scale: float = 0.08) -> T.Compose:
    return T.Compose([T.RandomResizedCrop(size, scale=(min_scale, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(),
                      T.Normalize(MEAN, STD)])


def eval_transform(size: int) -> T.Compose:
    """Resize + center crop (256/224 of the size for large images; images <= 64 px: resize only)."""
    resize = size if size <= 64 else int(round(size * 256 / 224))
    return T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(), T.Normalize(MEAN, STD)])


def synthetic_splits(path: str | Path, preset: str) -> tuple[Path, Path]:
    """(train, val) ImageFolders of the built-in synthetic set, built on first use."""
    try:
        from mocobench.data.synthetic import ensure_synthetic
    except ImportError as e:
        raise DataError(f"the built-in synthetic set (mocobench.data.synthetic) is not available: {e}") from e
    layout = ensure_synthetic(str(path), preset=preset)
    root = Path(layout.imagefolder)
    return root / "train", root / "val"


def training_samples(cfg: dict) -> tuple[list[tuple[Path, int]], list[str]]:
    d = cfg["data"]
    if d["source"] == "synthetic":
        samples, classes = scan_imagefolder(synthetic_splits(d["path"] or "output/synthetic", d["synthetic_preset"])[0])
    elif d["source"] == "imagefolder":
        samples, classes = scan_imagefolder(d["path"])
    else:
        samples, classes = scan_flat(d["path"]), []
    samples = evenly_spaced(samples, d["limit"])  # an evenly spread subset keeps every class represented
    return samples, classes


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


def batch_augmentation(cfg: dict):
    """The on-device counterpart of the dataset's transform (data.aug_device=gpu)."""
    from mocobench.pretrain.batch_aug import BatchAugment

    d = cfg["data"]
    return BatchAugment(version=d["aug"] if cfg["mode"] == "moco" else "supervised", size=d["image_size"],
                        min_scale=d["min_scale"], mean=MEAN, std=STD)


def build_training_dataset(cfg: dict) -> ImageList:
    samples, classes = training_samples(cfg)
    d = cfg["data"]
    if d["aug_device"] == "gpu":  # workers decode only; pretrain/batch_aug.py augments on the device
        transform: Callable = decoded_image
    elif cfg["mode"] == "moco":
        transform = TwoCrops(moco_augmentation(d["aug"], d["image_size"], d["min_scale"]))
    else:
        transform = supervised_augmentation(d["image_size"], d["min_scale"])
    return ImageList(samples, transform, classes=classes, max_bad=d["max_bad_images"], report_skips=True)


def knn_paths(cfg: dict) -> tuple[Path, Path]:
    k, d = cfg["knn"], cfg["data"]
    if k["train_path"] and k["val_path"]:
        return Path(k["train_path"]), Path(k["val_path"])
    if d["source"] == "synthetic":
        return synthetic_splits(d["path"] or "output/synthetic", d["synthetic_preset"])
    raise DataError("the kNN monitor needs labelled data: set knn.train_path and knn.val_path "
                    "(ImageFolders), or knn.every=0")
