"""Writing a conversion as a Detectron2 weight pickle, atomically, never over an existing file unless asked."""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Callable

from mocobench.common.atomic import atomic_write
from mocobench.detection.convert.result import Conversion, ConversionError

AUTHOR = "moco-transfer-bench detection.convert"


def save_detectron2(conv: Conversion, output: str | os.PathLike, *, source: str | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``{"model": {name: ndarray}, "__author__", "matching_heuristics": True, "source": {...}}``
    atomically; refuses to replace an existing file unless overwrite."""
    meta = {k: v for k, v in conv.meta.items() if k in ("epoch", "arch")}
    payload = {"model": conv.detectron2_state, "__author__": AUTHOR, "matching_heuristics": True,
               "source": {"path": source, "format": conv.format, "depth": conv.depth, **meta}}
    if conv.classifier is not None:  # dropped, but what it says about the training is kept (runner/weights.py)
        payload["source"]["classifier"] = list(conv.classifier)
    return write_pickle(payload, output, overwrite=overwrite, error=ConversionError)


def write_pickle(payload: dict, output: str | os.PathLike, *, overwrite: bool = False,
                 error: type[Exception] = ConversionError) -> Path:
    """Write a Detectron2 weight pickle atomically (every family's writer ends here): OUTPUT must end in .pkl and
    is never replaced unless overwrite; `error` is the family's error type."""
    output = Path(output)
    if output.suffix != ".pkl":
        raise error(f"{output}: the output must end in .pkl (Detectron2 reads .pkl as converted weights)")
    if output.exists() and not overwrite:
        raise error(f"{output} already exists; pass --overwrite to replace it, or choose another name")
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output, overwrite=True) as f:
        pickle.dump(payload, f)
    return output


def prove_or_remove(path: Path, prove: Callable[[], Any], error: type[Exception],
                    expected: tuple[type[Exception], ...]) -> Any:
    """Run a written file's forward-pass proof; remove the file when the proof raises (an `expected` failure
    becomes `error` with its message; anything else, an interruption included, is re-raised)."""
    try:
        return prove()
    except expected as e:
        path.unlink()
        raise error(str(e)) from None
    except BaseException:
        path.unlink()
        raise
