"""Checks of a user's COCO keypoint data: one keypoint list for every category, each annotation's keypoints
against it, and the declared left/right flip map (data/custom.py reads the files and calls these)."""
from __future__ import annotations

from typing import Any

from mocobench.data.errors import DatasetError


def keypoint_names(path: str, categories: list[dict[str, Any]]) -> tuple[str, ...]:
    """The keypoint names of a COCO keypoint file (every category lists the same 'keypoints'), or () for a
    file without keypoints. Detectron2's keypoint head predicts one set of K keypoints for every class."""
    lists = {c["name"]: c.get("keypoints") for c in categories}
    given = {n: k for n, k in lists.items() if k}
    if not given:
        return ()
    bad = [n for n, k in given.items() if not (isinstance(k, list) and all(isinstance(x, str) and x for x in k))]
    if bad:
        raise DatasetError(f"{path}: the 'keypoints' of categories {bad} are not lists of names")
    if len(given) < len(lists) or len({tuple(k) for k in given.values()}) > 1:
        shown = {n: (len(k) if k else 0) for n, k in lists.items()}
        raise DatasetError(f"{path}: its categories list different keypoints ({len(lists)} categories, keypoint "
                           f"counts {shown}); a keypoint data set gives every category the same 'keypoints' names "
                           f"(Detectron2's keypoint head predicts one set for all classes)")
    names = tuple(next(iter(given.values())))
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: keypoint names repeat: {list(names)}")
    return names


def keypoint_problem(ann: dict[str, Any], k: int) -> str | None:
    kps = ann.get("keypoints")
    if not isinstance(kps, list) or len(kps) != 3 * k or not all(isinstance(v, (int, float)) for v in kps):
        got = "missing" if kps is None else f"{len(kps)} values" if isinstance(kps, list) else repr(kps)
        return f"'keypoints' is {got}, not {3 * k} numbers"
    if any(v not in (0, 1, 2) for v in kps[2::3]):
        return f"visibility flags {sorted(set(kps[2::3]))}: each is 0, 1 or 2"
    labelled = sum(v > 0 for v in kps[2::3])
    if ann.get("num_keypoints") != labelled:
        return f"num_keypoints {ann.get('num_keypoints')!r} but {labelled} keypoints have v > 0 (COCOeval reads it)"
    return None


def check_flip_map(names: tuple[str, ...], flip_map: Any, where: str) -> tuple[tuple[str, str], ...]:
    """The declared left/right flip map of keypoint data, as disjoint (a, b) pairs of known names; keypoints in
    no pair map to themselves (a nose). Raises DatasetError for a missing, unknown or asymmetric map."""
    how = ("declare it in the dataset YAML file as keypoint_flip_map: [[left_eye, right_eye], ...] (every "
           "left/right pair once; [] when no keypoint has a mirror twin)")
    if flip_map is None:
        raise DatasetError(f"{where}: the data set has keypoints {list(names)} but no flip map: a horizontal flip "
                           f"must swap left and right keypoints and nothing in a COCO file says which; {how}")
    pairs = []
    if isinstance(flip_map, dict):
        flip_map = list(flip_map.items())
    if not isinstance(flip_map, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2
                                                          for p in flip_map):
        raise DatasetError(f"{where}: keypoint_flip_map {flip_map!r} is not a list of [a, b] pairs; {how}")
    seen: dict[str, int] = {}
    for i, (a, b) in enumerate(flip_map):
        unknown = [x for x in (a, b) if x not in names]
        if unknown:
            raise DatasetError(f"{where}: keypoint_flip_map pair {[a, b]} names {unknown}, not keypoints of the data "
                               f"set {list(names)}")
        if a == b:
            raise DatasetError(f"{where}: keypoint_flip_map pair {[a, b]} maps a keypoint to itself; leave it out")
        for x in (a, b):
            if x in seen:
                raise DatasetError(f"{where}: keypoint_flip_map is not symmetric: {x!r} is in pair {seen[x] + 1} and "
                                   f"pair {i + 1}; a flip swaps each keypoint with exactly one twin")
            seen[x] = i
        pairs.append((str(a), str(b)))
    return tuple(pairs)
