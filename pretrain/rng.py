"""The random number generators' state as tensors and plain Python values, so that a checkpoint that
carries it loads with plain `torch.load(path, weights_only=True)` (no numpy objects, no allowlist).

    state = capture(device)      # {"torch": ByteTensor, "numpy": {...}, "python": (3, (625 ints), None), "cuda": ...}
    restore(state, device)       # puts every generator back where capture found it

numpy's legacy global generator (np.random.get_state(): MT19937 key array, position, cached Gaussian)
is stored field by field: the 624-word key as an int64 tensor, the rest as int/float.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture(device: torch.device | None = None) -> dict[str, Any]:
    kind, key, pos, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state(device) if device is not None and device.type == "cuda" else None
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": random.getstate(), "cuda": cuda}


def restore(state: dict[str, Any], device: torch.device | None = None) -> None:
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state.get("cuda") is not None and device is not None and device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"], device)
