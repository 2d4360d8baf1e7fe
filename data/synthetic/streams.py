"""Per-image random streams and image writing shared by the layout writers.

Every image draws from its own generator seeded by (seed, layout, split, index), so an image's bytes
depend on nothing else: the layouts can be written in any order or in parallel.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from mocobench.common.atomic import atomic_write


def image_rng(seed: int, layout: str, split: str, index: int) -> np.random.Generator:
    tag = zlib.crc32(f"{layout}/{split}".encode())
    return np.random.default_rng([int(seed), tag, int(index)])


def save_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    with atomic_write(path, overwrite=False, durable=False) as f:
        Image.fromarray(image).save(f, format="JPEG", quality=int(quality))


def save_png(path: Path, array: np.ndarray) -> None:
    with atomic_write(path, overwrite=False, durable=False) as f:
        Image.fromarray(array).save(f, format="PNG", compress_level=1)
