"""Convert a pretrained ResNet checkpoint into a Detectron2 backbone pickle, and prove it right.

    python -m mocobench.detection.convert INPUT OUTPUT          # detect the format, convert, verify
    python -m mocobench.detection.convert --list-formats

Reads our pretraining checkpoints, the official MoCo v1/v2 ones (``module.encoder_q.*``), MoCo v3
ResNet ones (``module.base_encoder.*``) and plain torchvision ResNet state_dicts, with or without
DataParallel/DDP ``module.`` prefixes. Writes ``{"model": {name: ndarray}, "__author__", ...,
"matching_heuristics": True}`` holding exactly the backbone tensors of the detected depth: no fc or
projection-head leftovers, every BN statistic present, every shape as Detectron2's ResNet expects.

Every conversion is checked by the forward-pass proof (``verify``, in detection/proof.py).
"""
from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from mocobench.common.atomic import atomic_write
from mocobench.common.errors import UsageError
from mocobench.common.logs import cli_logging
from mocobench.detection.proof import ProofError, VerifyReport, verify
from mocobench.pretrain.checkpoint import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

__all__ = ["ConversionError", "CheckpointFormat", "FORMATS", "Conversion", "VerifyReport", "load_checkpoint",
           "extract_backbone", "torchvision_to_detectron2", "convert", "save_detectron2", "verify",
           "convert_file", "main"]

_DEPTHS = {  # depth -> (blocks per layer1..layer4, bottleneck blocks?)
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
    152: ((3, 8, 36, 3), True),
}


class ConversionError(UsageError):
    """The input is not a checkpoint this converter can turn into a Detectron2 ResNet backbone."""


@dataclass(frozen=True)
class CheckpointFormat:
    name: str
    prefix: str  # prefix of the backbone keys once DataParallel/DDP "module." prefixes are stripped
    description: str


FORMATS: dict[str, CheckpointFormat] = {f.name: f for f in (
    CheckpointFormat("moco", "encoder_q.",
                     "MoCo v1/v2 (official code and ours): state_dict with module.encoder_q.<torchvision keys>; "
                     "the fc / MLP head, encoder_k, queue are dropped"),
    CheckpointFormat("moco-v3", "base_encoder.",
                     "MoCo v3 ResNet: state_dict with module.base_encoder.<torchvision keys>; the projection "
                     "head (fc.*), momentum_encoder and predictor are dropped"),
    CheckpointFormat("torchvision", "",
                     "plain torchvision ResNet state_dict (e.g. torchvision's supervised ImageNet weights), "
                     "bare or under 'state_dict'/'model', with or without DataParallel/DDP 'module.' prefixes "
                     "(our supervised pretraining checkpoints); fc.* is dropped"),
)}


@dataclass
class Conversion:
    """The result of converting one checkpoint."""
    format: str
    depth: int
    torchvision_state: dict[str, torch.Tensor]          # backbone tensors under torchvision names
    detectron2_state: dict[str, np.ndarray]             # the same tensors under Detectron2 names
    key_map: list[tuple[str, str]]                      # (source key, detectron2 key), in order
    dropped: list[str]                                  # source keys deliberately left out
    meta: dict[str, Any] = field(default_factory=dict)  # epoch, arch, pretraining config, ...


