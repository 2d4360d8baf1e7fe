"""Helpers for tests that check what a command wrote, or that it wrote nothing."""
from __future__ import annotations

import os
from pathlib import Path


def files_under(*dirs: Path) -> list[Path]:
    """Every file (and link) below the folders that exist, in a stable order."""
    return sorted(p for d in dirs if d.exists() for p in d.rglob("*") if p.is_file() or p.is_symlink())


class CodeRunningPayload:
    """Pickles to a call of os.system that touches `marker`: a file that holds it must be refused unread."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
