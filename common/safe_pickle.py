"""Reading pickles without running code: Detectron2 weight pickles (.pkl: {"model": {name: numpy array}, ...})
and torch checkpoints that carry foreign objects (`load_inert`).

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


# ------------------------------------------------------------------ checkpoints with foreign objects
# Released self-supervised checkpoints carry objects besides tensors: DINO's and PixPro's `args` (an
# argparse.Namespace), Lightning's hyper-parameters (OmegaConf containers), mmengine's message hub.
# `load_inert` reads such a torch.save file keeping tensors, numpy arrays and plain data, and turns every
# other object into an `Inert` placeholder: its class is never imported and nothing of it is called.


class Inert:
    """What a pickle named but this reader did not build: the global's name and the data it was given."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Inert":  # NEWOBJ / REDUCE: record, never construct
        obj = object.__new__(cls)
        obj.__dict__["args"] = args
        obj.__dict__["state"] = None
        obj.__dict__["items"] = []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:  # BUILD
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S) on a dict subclass
        self.__dict__["items"].append((key, value))

    def append(self, value: Any) -> None:  # APPEND(S) on a list subclass
        self.__dict__["items"].append(value)

    def extend(self, values: Any) -> None:
        self.__dict__["items"].extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


def _torch_allowed() -> dict[str, Any]:
    """The globals torch's own weights-only unpickler builds (tensors, storages, dtypes, OrderedDict, ...)."""
    import torch._weights_only_unpickler as wo

    return dict(wo._get_allowed_globals())


class _InertUnpickler(pickle.Unpickler):
    """find_class returns torch's weights-only globals and numpy's array reconstructors as they are, and a
    fresh `Inert` subclass for anything else (recorded in `ignored`)."""

    allowed: dict[str, Any] = {}
    ignored: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{module}.{name}"
        if qualname in self.allowed:
            return self.allowed[qualname]
        if (module, name) in ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return _Restricted.find_class(self, module, name)  # type: ignore[arg-type]
        self.ignored.append(qualname)
        return type(name, (Inert,), {"qualname": qualname, "__module__": __name__})


class _InertPickleModule:
    """What torch.load calls as its `pickle_module`: load() and Unpickler, both inert."""

    def __init__(self) -> None:
        self.ignored: list[str] = []
        module = self

        class Unpickler(_InertUnpickler):
            allowed = _torch_allowed()
            ignored = module.ignored

        self.Unpickler = Unpickler
        self.__name__ = "mocobench.common.safe_pickle.inert"

    def load(self, file: Any, **kwargs: Any) -> Any:
        return self.Unpickler(file, **kwargs).load()


class InertLoadError(UsageError):
    """A file that the inert reader cannot read either (truncated, not a torch.save file)."""


def load_inert(path: str | os.PathLike) -> tuple[Any, list[str]]:
    """(content, ignored): a torch.save file read on CPU with tensors, numpy arrays and plain data kept and
    every other object an `Inert` placeholder; `ignored` names each placeholder's global once, sorted."""
    import torch

    if os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in ("1", "y", "yes", "true"):
        raise InertLoadError(f"{path}: TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, which forbids any reader besides "
                             f"torch's weights-only one; unset it to read this file with inert placeholders")
    module = _InertPickleModule()
    try:
        # weights_only=False only because torch accepts a pickle_module with it; the module is ours, and it
        # never resolves a global outside torch's weights-only set and numpy's array reconstructors.
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except Exception as e:  # truncated, not a torch file, an Inert used where torch needs a real type, ...
        raise InertLoadError(f"{path}: cannot be read even with inert placeholders ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
    return obj, sorted(set(module.ignored))
