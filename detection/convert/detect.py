"""Which layout of detection/formats.py a checkpoint is: each layout is matched against the file, the one
that fits is used (two that fit: an error naming both; --format NAME decides), tensors no layout names are
dropped and listed unless they look like a second backbone. Also the --list-formats text."""
from __future__ import annotations

import logging
import re
from typing import Any, Mapping

from mocobench.detection.convert.archs import architecture
from mocobench.detection.convert.load import all_tensor_keys, at, strip_wrappers, tensors
from mocobench.detection.convert.result import ConversionError
from mocobench.detection.formats import LAYOUTS, TORCHVISION_PIXELS, Detected, Layout

log = logging.getLogger(__name__)


def _accounted(lay: Layout, prefix: str, key: str) -> bool:
    """Is key part of the backbone, or something the layout knows it drops?"""
    if any(key == d or key.startswith(d) for d in lay.drops):
        return True
    if lay.duplicate_of and key.startswith(lay.duplicate_of):
        return True
    if not key.startswith(prefix):
        return False
    if prefix:  # everything under a named prefix is backbone material; extraction refuses what does not fit
        return True
    return architecture(lay.arch).is_backbone_key(key)


def known_drop(lay: Layout, key: str) -> bool:
    """A dropped key the layout names (a drop, a BN counter, the duplicate copy, the classifier)."""
    name = key.rsplit(".", 1)[-1]
    return (any(key == d or key.startswith(d) for d in lay.drops) or name == "num_batches_tracked"
            or (lay.duplicate_of is not None and key.startswith(lay.duplicate_of))
            or bool(architecture(lay.arch).head.match(key)))


def _has_path(ckpt: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = ckpt
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True


def match_layout(lay: Layout, ckpt: Mapping[str, Any], *, forced: bool = False) -> Detected | None:
    """How `lay` reads ckpt (its container, backbone prefix, unaccounted tensors), or None if it cannot.
    forced (--format): the layout's `needs` and `signature` are not required."""
    if not forced and (any(n not in ckpt for n in lay.needs)
                       or (lay.needs_one_of and not any(_has_path(ckpt, p) for p in lay.needs_one_of))
                       or any(_has_path(ckpt, p) for p in lay.not_with)):
        return None
    arch = architecture(lay.arch)
    for path in lay.container:
        node = at(ckpt, path)
        if node is None:
            continue
        state, _ = strip_wrappers(tensors(node))
        prefix = next((p for p in lay.prefixes if arch.has_backbone(state, p, lay.index_names)), None)
        if prefix is None:
            continue
        if not forced and lay.signature and not any(k.startswith(lay.signature) for k in state):
            return None
        if lay.duplicate_of and not lay.duplicate_optional and not any(k.startswith(lay.duplicate_of) for k in state):
            return None
        return Detected(lay, state, prefix, [k for k in state if not _accounted(lay, prefix, k)])
    return None


def _not_a_resnet(ckpt: Mapping[str, Any]) -> ConversionError:
    keys = all_tensor_keys(ckpt)
    if any(re.search(r"(^|[./])(cls_token|pos_embed|patch_embed\.)", k) for k in keys):
        return ConversionError("this checkpoint holds a Vision Transformer (cls_token / patch_embed tensors), not a "
                               "ResNet: Detectron2's ResNet backbones cannot take it. convert_file sends ViTs to "
                               "the ViT family (detection/vit), for the ViTDet benchmark (coco-vitdet).")
    if not keys:
        return ConversionError(f"no tensors found: top-level keys are {sorted(map(str, ckpt))[:10]}; expected a "
                               f"state_dict or a checkpoint with 'state_dict'.")
    return ConversionError(f"unknown checkpoint format (not a ResNet?): no layout finds a ResNet backbone (conv1, "
                           f"layer1..4) in it; first tensor keys {keys[:6]}. Known formats:\n" + list_formats())


def detect_layout(ckpt: Mapping[str, Any], fmt: str = "auto") -> Detected:
    """The one layout that fits ckpt (or the one --format names). Errors: two layouts fit (both named), none
    does, or tensors outside the backbone that look like a ResNet of their own."""
    if fmt != "auto":
        if fmt not in LAYOUTS:
            raise ConversionError(f"--format {fmt!r} is not known. Known formats:\n{list_formats()}")
        found = match_layout(LAYOUTS[fmt], ckpt, forced=True)
        if found is None:
            lay = LAYOUTS[fmt]
            where = " or ".join(map(repr, lay.prefixes))
            raise ConversionError(f"format {fmt!r} expects a ResNet backbone under {where} "
                                  f"in {' or '.join('/'.join(p) or 'the file itself' for p in lay.container)}; none "
                                  f"found. Known formats:\n{list_formats()}")
        return _check_leftovers(found)
    found = [d for lay in LAYOUTS.values() if (d := match_layout(lay, ckpt)) is not None]
    exact = [d for d in found if not d.unaccounted]
    if len(exact) == 1:
        return exact[0]
    if not exact and len(found) > 1:  # none accounts for everything: the closest ones (fewest unknown tensors)
        fewest = min(len(d.unaccounted) for d in found)
        found = [d for d in found if len(d.unaccounted) == fewest]
    if len(exact) > 1 or len(found) > 1:
        both = exact or found
        names = " and ".join(repr(d.layout.name) for d in both)
        raise ConversionError(f"the checkpoint fits {len(both)} layouts, {names} ("
                              + "; ".join(f"{d.layout.name}: {d.layout.source}" for d in both)
                              + "). Say which with --format NAME.")
    if len(found) == 1:
        return _check_leftovers(found[0])
    raise _not_a_resnet(ckpt)


def _check_leftovers(found: Detected) -> Detected:
    """Tensors the layout does not name are dropped and listed, unless they look like a ResNet themselves."""
    looks_like = architecture(found.layout.arch).looks_like_backbone
    resnetlike = [k for k in found.unaccounted if looks_like(k)]
    if resnetlike:
        raise ConversionError(f"layout {found.layout.name!r} reads the backbone under {found.prefix!r}, but "
                              f"{len(resnetlike)} other tensors look like ResNet weights too (e.g. {resnetlike[:4]}): "
                              f"a second backbone that does not fit this layout. Check the file's origin, or name "
                              f"the layout with --format.")
    if found.unaccounted:
        log.warning(f"layout {found.layout.name!r}: {len(found.unaccounted)} tensors it does not know are dropped: "
                    f"{found.unaccounted[:8]}{' ...' if len(found.unaccounted) > 8 else ''}")
    return found


def list_formats() -> str:
    return "\n".join(f"  {lay.name:14s} {lay.source}" for lay in LAYOUTS.values())


def describe_formats() -> str:
    """--list-formats: every layout with its detection rule, prefix, drops and refusals."""
    out = []
    for lay in LAYOUTS.values():
        out.append(f"{lay.name}\n  source:   {lay.source}\n  detect:   {lay.detection}\n  drops:    "
                   + (", ".join(lay.drops) or "nothing but fc.*")
                   + (f"; whole {', '.join('/'.join(s) for s in lay.siblings)}" if lay.siblings else "")
                   + (f"\n  refuses:  {lay.refuses}" if lay.refuses else "")
                   + (f"\n  note:     {lay.notes}" if lay.notes else ""))
    return "\n".join(out) + ("\n(all layouts: fc.* and BN num_batches_tracked are dropped; CIFAR stems, deep "
                              "stems, ViTs, missing or extra backbone tensors are refused; input "
                              f"{TORCHVISION_PIXELS})")
