"""One synthetic scene: a cluttered textured background with occluding, textured shape instances.

Drawing model (the same one Cityscapes' own tools use): integer-vertex polygons are rasterised with
PIL's ImageDraw.polygon in z-order, each one overwriting what lies under it, into an id map. Every
instance's mask is `id_map == its id`, and the image is painted from that same id map, so masks,
boxes and pixels agree exactly. The continuous visible outline (for COCO polygons) is the polygon's
pixel footprint (vertices + 0.5, grown by 0.5 px) minus everything drawn above it, clipped to the image.

Occlusion rules: every instance keeps at least `min_visible_frac` of its area and `min_visible_px`
pixels visible, and no instance's visible part has a hole (COCO polygons cannot express holes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from . import shapes

SceneKind = Literal["objects", "main", "street"]
_MAX_ATTEMPTS = 40


@dataclass
class Instance:
    category: int                   # index into shapes.CATEGORIES
    polygon: np.ndarray             # (N, 2) int32 full outline in pixel-index coordinates
    crowd: bool                     # member of a crowd cluster (annotated as a group, not one by one)
    mask: np.ndarray = field(repr=False, default=None)   # (H, W) bool visible pixels (exact)
    visible: BaseGeometry = field(repr=False, default=None)  # visible outline, continuous coords
    truncated: bool = False         # cut by the image border

    def box(self) -> tuple[int, int, int, int]:
        """Tight box of the visible pixels: x0, y0, x1, y1 in continuous coordinates (x1, y1 exclusive)."""
        ys = np.flatnonzero(self.mask.any(axis=1))
        xs = np.flatnonzero(self.mask.any(axis=0))
        return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


@dataclass
class StuffRegion:
    label: str                      # Cityscapes label name (street scenes only)
    polygon: np.ndarray             # (N, 2) int32


@dataclass(frozen=True)
class Vocabulary:
    """Categories made of a shape and a surface pattern, for layouts with more categories than shapes (LVIS):
    category k is drawn as shapes.CATEGORIES[shape[k]] painted with PATTERNS[pattern[k]]. `population` lists
    category indices, each as often as it should be drawn (a long-tailed count: frequent ones many times)."""
    shape: tuple[int, ...]
    pattern: tuple[int, ...]
    population: tuple[int, ...]


@dataclass
class Scene:
    image: np.ndarray               # (H, W, 3) uint8 RGB
    instances: list[Instance]       # in drawing order (bottom first)
    label: int | None = None        # main object's category ("main" scenes)
    stuff: list[StuffRegion] = field(default_factory=list)  # drawn before the instances
    stuff_map: np.ndarray | None = None  # (H, W) uint8 index into `stuff` (street scenes)


def footprint(pts: np.ndarray) -> BaseGeometry:
    """Continuous-coordinate area that PIL fills for an integer polygon."""
    return Polygon(pts + 0.5).buffer(0.5, join_style="mitre", mitre_limit=2.0)


# ---------------------------------------------------------------------------------------------
# textures

def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour (float32, 0-255) with varied hue, saturation and brightness."""
    h, s, v = rng.random(), rng.uniform(0.2, 1.0), rng.uniform(0.25, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    rgb = v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)
    return (rgb * 255).astype(np.float32)


# Surface patterns, by index: the first four are drawn at random (solid with probability solid_prob); with the
# preset's category_patterns, category i of the preset is painted with PATTERNS[i % 6].
PATTERNS = ("solid", "stripes", "checks", "blotches", "dots", "rings")


