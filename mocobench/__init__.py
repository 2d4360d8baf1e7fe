"""moco-transfer-bench, installed under one name: mocobench.<room> for each folder of the repository
(common, data, pretrain, detection, segmentation, runner, reporting, benchmarks), plus mocobench.records,
the record schema. Nothing of ours is imported here.

From a source tree without any install (a GPU node with its own torch and no package index,
docs/gpu-check.md): with the repository root on sys.path, `mocobench` is this folder, and the rooms are
found by adding the repository root to this package's search path, as [tool.setuptools.package-dir]
maps them when installed. An installed copy (its rooms inside this folder) is left as it is."""
import os as _os
import warnings as _warnings

_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if (not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "common"))
        and _os.path.isfile(_os.path.join(_root, "pyproject.toml"))
        and _os.path.isfile(_os.path.join(_root, "common", "__init__.py"))):
    __path__.append(_root)  # noqa: F821  (the package's own __path__)
del _root

# Every command imports detectron2, whose fvcore calls torch.jit.script at import time, and torch warns about
# that on each run. Only that one message is silenced, for every entry point (they all import this package).
_warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
del _warnings
# Spawned children that import torch before this package (Detectron2's Cityscapes loader pool in a trial worker)
# do not inherit the filter; every Python child reads PYTHONWARNINGS, whose message is a literal prefix.
_ignore = "ignore:`torch.jit.script` is deprecated:FutureWarning"
if _ignore not in _os.environ.get("PYTHONWARNINGS", ""):
    _os.environ["PYTHONWARNINGS"] = ",".join(w for w in (_os.environ.get("PYTHONWARNINGS"), _ignore) if w)
del _ignore, _os
