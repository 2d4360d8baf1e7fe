"""The object categories: each is an outline in unit coordinates (radius about 1, centred at 0).

A category is defined by its shape; colour, texture, scale, aspect, rotation and position vary per
instance, so a detector has to learn the shape. Presets with `category_patterns` also give each
category its own surface pattern (scene.PATTERNS): shape and surface then both tell it.
"""
from __future__ import annotations

import numpy as np
from shapely.geometry import Point, Polygon


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    t = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    t = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _crescent() -> np.ndarray:
    shape = Point(0, 0).buffer(1.0, 16).difference(Point(0.55, -0.1).buffer(0.8, 16))
    return np.asarray(shape.exterior.coords)[:-1]


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, -y - 2.5], axis=1) / 16.5


_OUTLINES: dict[str, np.ndarray] = {
    "disc": _regular(24),
    "square": np.array([[-0.75, -0.75], [0.75, -0.75], [0.75, 0.75], [-0.75, 0.75]]),
    "triangle": _regular(3, -np.pi / 2),
    "star": _star(),
    "hexagon": _regular(6),
    "cross": np.array([[-0.3, -1], [0.3, -1], [0.3, -0.3], [1, -0.3], [1, 0.3], [0.3, 0.3], [0.3, 1],
                       [-0.3, 1], [-0.3, 0.3], [-1, 0.3], [-1, -0.3], [-0.3, -0.3]]),
    "arrow": np.array([[-1, -0.3], [0.2, -0.3], [0.2, -0.75], [1, 0], [0.2, 0.75], [0.2, 0.3], [-1, 0.3]]),
    "crescent": _crescent(),
    "heart": _heart(),
    "ell": np.array([[-0.8, -1], [-0.25, -1], [-0.25, 0.45], [0.8, 0.45], [0.8, 1], [-0.8, 1]]),
}

CATEGORIES: list[str] = list(_OUTLINES)

# The first eight categories stand for Cityscapes' eight instance classes in the Cityscapes layout.
CITYSCAPES_THING_CLASSES = ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
CITYSCAPES_CATEGORY_TO_CLASS = dict(zip(CATEGORIES[:8], CITYSCAPES_THING_CLASSES))


def category_ids(names: list[str]) -> list[int]:
    """Indices into CATEGORIES of a preset's category names (its `categories` subset), in its order."""
    unknown = [n for n in names if n not in _OUTLINES]
    if unknown or len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"synthetic categories {names}: give at least 2 distinct names from {CATEGORIES}")
    return [CATEGORIES.index(n) for n in names]


def outline(category: int) -> np.ndarray:
    """Unit outline of a category: (N, 2) float array of x, y vertices, counter-clockwise or not."""
    return _OUTLINES[CATEGORIES[category]]


def place(category: int, center: tuple[float, float], radius: float, angle: float,
          aspect: float) -> np.ndarray:
    """Outline scaled to `radius` px, stretched by `aspect` (x/y), rotated by `angle` (rad) and moved
    to `center`; vertices rounded to integer pixel coordinates, (N, 2) int32."""
    pts = outline(category) * radius * np.array([np.sqrt(aspect), 1 / np.sqrt(aspect)])
    c, s = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]]) + np.asarray(center)
    pts = np.rint(pts).astype(np.int32)
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)  # drop repeated vertices after rounding
    return pts[keep]


def is_valid_outline(pts: np.ndarray) -> bool:
    return len(pts) >= 3 and Polygon(pts).is_valid
