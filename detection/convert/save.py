"""Writing a conversion as a Detectron2 weight pickle, atomically, never over an existing file unless asked."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

from mocobench.common.atomic import atomic_write
from mocobench.detection.convert.result import Conversion, ConversionError

AUTHOR = "moco-transfer-bench detection.convert"


def save_detectron2(conv: Conversion, output: str | os.PathLike, *, source: str | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``{"model": {name: ndarray}, "__author__", "matching_heuristics": True, "source": {...}}``
    atomically; refuses to replace an existing file unless overwrite."""
    output = Path(output)
    if output.suffix != ".pkl":
        raise ConversionError(f"{output}: the output must end in .pkl (Detectron2 reads .pkl as converted weights)")
    if output.exists() and not overwrite:
        raise ConversionError(f"{output} already exists; pass --overwrite to replace it, or choose another name")
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in conv.meta.items() if k in ("epoch", "arch")}
    payload = {"model": conv.detectron2_state, "__author__": AUTHOR, "matching_heuristics": True,
               "source": {"path": source, "format": conv.format, "depth": conv.depth, **meta}}
    if conv.classifier is not None:  # dropped, but what it says about the training is kept (runner/weights.py)
        payload["source"]["classifier"] = list(conv.classifier)
    with atomic_write(output, overwrite=True) as f:
        pickle.dump(payload, f)
    return output
