"""Content hashes: of JSON-able objects (protocols, parameter sets) and of files (weights)."""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def canonical_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of obj (sorted keys, no whitespace; other objects as str)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """sha256 of a text's UTF-8 bytes: equal to sha256_file of the file write_text makes of it."""
    return hashlib.sha256(text.encode()).hexdigest()
