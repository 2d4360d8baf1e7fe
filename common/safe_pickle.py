"""Reading Detectron2 weight pickles (.pkl: {"model": {name: numpy array}, ...}) without running code.

Python's pickle calls whatever a file names. `load` allows only what weight pickles need -- numpy's
array and scalar reconstructors, dtypes, and `_codecs.encode` (bytes in protocol-2 pickles) -- and
refuses anything else with an error naming it, the way torch.load(weights_only=True) treats checkpoints.
`check` reads a file that way before Detectron2's checkpointer loads it with plain pickle.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from mocobench.common.errors import UsageError

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class UnsafePickleError(UsageError):
    """A pickle needs something other than numpy arrays and plain data."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            import importlib
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core: numpy._core's old name
                return getattr(importlib.import_module(module), name)
        raise UnsafePickleError(f"{module}.{name}")


def load(path: str | os.PathLike) -> Any:
    """The pickle's content, built from numpy arrays and plain data only (latin1 for Python 2 pickles)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _Restricted(f, encoding="latin1").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: refused: unpickling it would call {e}, which is not a numpy array "
                                f"or plain data. Weight pickles are read without running code (docs/reliability.md, "
                                f"'Loading policy'); convert the weights from a checkpoint instead.") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise UnsafePickleError(f"{path}: cannot be read as a weight pickle ({type(e).__name__}: {e}); is it "
                                f"truncated or not a .pkl?") from None


def check(path: str | os.PathLike) -> None:
    """Refuse (UnsafePickleError) a pickle that needs more than numpy arrays and plain data."""
    load(path)
