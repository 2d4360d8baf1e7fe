"""moco-transfer-bench, installed under one name: mocobench.<room> for each folder of the repository
(common, data, pretrain, detection, segmentation, runner, reporting, benchmarks), plus mocobench.records,
the record schema. Nothing of ours is imported here, and importing it changes no global state (warnings,
environment): each command sets its warnings policy where it starts (common/warnings_policy.py).

From a source tree without any install (a GPU node with its own torch and no package index,
docs/gpu-check.md): with the repository root on sys.path, `mocobench` is this folder, and the rooms are found
through its links (mocobench/<room> -> ../<room>); a copy that lost the links (no symlinks on its file
system) finds them by adding the repository root to this package's search path. An installed copy (its rooms
inside this folder) is left as it is."""
import os as _os

_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if (not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "common"))
        and _os.path.isfile(_os.path.join(_root, "pyproject.toml"))
        and _os.path.isfile(_os.path.join(_root, "common", "__init__.py"))):
    __path__.append(_root)  # noqa: F821  (the package's own __path__)
del _root, _os