def texture(rng: np.random.Generator, h: int, w: int, solid_prob: float = 0.25,
            pattern: int | None = None) -> np.ndarray:
    """(3, h, w) float32 texture (channels first: numpy's inner loops then run along rows), with shading:
    one colour with probability solid_prob, else stripes, checks or blotches of two colours. `pattern` (an
    index into PATTERNS) fixes the kind instead; colours, period, angle and phase stay random."""
    c1, c2 = _colour(rng), _colour(rng)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    kind = pattern if pattern is not None else (0 if rng.random() < solid_prob else int(rng.integers(1, 4)))
    if kind == 0:
        m = np.zeros((1, 1), np.float32)
    elif kind == 1:
        a, period = rng.uniform(0, np.pi), rng.uniform(3, 10)
        m = 0.5 + 0.5 * np.sin((x * np.cos(a) + y * np.sin(a)) * (2 * np.pi / period))
    elif kind == 2:
        p = int(rng.integers(3, 9))
        m = (((np.arange(w) // p)[None, :] + (np.arange(h) // p)[:, None]) & 1).astype(np.float32)
    elif kind == 3:
        small = rng.random((max(2, h // 6), max(2, w // 6))).astype(np.float32)
        m = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                       np.float32) / 255
    elif kind == 4:
        p = rng.uniform(5, 10)
        ox, oy = rng.uniform(0, p, 2)
        dx, dy = (x + ox) % p - p / 2, (y + oy) % p - p / 2
        m = (dx * dx + dy * dy < (0.3 * p) ** 2).astype(np.float32)
    else:
        period, cx, cy = rng.uniform(4, 9), rng.uniform(0, w), rng.uniform(0, h)
        m = 0.5 + 0.5 * np.sin(np.sqrt((x - cx) ** 2 + (y - cy) ** 2) * (2 * np.pi / period))
    a, k = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.35) / max(h, w, 1)
    shade = 1 + (x * (k * np.cos(a)) + y * (k * np.sin(a)))         # (h, w) linear shading
    # (c1 m + c2 (1 - m)) shade  ==  (m shade) (c1 - c2) + shade c2
    if kind == 0:
        tex = c2[:, None, None] * shade[None]
    else:
        tex = (m * shade)[None] * (c1 - c2)[:, None, None] + shade[None] * c2[:, None, None]
    return np.broadcast_to(tex, (3, h, w))


def _smooth_field(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    grid = (rng.random((int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)) * 255).astype(np.uint8)
    return Image.fromarray(grid).resize((width, height), Image.BICUBIC)


def _clutter(rng: np.random.Generator, img: Image.Image, count: int) -> None:
    """Unlabelled distractors: strokes, arcs and blobs that are none of the categories."""
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(count):
        colour = tuple(int(c) for c in _colour(rng))
        x0, y0 = rng.uniform(-0.1, 1.0) * w, rng.uniform(-0.1, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * w, y0 + rng.uniform(0.05, 0.5) * h
        kind = rng.integers(3)
        if kind == 0:
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 4)))
        elif kind == 1:
            draw.arc([x0, y0, x1, y1], float(rng.uniform(0, 360)), float(rng.uniform(0, 360)),
                     fill=colour, width=int(rng.integers(1, 3)))
        else:
            pts = np.stack([rng.uniform(x0, x1, 5), rng.uniform(y0, y1, 5)], 1)
            draw.polygon([tuple(p) for p in pts], fill=colour)


# ---------------------------------------------------------------------------------------------
# placement

@dataclass
class _Item:
    members: list[Instance]
    full: BaseGeometry              # footprint, clipped to the image
    visible: BaseGeometry
    crowd: bool


def _visible_ok(item: _Item, params: dict[str, Any], min_px: float) -> bool:
    vis = item.visible
    if vis.area < max(params["min_visible_frac"] * item.full.area, 1.25 * min_px):
        return False
    if item.crowd:
        return True
    parts = getattr(vis, "geoms", [vis])
    return all(len(p.interiors) == 0 for p in parts if isinstance(p, Polygon))


def _sample_instance(rng: np.random.Generator, categories: list[int], radius_range: tuple[float, float],
                     center_box: tuple[float, float, float, float], frame: BaseGeometry,
                     category: int | None = None, shape_of: tuple[int, ...] | None = None
                     ) -> tuple[Instance, BaseGeometry] | None:
    for _ in range(8):
        cat = categories[int(rng.integers(len(categories)))] if category is None else category
        cx, cy = rng.uniform(center_box[0], center_box[2]), rng.uniform(center_box[1], center_box[3])
        shape = cat if shape_of is None else shape_of[cat]
        pts = shapes.place(shape, (cx, cy), rng.uniform(*radius_range), rng.uniform(0, 2 * np.pi),
                           float(np.exp(rng.uniform(-0.3, 0.3))))
        if not shapes.is_valid_outline(pts):
            continue
        fp = footprint(pts)
        clipped = fp.intersection(frame)
        if clipped.is_empty:
            continue
        inst = Instance(category=cat, polygon=pts, crowd=False,
                        truncated=bool(clipped.area < fp.area - 1e-6))
        return inst, clipped
    return None


def _place_items(rng: np.random.Generator, params: dict[str, Any], width: int, height: int,
                 categories: list[int], min_px: float, ground: float, top: _Item | None,
                 shape_of: tuple[int, ...] | None = None) -> list[_Item]:
    """Crowd cluster (maybe) at the bottom, then regular instances; `top` stays above all of them."""
    frame = box(0, 0, width, height)
    side = min(width, height)
    items: list[_Item] = []
    above = top.full if top is not None else None
    center_box = (0, ground * height, width, height)

    def add(item: _Item) -> bool:
        if above is not None:
            item.visible = item.visible.difference(above)
        if not _visible_ok(item, params, min_px):
            return False
        updated = [it.visible.difference(item.full) for it in items]
        olds = [it.visible for it in items]
        for it, vis in zip(items, updated):
            it.visible = vis
        if not all(_visible_ok(it, params, min_px) for it in items):
            for it, vis in zip(items, olds):
                it.visible = vis
            return False
        items.append(item)
        return True

    if rng.random() < params["crowd_prob"]:
        lo, hi = params["crowd_members"]
        cat = categories[int(rng.integers(len(categories)))]
        cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(max(ground, 0.15), 0.85) * height
        spread = 0.12 * side
        members, geoms = [], []
        for _ in range(int(rng.integers(lo, hi + 1))):
            r = rng.uniform(0.04, 0.07) * side
            s = _sample_instance(rng, categories, (r, r), (cx - spread, cy - spread, cx + spread, cy + spread),
                                 frame, category=cat, shape_of=shape_of)
            if s is not None:
                s[0].crowd = True
                members.append(s[0])
                geoms.append(s[1])
        if members:
            union = geoms[0].union_all(geoms[1:]) if hasattr(geoms[0], "union_all") else _union(geoms)
            add(_Item(members, union, union, crowd=True))

    lo, hi = params["instances"]
    want = int(rng.integers(lo, hi + 1))
    r_lo, r_hi = params["object_scale"]
    if top is not None:  # clutter objects stay clearly smaller than the main object
        r_hi = min(r_hi, 0.7 * params["main_object_scale"][0])
    placed, attempts = 0, 0
    while placed < want and attempts < _MAX_ATTEMPTS:
        attempts += 1
        s = _sample_instance(rng, categories, (r_lo * side, r_hi * side), center_box, frame, shape_of=shape_of)
        if s is not None and add(_Item([s[0]], s[1], s[1], crowd=False)):
            placed += 1
    return items


def _union(geoms: list[BaseGeometry]) -> BaseGeometry:
    from shapely.ops import unary_union
    return unary_union(geoms)


# ---------------------------------------------------------------------------------------------
# street background (Cityscapes layout)

def _street_stuff(rng: np.random.Generator, width: int, height: int) -> list[StuffRegion]:
    """Sky, buildings, vegetation, road, sidewalks, poles and signs, bottom first; covers the image."""
    W, H = width - 1, height - 1
    horizon = int(rng.uniform(0.35, 0.5) * H)
    regions = [StuffRegion("sky", np.array([[0, 0], [W, 0], [W, H], [0, H]], np.int32))]
    x = 0
    while x < W:
        bw = int(rng.uniform(0.08, 0.25) * W) + 2
        top = int(rng.uniform(0.05, 0.6) * horizon)
        label = "building" if rng.random() < 0.75 else "vegetation"
        regions.append(StuffRegion(label, np.array([[x, top], [min(x + bw, W), top], [min(x + bw, W), horizon + 2],
                                                     [x, horizon + 2]], np.int32)))
        x += bw
    regions.append(StuffRegion("sidewalk", np.array([[0, horizon], [W, horizon], [W, H], [0, H]], np.int32)))
    vx = rng.uniform(0.35, 0.65) * W
    regions.append(StuffRegion("road", np.array([[int(vx - 0.05 * W), horizon], [int(vx + 0.05 * W), horizon],
                                                 [int(W + 0.3 * W), H], [int(-0.3 * W), H]], np.int32)))
    for _ in range(int(rng.integers(1, 4))):
        px = int(rng.uniform(0, W))
        ptop = int(rng.uniform(0.1, 0.4) * H)
        regions.append(StuffRegion("pole", np.array([[px, ptop], [px + 1, ptop], [px + 1, horizon + 4],
                                                     [px, horizon + 4]], np.int32)))
        if rng.random() < 0.6:
            s = int(rng.integers(3, 6))
            label = "traffic sign" if rng.random() < 0.6 else "traffic light"
            regions.append(StuffRegion(label, np.array([[px - s, ptop - s], [px + s, ptop - s], [px + s, ptop + s],
                                                        [px - s, ptop + s]], np.int32)))
    return regions


# ---------------------------------------------------------------------------------------------

def generate_scene(rng: np.random.Generator, width: int, height: int, params: dict[str, Any],
                   kind: SceneKind = "objects", label: int | None = None,
                   vocabulary: Vocabulary | None = None) -> Scene:
    """Draw one scene.

    kind: "objects" (VOC / COCO), "main" (ImageFolder: one large central object of category `label`
    on top of smaller clutter instances), "street" (Cityscapes: street-like stuff regions, objects
    from the first 8 categories standing on the lower half). Objects and main scenes draw from
    params["categories"]; categories and `label` are indices into shapes.CATEGORIES. With a `vocabulary`
    ("objects" scenes only), instances draw their category from its population instead and
    Instance.category is an index into the vocabulary.

    The steps draw from `rng` in a fixed order (main object, placement, background, instances, noise): the
    same seed gives the same scene.
    """
    if vocabulary is not None and kind != "objects":
        raise ValueError("a vocabulary is for 'objects' scenes")
    categories = _scene_categories(kind, params, vocabulary)
    min_px = params["min_visible_px"] if kind != "street" else max(params["min_visible_px"], 120)
    top = _main_object(rng, params, width, height, categories, label) if kind == "main" else None
    items = _place_items(rng, params, width, height, categories, min_px,
                         ground=0.45 if kind == "street" else 0.0, top=top,
                         shape_of=vocabulary.shape if vocabulary is not None else None)
    if top is not None:
        items.append(top)
    if kind == "street":
        img, stuff, stuff_map = _street_background(rng, params, width, height)
    else:
        img, stuff, stuff_map = _object_background(rng, params, width, height), [], None
    instances = _draw_instances(rng, img, items, params, categories, vocabulary)
    img += rng.standard_normal((1, height, width), dtype=np.float32) * np.float32(rng.uniform(2, 8))  # sensor noise
    image = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0))
    return Scene(image=image, instances=instances, label=label, stuff=stuff, stuff_map=stuff_map)


def _scene_categories(kind: SceneKind, params: dict[str, Any], vocabulary: Vocabulary | None) -> list[int]:
    """The categories instances draw from: Cityscapes' things (street), the vocabulary's population, or the
    preset's categories (indices into shapes.CATEGORIES)."""
    if kind == "street":
        return list(range(len(shapes.CITYSCAPES_THING_CLASSES)))
    if vocabulary is not None:
        return list(vocabulary.population)
    return shapes.category_ids(params["categories"])


def _main_object(rng: np.random.Generator, params: dict[str, Any], width: int, height: int,
                 categories: list[int], label: int | None) -> _Item:
    """The main scene's large object of category `label`, centred near the middle (drawn on top)."""
    if label is None:
        raise ValueError("a 'main' scene needs the main object's category (label)")
    r, side = params["main_object_scale"], min(width, height)
    c = (0.4 * width, 0.4 * height, 0.6 * width, 0.6 * height)
    s = None
    while s is None:
        s = _sample_instance(rng, categories, (r[0] * side, r[1] * side), c, box(0, 0, width, height),
                             category=label)
    return _Item([s[0]], s[1], s[1], crowd=False)


def _street_background(rng: np.random.Generator, params: dict[str, Any], width: int,
                       height: int) -> tuple[np.ndarray, list[StuffRegion], np.ndarray]:
    """(3, H, W) float32 street background painted region by region, its stuff regions and their index map."""
    stuff = _street_stuff(rng, width, height)
    smap_img = Image.new("L", (width, height), 0)
    sdraw = ImageDraw.Draw(smap_img)
    for i, region in enumerate(stuff):
        sdraw.polygon([tuple(p) for p in region.polygon.tolist()], fill=i)
    stuff_map = np.asarray(smap_img)
    img = np.empty((3, height, width), np.float32)
    for i, region in enumerate(stuff):
        _paint(rng, img, stuff_map, i, region.polygon, params["solid_prob"])
    return img, stuff, stuff_map


def _object_background(rng: np.random.Generator, params: dict[str, Any], width: int, height: int) -> np.ndarray:
    """(3, H, W) float32 background of objects / main scenes: a smooth field with clutter, mixed with a texture."""
    canvas = _smooth_field(rng, width, height)
    lo, hi = params["clutter"]
    _clutter(rng, canvas, int(rng.integers(lo, hi + 1)))
    field_chw = np.asarray(canvas).transpose(2, 0, 1)
    return 0.65 * field_chw.astype(np.float32) + 0.35 * texture(rng, height, width, params["solid_prob"])


def _draw_instances(rng: np.random.Generator, img: np.ndarray, items: list[_Item], params: dict[str, Any],
                    categories: list[int], vocabulary: Vocabulary | None) -> list[Instance]:
    """Rasterise the items' instances bottom first into an id map, paint them into `img` (in place) and set each
    one's exact mask and visible outline; returns the instances left with a visible pixel."""
    height, width = img.shape[1:]
    frame = box(0, 0, width, height)
    id_img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(id_img)
    instances = [inst for item in items for inst in item.members]
    if len(instances) > 254:
        raise ValueError("too many instances for an 8-bit id map")
    for k, inst in enumerate(instances, start=1):
        draw.polygon([tuple(p) for p in inst.polygon.tolist()], fill=k)
    id_map = np.asarray(id_img)
    for k, inst in enumerate(instances, start=1):
        if vocabulary is not None:
            pattern = vocabulary.pattern[inst.category]
        else:
            pattern = categories.index(inst.category) % len(PATTERNS) if params["category_patterns"] else None
        _paint(rng, img, id_map, k, inst.polygon, params["solid_prob"], pattern)
        inst.mask = id_map == k
    for item in items:
        for inst in item.members:
            inst.visible = item.visible if not item.crowd else footprint(inst.polygon).intersection(frame)
    # a crowd member may end up fully hidden; it then is no instance at all
    return [inst for inst in instances if inst.mask.any()]


def _paint(rng: np.random.Generator, img: np.ndarray, id_map: np.ndarray, k: int, pts: np.ndarray,
           solid_prob: float, pattern: int | None = None) -> None:
    h, w = id_map.shape
    x0, y0 = max(int(pts[:, 0].min()), 0), max(int(pts[:, 1].min()), 0)
    x1, y1 = min(int(pts[:, 0].max()) + 1, w), min(int(pts[:, 1].max()) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    sel = id_map[y0:y1, x0:x1] == k
    region = img[:, y0:y1, x0:x1]
    region[:, sel] = texture(rng, y1 - y0, x1 - x0, solid_prob, pattern)[:, sel]