# ----------------------------------------------------------------------------------------- reading
def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint as a dict (pretrain.checkpoint.read_checkpoint), refusing Detectron2 .pkl files."""
    path = Path(path)
    if path.suffix == ".pkl" and path.is_file():
        raise ConversionError(f"{path}: a .pkl is already a Detectron2/Caffe2 weight file; pass it to "
                              f"Detectron2 directly (MODEL.WEIGHTS) instead of converting it.")
    try:
        return read_checkpoint(path)
    except CheckpointError as e:
        raise ConversionError(str(e)) from None


def _state_dict_of(ckpt: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a checkpoint into (state_dict, meta)."""
    for key in ("state_dict", "model"):
        if key in ckpt and isinstance(ckpt[key], Mapping):
            meta = {k: v for k, v in ckpt.items() if k in ("epoch", "arch", "config")}
            return {k: v for k, v in ckpt[key].items() if isinstance(v, torch.Tensor)}, meta
    tensors = {k: v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ConversionError(f"no tensors found: top-level keys are {sorted(ckpt)[:10]}; expected a "
                              f"state_dict or a checkpoint with 'state_dict'.")
    return tensors, {}


def _strip_wrappers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Remove DataParallel/DDP "module." prefixes (possibly nested) shared by all keys."""
    n = 0
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        n += 1
    return state, n


def detect_format(state: Mapping[str, torch.Tensor]) -> CheckpointFormat:
    keys = list(state)
    if any(k.startswith("encoder_q.") for k in keys):
        return FORMATS["moco"]
    if any(k.startswith("base_encoder.") for k in keys):
        return FORMATS["moco-v3"]
    if "conv1.weight" in state or any(k.startswith("layer1.") for k in keys):
        return FORMATS["torchvision"]
    raise ConversionError("unknown checkpoint format (not a ResNet?): first keys "
                          f"{keys[:6]}. Known formats:\n" + list_formats())


def list_formats() -> str:
    return "\n".join(f"  {f.name:12s} {f.description}" for f in FORMATS.values())


# ------------------------------------------------------------------------------ strict extraction
def _expected_shapes(depth: int) -> dict[str, tuple[int, ...]]:
    """Backbone tensor shapes of torchvision's resnet{depth}, fc and num_batches_tracked excluded."""
    import torchvision

    with torch.device("meta"):  # shapes only, nothing allocated
        model = getattr(torchvision.models, f"resnet{depth}")()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}


def _infer_depth(state: Mapping[str, torch.Tensor]) -> int:
    """The ResNet depth whose key set is closest to the given backbone keys; errors name the gaps."""
    if "conv1.weight" not in state and not any(k.startswith("layer") for k in state):
        raise ConversionError(f"not a ResNet: no conv1.weight and no layer1..layer4 tensors (keys: {list(state)[:6]})")
    bottleneck = any(re.match(r"layer\d\.\d+\.conv3\.weight$", k) for k in state)
    best, best_missing = None, None
    for depth, (_, is_bottleneck) in _DEPTHS.items():
        if is_bottleneck != bottleneck:
            continue
        missing = sorted(set(_expected_shapes(depth)) - set(state))
        if best_missing is None or len(missing) < len(best_missing):
            best, best_missing = depth, missing
    assert best is not None and best_missing is not None
    if best_missing:
        blocks = [len({m.group(1) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))}) for i in range(1, 5)]
        raise ConversionError(
            f"incomplete ResNet: closest is ResNet-{best} (blocks per layer {list(_DEPTHS[best][0])}, found "
            f"{blocks}), but {len(best_missing)} tensors are missing, e.g. {best_missing[:8]}. The checkpoint "
            f"is truncated or not a standard torchvision-style ResNet.")
    return best


