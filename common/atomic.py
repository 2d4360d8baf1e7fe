"""Atomic file writes: readers never see half a file, and finished outputs are never clobbered.

One mechanism for every writer of the suite (records, checkpoints, converted weights, tables, plots):
write into a temp file in the target's folder, fsync, then either link it into place (fails if the
target exists: results and checkpoints) or rename over the target (derived files).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool, mode: str = "wb",
                 encoding: str | None = None, durable: bool = True) -> Iterator[IO]:
    """Yield a file to write; on success it appears at path in one step.

    overwrite=False: raises FileExistsError (and leaves the existing file untouched) if path exists.
    durable=False skips the fsync: for the many files of a folder that is itself published in one step
    (the synthetic data set, renamed into place with its manifest last).
    On any error the temp file is removed and path is unchanged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and never replaces an existing file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log file (JSON lines) in a single write on an O_APPEND descriptor, so that
    readers and other appenders see whole lines, never half of one. Creates the file and its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True, durable: bool = True) -> Path:
    """Write a whole text file atomically (UTF-8); overwrite=False refuses (FileExistsError) to replace one."""
    with atomic_write(path, overwrite=overwrite, mode="w", encoding="utf-8", durable=durable) as f:
        f.write(text)
    return Path(path)


def link_dir(path: str | os.PathLike, target: str | os.PathLike) -> bool:
    """Make `path` a symbolic link to the folder `target` in one step, never replacing anything: True when
    made, False when it is that link already; FileExistsError when something else is there."""
    path, target = Path(path), Path(target)
    if path.is_symlink() and Path(os.readlink(path)) == target:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{os.getpid()}-{path.name}"
    if tmp.is_symlink():  # left by a killed run of this process id
        tmp.unlink()
    os.symlink(target, tmp, target_is_directory=True)
    try:
        os.link(tmp, path, follow_symlinks=False)  # atomic, and never replaces an existing file
    finally:
        os.unlink(tmp)
    return True
