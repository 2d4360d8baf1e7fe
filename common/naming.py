"""Names that are safe as one path component (record folders, plot files)."""
from __future__ import annotations

import re


def safe_name(text: str, *, fallback: str, replacement: str = "-") -> str:
    """Every character outside [A-Za-z0-9_.+-] replaced by `replacement`, leading/trailing dots and
    replacements stripped; `fallback` when nothing is left."""
    return re.sub(r"[^A-Za-z0-9_.+-]", replacement, text).strip("." + "-" + replacement) or fallback
