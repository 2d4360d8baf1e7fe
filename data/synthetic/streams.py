"""Per-image random streams and image writing shared by the layout writers.

Every image draws from its own generator seeded by (seed, layout, split, index), so an image's bytes
depend on nothing else: the layouts can be written in any order or in parallel.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from mocobench.common.atomic import atomic_write, write_text


def image_rng(seed: int, layout: str, split: str, index: int) -> np.random.Generator:
    tag = zlib.crc32(f"{layout}/{split}".encode())
    return np.random.default_rng([int(seed), tag, int(index)])


def save_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    with atomic_write(path, overwrite=False, durable=False) as f:
        Image.fromarray(image).save(f, format="JPEG", quality=int(quality))


def save_png(path: Path, array: np.ndarray) -> None:
    with atomic_write(path, overwrite=False, durable=False) as f:
        Image.fromarray(array).save(f, format="PNG", compress_level=1)


def write_split_lists(folder: Path, splits, records: list[tuple[str, str]]) -> None:
    """folder/<split>.txt: the ids written for each split, one per line, in writing order (VOC's ImageSets)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        ids = [fid for s, fid in records if s == split]
        write_text(folder / f"{split}.txt", "".join(f"{fid}\n" for fid in ids), overwrite=False, durable=False)
