"""The proof of a conversion: Detectron2's own ResNet, loaded with the converted pickle through
Detectron2's checkpointer, computes what the torchvision model with the source tensors computes.

Its res2..res5 outputs are compared on one deterministic image, normalised as our detection configs
normalise it (RGB, PIXEL_MEAN/PIXEL_STD) on the Detectron2 side and as torchvision does on the other.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from mocobench.common import safe_pickle
from mocobench.common.errors import UsageError

# ImageNet normalisation as torchvision defines it (fractions of 1, RGB): the independent side of
# the proof. The detection configs state the same values x255 as MODEL.PIXEL_MEAN / PIXEL_STD.
_TV_MEAN = (0.485, 0.456, 0.406)
_TV_STD = (0.229, 0.224, 0.225)
_CONFIG_FOR_PIXELS = Path(__file__).resolve().parent / "configs" / "Base-RCNN-C4-BN.yaml"


class ProofError(UsageError):
    """The converted weights do not load, or do not compute what the source computes."""


@dataclass
class VerifyReport:
    max_abs_diff: dict[str, float]   # per stage res2..res5
    max_rel_diff: dict[str, float]   # max |d2 - tv| / max |tv|
    shapes: dict[str, tuple[int, ...]]
    tolerance: float

    @property
    def ok(self) -> bool:
        return all(v <= self.tolerance for v in self.max_rel_diff.values())

    def largest(self) -> tuple[str, float]:
        stage = max(self.max_rel_diff, key=self.max_rel_diff.__getitem__)
        return stage, self.max_rel_diff[stage]


def _proof_image(height: int = 160, width: int = 224, seed: int = 0) -> np.ndarray:
    """A deterministic RGB uint8 image (HxWx3) with smooth structure and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(xx / 17.0), 128 + 100 * np.cos(yy / 11.0),
                     128 + 90 * np.sin((xx + yy) / 23.0)], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _pixel_settings(config: str | os.PathLike = _CONFIG_FOR_PIXELS) -> tuple[list[float], list[float], str]:
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(config))
    return list(cfg.MODEL.PIXEL_MEAN), list(cfg.MODEL.PIXEL_STD), cfg.INPUT.FORMAT


def build_detectron2_resnet(depth: int, norm: str = "BN"):
    """Detectron2's own ResNet backbone (res2..res5 outputs), as our configs build it."""
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64 if depth < 50 else 256
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False  # torchvision ResNets stride in the 3x3 conv
    cfg.MODEL.RESNETS.NORM = norm
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    return build_resnet_backbone(cfg, ShapeSpec(channels=3))


def verify(pkl_path: str | os.PathLike, torchvision_state: Mapping[str, torch.Tensor], depth: int, *,
           image: np.ndarray | None = None, tolerance: float = 1e-4) -> VerifyReport:
    """Load the pickle into Detectron2's ResNet through DetectionCheckpointer, then compare res2..res5 with
    torchvision's resnet{depth} holding the source tensors, on one image (eval mode, BN running stats)."""
    import torchvision
    from detectron2.checkpoint import DetectionCheckpointer

    d2 = build_detectron2_resnet(depth).eval()
    DetectionCheckpointer(d2).load(str(pkl_path))
    saved = safe_pickle.load(pkl_path)["model"]
    loaded = d2.state_dict()
    not_loaded = [k for k in loaded if not k.endswith("num_batches_tracked") and k not in saved]
    if not_loaded:
        raise ProofError(f"Detectron2's ResNet-{depth} has tensors the pickle lacks: {not_loaded[:8]}")
    differ = [k for k, v in saved.items() if k not in loaded or not np.array_equal(loaded[k].numpy(), v)]
    if differ:
        raise ProofError(f"Detectron2's checkpointer did not load these tensors as written: {differ[:8]}")

    tv = getattr(torchvision.models, f"resnet{depth}")().eval()
    missing, unexpected = tv.load_state_dict(dict(torchvision_state), strict=False)
    assert not unexpected and all(k.startswith("fc.") or k.endswith("num_batches_tracked") for k in missing), \
        (missing, unexpected)

    img = _proof_image() if image is None else image
    mean, std, fmt = _pixel_settings()
    if fmt != "RGB":
        raise ProofError(f"{_CONFIG_FOR_PIXELS} says INPUT.FORMAT {fmt}; torchvision weights expect RGB")
    rgb = torch.from_numpy(img).permute(2, 0, 1).float()[None]  # 1x3xHxW, 0..255
    x_d2 = (rgb - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    x_tv = (rgb / 255.0 - torch.tensor(_TV_MEAN).view(1, 3, 1, 1)) / torch.tensor(_TV_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out_d2 = d2(x_d2)
        h = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x_tv))))
        out_tv = {}
        for i, layer in enumerate((tv.layer1, tv.layer2, tv.layer3, tv.layer4), start=2):
            h = layer(h)
            out_tv[f"res{i}"] = h
    abs_d, rel_d, shapes = {}, {}, {}
    for name, ref in out_tv.items():
        got = out_d2[name]
        if got.shape != ref.shape:
            raise ProofError(f"{name}: Detectron2 output {tuple(got.shape)} vs torchvision {tuple(ref.shape)}")
        diff = (got - ref).abs().max().item()
        abs_d[name], rel_d[name] = diff, diff / max(ref.abs().max().item(), 1e-12)
        shapes[name] = tuple(ref.shape)
    return VerifyReport(max_abs_diff=abs_d, max_rel_diff=rel_d, shapes=shapes, tolerance=tolerance)