def extract_backbone(ckpt: Mapping[str, Any], fmt: str = "auto"
                     ) -> tuple[dict[str, torch.Tensor], int, CheckpointFormat,
                                                                         list[str], dict[str, Any]]:
    """Backbone tensors (torchvision names), depth, format, dropped keys and meta of a checkpoint."""
    state, meta = _state_dict_of(ckpt)
    state, _ = _strip_wrappers(state)
    if fmt == "auto":
        spec = detect_format(state)
    elif fmt in FORMATS:
        spec = FORMATS[fmt]
    else:
        raise ConversionError(f"--format {fmt!r} is not known. Known formats:\n{list_formats()}")
    stem = (meta.get("config") or {}).get("stem") if isinstance(meta.get("config"), Mapping) else None
    if stem not in (None, "standard"):
        raise ConversionError(f"the checkpoint was pretrained with stem {stem!r} (3x3 conv1, no max-pool, for "
                              f"small images): Detectron2's ResNet stem is a 7x7 stride-2 conv + max-pool, "
                              f"so these weights cannot map onto it. Pretrain with the standard stem to transfer.")
    backbone, dropped = {}, []
    for key, value in state.items():
        if spec.prefix and not key.startswith(spec.prefix):
            dropped.append(key)
            continue
        name = key[len(spec.prefix):]
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            dropped.append(key)
            continue
        backbone[name] = value
    if not backbone:
        raise ConversionError(f"format {spec.name!r} expects keys under {spec.prefix!r}, none found. "
                              f"Known formats:\n{list_formats()}")
    if "conv1.weight" in backbone and tuple(backbone["conv1.weight"].shape[-2:]) != (7, 7):
        raise ConversionError(f"conv1.weight has shape {tuple(backbone['conv1.weight'].shape)}: a small-image stem "
                              f"(3x3 conv1) cannot map onto Detectron2's 7x7 stride-2 stem. Pretrain with the "
                              f"standard stem to transfer to detection.")
    depth = _infer_depth(backbone)
    expected = _expected_shapes(depth)
    extra = sorted(set(backbone) - set(expected))
    if extra:
        raise ConversionError(f"ResNet-{depth} backbone with {len(extra)} unexpected tensors (head leftovers or a "
                              f"non-standard ResNet), e.g. {extra[:8]}")
    bad = [f"{k}: {tuple(v.shape)} (expected {expected[k]})" for k, v in backbone.items()
           if tuple(v.shape) != expected[k]]
    if bad:
        raise ConversionError(f"ResNet-{depth} tensors with wrong shapes (wide/grouped variant?): {bad[:6]}")
    nonfinite = [k for k, v in backbone.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise ConversionError(f"non-finite values (NaN/inf) in {nonfinite[:6]}: the pretraining diverged.")
    ordered = {k: backbone[k].detach().float().contiguous() for k in expected}  # torchvision order
    return ordered, depth, spec, dropped, meta


# --------------------------------------------------------------------------------------- renaming
def _rename(key: str) -> str:
    """torchvision ResNet key -> Detectron2 ResNet key."""
    if key.startswith("conv1."):
        return "stem." + key
    if key.startswith("bn1."):
        return "stem.conv1.norm." + key[len("bn1."):]
    m = re.match(r"layer(\d)\.(\d+)\.(.+)$", key)
    if not m:
        raise ConversionError(f"cannot rename {key!r}: not a torchvision ResNet backbone key")
    stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
    rest = re.sub(r"^bn(\d)\.", r"conv\1.norm.", rest)
    rest = re.sub(r"^downsample\.0\.", "shortcut.", rest)
    rest = re.sub(r"^downsample\.1\.", "shortcut.norm.", rest)
    return f"res{stage}.{block}.{rest}"


def torchvision_to_detectron2(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    out, key_map = {}, []
    for key, value in state.items():
        new = _rename(key)
        if new in out:
            raise ConversionError(f"two tensors map onto {new!r}")
        out[new] = value.numpy()
        key_map.append((key, new))
    return out, key_map


def convert(ckpt: Mapping[str, Any], fmt: str = "auto") -> Conversion:
    backbone, depth, spec, dropped, meta = extract_backbone(ckpt, fmt)
    d2_state, key_map = torchvision_to_detectron2(backbone)
    prefix = spec.prefix
    return Conversion(format=spec.name, depth=depth, torchvision_state=backbone, detectron2_state=d2_state,
                      key_map=[(prefix + a, b) for a, b in key_map], dropped=dropped, meta=meta)


def save_detectron2(conv: Conversion, output: str | os.PathLike, *, source: str | None = None,
                    overwrite: bool = False) -> Path:
    """Write the Detectron2 pickle atomically; refuses to replace an existing file unless overwrite."""
    output = Path(output)
    if output.suffix != ".pkl":
        raise ConversionError(f"{output}: the output must end in .pkl (Detectron2 reads .pkl as converted weights)")
    if output.exists() and not overwrite:
        raise ConversionError(f"{output} already exists; pass --overwrite to replace it, or choose another name")
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in conv.meta.items() if k in ("epoch", "arch")}
    payload = {"model": conv.detectron2_state, "__author__": "moco-transfer-bench detection.convert",
               "matching_heuristics": True,
               "source": {"path": source, "format": conv.format, "depth": conv.depth, **meta}}
    with atomic_write(output, overwrite=True) as f:
        pickle.dump(payload, f)
    return output


def convert_file(input: str | os.PathLike, output: str | os.PathLike, *, fmt: str = "auto", overwrite: bool = False,
                 check: bool = True) -> tuple[Conversion, VerifyReport | None]:
    """Convert INPUT into OUTPUT, log the key map and (check=True) the forward-pass proof.
    Raises ConversionError when the input is wrong or the proof fails (the output is then removed)."""
    conv = convert(load_checkpoint(input), fmt)
    epoch = conv.meta.get("epoch")
    log.info(f"{input}: format {conv.format}, ResNet-{conv.depth}, {len(conv.key_map)} backbone tensors"
             + (f", epoch {epoch}" if epoch is not None else ""))
    for src, dst in conv.key_map:
        log.info(f"  {src:55s} -> {dst:40s} {tuple(conv.detectron2_state[dst].shape)}")
    if conv.dropped:
        counters = [k for k in conv.dropped if k.endswith("num_batches_tracked")]
        others = [k for k in conv.dropped if k not in set(counters)]
        groups = sorted({".".join(k.split(".")[:2]) if k.split(".")[0] in ("encoder_k", "momentum_encoder")
                         else k for k in others})
        shown = ", ".join(groups[:16]) + (" ..." if len(groups) > 16 else "")
        log.info(f"dropped {len(others)} non-backbone tensors ({shown}) and {len(counters)} BN "
                 f"num_batches_tracked counters")
    if Path(output).exists() and not overwrite:
        raise ConversionError(f"{output} already exists; pass --overwrite to replace it, or choose another name")
    path = save_detectron2(conv, output, source=str(input), overwrite=overwrite)
    report = None
    if check:
        try:
            report = verify(path, conv.torchvision_state, conv.depth)
        except ProofError as e:
            path.unlink()
            raise ConversionError(str(e)) from None
        except BaseException:
            path.unlink()
            raise
        for stage in report.max_abs_diff:
            log.info(f"proof: {stage} {str(report.shapes[stage]):22s} max|d2 - torchvision| = "
                     f"{report.max_abs_diff[stage]:.3e} (relative {report.max_rel_diff[stage]:.3e})")
        stage, worst = report.largest()
        if not report.ok:
            path.unlink()
            raise ConversionError(f"proof failed: {stage} differs by {worst:.3e} (relative) > {report.tolerance:.0e}; "
                                  f"the converted backbone does not compute what the source does. {output} removed.")
        log.info(f"proof OK: largest relative difference {worst:.3e} ({stage}) <= {report.tolerance:.0e}")
    log.info(f"wrote {path}")
    return conv, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocobench.detection.convert", description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="checkpoint: ours, official MoCo v1/v2/v3, or a torchvision ResNet")
    parser.add_argument("output", nargs="?", help="Detectron2 weight file to write (.pkl); never overwritten "
                                                  "unless --overwrite")
    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS],
                        help="input format (default: detect it; see --list-formats)")
    parser.add_argument("--list-formats", action="store_true", help="list the input formats and exit")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the forward-pass proof (not recommended: it is what catches a wrong key map)")
    args = parser.parse_args(argv)
    cli_logging()
    if args.list_formats:
        print("Known input formats:\n" + list_formats())
        return 0
    if not args.input or not args.output:
        parser.error("INPUT and OUTPUT are required (or --list-formats)")
    try:
        convert_file(args.input, args.output, fmt=args.format, overwrite=args.overwrite, check=not args.no_verify)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
