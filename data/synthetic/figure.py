"""The articulated figure of the keypoint layout: a stick person facing the viewer, with COCO's 17 named
keypoints, their left/right flip map and skeleton.

The figure is built in unit coordinates (about 2 units tall, y down, the figure's left on +x as for a person
facing the camera), with random joint angles, then scaled, slightly rotated and moved into the image. Its
body is a union of integer-vertex polygons (head, torso, one quad per limb segment, a small square at each
joint), drawn by the scene's model (scene.py), so its mask is exact; its keypoints lie on the limbs' centre
lines and inside the head, always inside the figure's own polygons.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# COCO's person keypoints, in COCO's order (the same names as Detectron2's builtin metadata).
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle")
# Each left keypoint with its right twin (what a horizontal flip swaps); the nose maps to itself.
FLIP_MAP: tuple[tuple[str, str], ...] = tuple(
    (n, "right_" + n[len("left_"):]) for n in KEYPOINT_NAMES if n.startswith("left_"))
# COCO's skeleton (1-based keypoint indices), as in person_keypoints_*.json.
SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9), (8, 10),
    (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7))
# COCO's per-keypoint OKS sigmas (pycocotools' defaults): the keypoint benchmark scores with these.
OKS_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
    0.089, 0.089)

_HEAD_CENTER, _HEAD_RADIUS = np.array([0.0, -0.8]), 0.17
_ARM, _LEG = (0.3, 0.28), (0.42, 0.4)          # segment lengths: upper, lower
_ARM_WIDTH, _LEG_WIDTH, _JOINT = 0.1, 0.13, 0.06


@dataclass
class Figure:
    polygons: list[np.ndarray]   # (N, 2) int32 pixel-index polygons; their union is the body
    keypoints: np.ndarray        # (17, 2) float pixel-index coordinates, in KEYPOINT_NAMES order


def _direction(angle: float) -> np.ndarray:
    """Unit vector at `angle` radians from straight down, towards +x for positive angles."""
    return np.array([np.sin(angle), np.cos(angle)])


def _limb(rng: np.random.Generator, root: np.ndarray, side: float, lengths: tuple[float, float],
          spread: tuple[float, float], bend: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Middle and end joint of a two-segment limb from `root`; side +1 is the figure's left (+x)."""
    a1 = rng.uniform(*spread)
    a2 = a1 + rng.uniform(*bend)
    mid = root + lengths[0] * _direction(side * a1)
    return mid, mid + lengths[1] * _direction(side * a2)


def pose(rng: np.random.Generator) -> np.ndarray:
    """(17, 2) keypoints of a random pose in unit coordinates."""
    kp = {"nose": _HEAD_CENTER + [0.0, 0.04], "left_eye": _HEAD_CENTER + [0.06, -0.04],
          "right_eye": _HEAD_CENTER + [-0.06, -0.04], "left_ear": _HEAD_CENTER + [0.14, 0.0],
          "right_ear": _HEAD_CENTER + [-0.14, 0.0]}
    for side, name in ((1.0, "left"), (-1.0, "right")):
        shoulder = np.array([side * 0.22, -0.55])
        hip = np.array([side * 0.13, 0.05])
        elbow, wrist = _limb(rng, shoulder, side, _ARM, (-0.2, 2.6), (-1.4, 1.4))
        knee, ankle = _limb(rng, hip, side, _LEG, (-0.15, 0.6), (-0.7, 0.3))
        kp.update({f"{name}_shoulder": shoulder, f"{name}_elbow": elbow, f"{name}_wrist": wrist,
                   f"{name}_hip": hip, f"{name}_knee": knee, f"{name}_ankle": ankle})
    return np.stack([kp[n] for n in KEYPOINT_NAMES])


def _segment(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    d = b - a
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6) * width / 2
    return np.stack([a + n, b + n, b - n, a - n])


def body(keypoints: np.ndarray) -> list[np.ndarray]:
    """Unit-coordinate polygons of the body around a pose: head, torso, limb segments, joints."""
    k = {n: keypoints[i] for i, n in enumerate(KEYPOINT_NAMES)}
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    parts = [_HEAD_CENTER + _HEAD_RADIUS * np.stack([np.cos(t), np.sin(t)], 1),
             np.stack([k["left_shoulder"], k["right_shoulder"], k["right_hip"], k["left_hip"]]),
             _segment(np.array([0.0, -0.66]), np.array([0.0, -0.5]), 0.12)]  # neck
    for name in ("left", "right"):
        for a, b, w in ((f"{name}_shoulder", f"{name}_elbow", _ARM_WIDTH),
                        (f"{name}_elbow", f"{name}_wrist", _ARM_WIDTH),
                        (f"{name}_hip", f"{name}_knee", _LEG_WIDTH), (f"{name}_knee", f"{name}_ankle", _LEG_WIDTH)):
            parts.append(_segment(k[a], k[b], w))
        for j in ("elbow", "wrist", "knee", "ankle"):
            c = k[f"{name}_{j}"]
            parts.append(c + _JOINT * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]))
    return parts


def place_figure(rng: np.random.Generator, center: tuple[float, float], height: float) -> Figure:
    """A random figure `height` px tall (about), rotated by up to 0.3 rad, centred at `center` (px)."""
    kp = pose(rng)
    angle = rng.uniform(-0.3, 0.3)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])
    scale = height / 2.0

    def to_image(pts: np.ndarray) -> np.ndarray:
        return pts * scale @ rot + np.asarray(center)

    polygons = []
    for part in body(kp):
        pts = np.rint(to_image(part)).astype(np.int32)
        keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
        if keep.sum() >= 3:
            polygons.append(pts[keep])
    return Figure(polygons=polygons, keypoints=to_image(kp))
