"""Real JPEG (and PNG) files for the decoding tests: the built-in synthetic scenes, written by PIL at test time."""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def scene(index: int, size: tuple[int, int] = (96, 72)) -> np.ndarray:
    """A built-in synthetic photo (the ImageFolder layout's scene), resized to size (w, h): H x W x 3 uint8."""
    from mocobench.data.synthetic.imagefolder import image_scene
    from mocobench.data.synthetic.presets import resolve_params

    image = image_scene(resolve_params("tiny"), 0, "train", index).image
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def jpeg(pixels: np.ndarray, mode: str = "RGB", **save) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, format="JPEG", **save)
    return out.getvalue()


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def pil_pixels(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
