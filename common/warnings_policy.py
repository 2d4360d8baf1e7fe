"""The suite's warnings policy, set where a command starts, never on import.

One third-party message is silenced: fvcore (imported by Detectron2) calls `torch.jit.script` while it is
imported, and torch answers with a FutureWarning on every run. Nothing else is touched.

- `apply_command_policy()`: what each command's `main` calls first. It installs the filter in this process and
  adds the same rule to PYTHONWARNINGS, which every Python child reads at start-up: spawned processes (a trial's
  Detectron2 workers, the Cityscapes loader's pool, DataLoader workers) import torch before any code of ours.
- `quiet_imports()`: a context for the library's own imports of Detectron2 (the packages that register our
  heads); the filter holds inside it only, so importing the library leaves `warnings.filters` as it was. It
  keeps `python -m mocobench.detection.convert` quiet, whose package is imported before its `main` runs.
"""
from __future__ import annotations

import os
import re
import warnings
from contextlib import contextmanager
from typing import Iterator

TORCH_JIT_MESSAGE = "`torch.jit.script` is deprecated"
ENV_RULE = f"ignore:{TORCH_JIT_MESSAGE}:FutureWarning"  # PYTHONWARNINGS: the message is a literal prefix


def _filter() -> None:
    warnings.filterwarnings("ignore", message=re.escape(TORCH_JIT_MESSAGE), category=FutureWarning)


def apply_command_policy(environ: dict[str, str] | None = None) -> None:
    """Silence the torch.jit message in this process and in every Python child it starts (idempotent)."""
    env = os.environ if environ is None else environ
    _filter()
    current = env.get("PYTHONWARNINGS", "")
    if ENV_RULE not in current.split(","):
        env["PYTHONWARNINGS"] = ",".join(w for w in (current, ENV_RULE) if w)


@contextmanager
def quiet_imports() -> Iterator[None]:
    """The filter for the duration of a block of imports; the previous filters come back afterwards."""
    with warnings.catch_warnings():
        _filter()
        yield
