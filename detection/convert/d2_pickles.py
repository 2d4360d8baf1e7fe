"""What a Detectron2 weight pickle (.pkl) is, from its content, read the way Detectron2's checkpointer reads it
(detectron2/checkpoint/detection_checkpoint.py `_load_file`): ``{"model", "__author__", ...}`` is a converted
file whose author names where it came from; anything else is a Caffe2 / Detectron1 file, its tensors under
"blobs" or at the top level.

- "caffe2": the MSRA ImageNet weights (Detectron2's ImageNetPretrained/MSRA/R-50.pkl): Caffe2 blob names
  (conv1_w, res_conv1_bn_s, res2_0_branch2a_w, ..., fc1000_w), BN folded into scale/bias. Trained on BGR
  input with the caffe mean and no std, stride in the 1x1 conv: Detectron2's MSRA settings.
- "torchvision": written by Detectron2's tools/convert-torchvision-to-d2.py (``__author__ "torchvision"``):
  RGB input with torchvision's mean/std, stride in the 3x3 conv. Its fc (if the source had one) is kept as
  stem.fc.weight.
- "mocobench": written by this converter (detection/convert/save.py), its "source" entry saying the layout,
  depth and any classifier that was dropped.
- "detectron2": any other converted file (another ``__author__``).
Nothing is run: the file is read with common/safe_pickle.py (numpy arrays and plain data only).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from mocobench.common import safe_pickle
from mocobench.common.resnets import RESNET_DEPTHS
from mocobench.detection.convert.save import AUTHOR

CAFFE2, TORCHVISION, MOCOBENCH, DETECTRON2 = "caffe2", "torchvision", "mocobench", "detectron2"
_C2_BLOCK = re.compile(r"^res([2-5])_(\d+)_branch2a_w$")
_D2_BLOCK = re.compile(r"^res([2-5])\.(\d+)\.conv1\.weight$")


@dataclass
class PickleInfo:
    origin: str                      # caffe2 | torchvision | mocobench | detectron2
    depth: int | None                # ResNet depth read from the block names, when they name one
    classifier: list[int] | None     # [classes, features] of a classifier stored in the file, if any
    format: str | None = None        # mocobench: the checkpoint layout it was converted from
    why: str = ""                    # what in the file says so, in words


def _depth(blocks: Mapping[int, set[str]], bottleneck: bool) -> int | None:
    counts = tuple(len(blocks.get(stage, ())) for stage in (2, 3, 4, 5))
    return next((d for d, (n, b) in RESNET_DEPTHS.items() if n == counts and b == bottleneck), None)


def _blocks(names: list[str], pattern: re.Pattern) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for name in names:
        if m := pattern.match(name):
            out.setdefault(int(m.group(1)), set()).add(m.group(2))
    return out


def _classifier(tensors: Mapping[str, Any], names: tuple[str, ...]) -> list[int] | None:
    for name in names:
        w = tensors.get(name)
        if getattr(w, "ndim", 0) == 2 and w.shape[0] >= 2:
            return [int(w.shape[0]), int(w.shape[1])]
    return None


def is_caffe2_resnet(blobs: Mapping[str, Any]) -> bool:
    """MSRA / Caffe2 ResNet blob names: the stem conv, its folded BN, and res2's first block."""
    return "conv1_w" in blobs and ("res_conv1_bn_s" in blobs or "res_conv1_bn_b" in blobs) \
        and any(_C2_BLOCK.match(str(k)) for k in blobs)


def inspect_payload(data: Any) -> PickleInfo:
    """The origin, depth and classifier of a Detectron2 pickle's content (see the module docstring)."""
    if not isinstance(data, Mapping):
        return PickleInfo(DETECTRON2, None, None, why="not a dict of weights")
    if "model" in data and "__author__" in data:
        author, model = str(data["__author__"]), data["model"] if isinstance(data["model"], Mapping) else {}
        names = [str(k) for k in model]
        blocks = _blocks(names, _D2_BLOCK)
        depth = _depth(blocks, any(n.endswith(".conv3.weight") for n in names)) if blocks else None
        if author == AUTHOR:
            source = data.get("source") if isinstance(data.get("source"), Mapping) else {}
            return PickleInfo(MOCOBENCH, source.get("depth", depth), source.get("classifier"), source.get("format"),
                              why=f"written by this suite's converter from a {source.get('format')!r} checkpoint")
        if author == "torchvision":
            return PickleInfo(TORCHVISION, depth, _classifier(model, ("stem.fc.weight", "fc.weight")),
                              why="__author__ 'torchvision': Detectron2's tools/convert-torchvision-to-d2.py output, "
                                  "RGB weights")
        return PickleInfo(DETECTRON2, depth, None, why=f"a converted Detectron2 file, __author__ {author!r}")
    blobs = data["blobs"] if isinstance(data.get("blobs"), Mapping) else data
    names = [str(k) for k in blobs if not str(k).endswith("_momentum")]
    if is_caffe2_resnet(blobs):
        depth = _depth(_blocks(names, _C2_BLOCK), any(n.endswith("_branch2c_w") for n in names))
        return PickleInfo(CAFFE2, depth, _classifier(blobs, ("fc1000_w", "pred_w")),
                          why="Caffe2/MSRA blob names (conv1_w, res_conv1_bn_s, res2_0_branch2a_w, ...) with no "
                              "__author__: Detectron2's ImageNetPretrained/MSRA layout, BGR caffe weights")
    return PickleInfo(DETECTRON2, None, None, why="a Caffe2 / Detectron1 file that is not an MSRA ResNet")


def inspect_pickle(path: str | os.PathLike) -> PickleInfo:
    """inspect_payload of a .pkl, read without running code (common/safe_pickle.py)."""
    return inspect_payload(safe_pickle.load(path))
