"""Users' own downstream data sets, in COCO or PASCAL VOC format: declared by name, checked, registered.

    train = parse_source("coco:annotations/train.json:images")     # or "voc:VOC_ROOT:SPLIT"
    ds = inspect_dataset("widgets", train, parse_source("coco:annotations/val.json:images"))
    register_user_dataset(ds)            # Detectron2 names widgets_train, widgets_test

`inspect_dataset` reads every annotation file once and refuses, with an error that names the problem
(DatasetError), anything Detectron2 would crash on or score wrongly: a file that is not COCO, images
missing from the image folder, boxes outside the image or with zero area, VOC classes that differ
between train and test, a split without an annotated image, a name that clashes with Detectron2's
builtin data sets; for COCO keypoint files (categories with 'keypoints'), keypoint lists of the wrong length,
counts or names that differ between categories or between the files, and a flip map that is missing, names
an unknown keypoint or is not a set of disjoint pairs. Classes come from the data (COCO categories in id
order; the sorted VOC object names); non-contiguous COCO category ids are mapped to 0..K-1 in id order, as Detectron2's
load_coco_json does. Nothing is written here; declarations are stored by data/declarations.py.
"""
from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mocobench.common.hashing import canonical_hash, sha256_file, sha256_text
from mocobench.data.errors import DatasetError
from mocobench.data.keypoints import check_flip_map, keypoint_names, keypoint_problem

FORMATS = ("coco", "voc")
SPLITS = ("train", "test")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
VOC_YEAR = 2007    # Detectron2's VOC evaluator: 2007 = the 11-point AP of the paper's VOC07 test
SHOW = 5           # offending items named in an error message
BOX_TOLERANCE = 1.0  # px a box may reach past the image border (rounding in exporters)
ALL_XML = ""       # voc:VOC_ROOT without a split: every XML of Annotations/ (only to hold a test split out of)


@dataclass(frozen=True)
class Source:
    """One split of a user's data set: COCO (annotation json + image folder) or VOC (root + split name)."""
    format: str
    path: str      # COCO: the annotation json; VOC: the folder holding Annotations/, JPEGImages/, ImageSets/
    images: str    # COCO: the image folder; VOC: the split (ImageSets/Main/<split>.txt), ALL_XML for every XML

    def text(self) -> str:
        return f"{self.format}:{self.path}" + (f":{self.images}" if self.images != ALL_XML else "")


@dataclass(frozen=True)
class UserDataset:
    """A checked user data set: what the runner registers and what its records carry."""
    name: str
    format: str
    train: Source
    test: Source
    classes: tuple[str, ...]
    category_ids: tuple[int, ...]   # COCO category ids in class order (VOC: 1..K)
    has_masks: bool                 # every instance of both splits has a segmentation
    train_images: int               # annotated train images (what Detectron2 trains on; sets the epochs)
    test_images: int
    annotations_sha256: str         # hash of every annotation file of both splits
    holdout: dict[str, Any] | None = None  # test held out of one source: {source, fraction, seed} (data/holdout.py)
    keypoint_names: tuple[str, ...] = ()   # COCO keypoint data: the categories' 'keypoints' (else empty)
    keypoint_flip_map: tuple[tuple[str, str], ...] = ()  # left/right pairs a horizontal flip swaps (declared)

    def dataset_name(self, split: str) -> str:
        return f"{self.name}_{split}"

    def record_field(self) -> dict[str, Any]:
        """What a record's protocol says about the data: two versions never share a table."""
        return {"name": self.name, "format": self.format, "annotations_sha256": self.annotations_sha256,
                "classes": list(self.classes), "train_images": self.train_images, "test_images": self.test_images,
                "masks": self.has_masks, **({"holdout": self.holdout} if self.holdout else {}),
                **({"keypoints": list(self.keypoint_names),
                    "keypoint_flip_map": [list(p) for p in self.keypoint_flip_map]} if self.keypoint_names else {})}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"], d["category_ids"] = list(self.classes), list(self.category_ids)
        d["keypoint_names"] = list(self.keypoint_names)
        d["keypoint_flip_map"] = [list(p) for p in self.keypoint_flip_map]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UserDataset:
        return cls(**{**d, "train": Source(**d["train"]), "test": Source(**d["test"]),
                      "classes": tuple(d["classes"]), "category_ids": tuple(d["category_ids"]),
                      "keypoint_names": tuple(d.get("keypoint_names") or ()),
                      "keypoint_flip_map": tuple(tuple(p) for p in d.get("keypoint_flip_map") or ())})


def parse_source(text: str, base: str | os.PathLike | None = None) -> Source:
    """'coco:ANNOTATIONS.json:IMAGE_DIR', 'voc:VOC_ROOT:SPLIT' or 'voc:VOC_ROOT' (every XML, to hold a test
    split out of) -> Source with absolute paths (relative ones are taken from `base`, default the working
    directory)."""
    parts = str(text).split(":")
    if parts[0] == "voc" and len(parts) == 2:
        parts.append(ALL_XML)
    if len(parts) != 3 or parts[0] not in FORMATS or not parts[1] or (not parts[2] and parts[0] == "coco"):
        raise DatasetError(f"{text!r}: a split is given as coco:ANNOTATIONS.json:IMAGE_DIR or voc:VOC_ROOT:SPLIT "
                           f"(e.g. coco:data/train.json:data/images, voc:data/VOC:trainval)")
    fmt, path, images = parts
    root = Path(base) if base is not None else Path.cwd()
    path = str((root / path).resolve())
    if fmt == "coco":
        images = str((root / images).resolve())
    return Source(fmt, path, images)


def _listing(items: list[str]) -> str:
    return ", ".join(items[:SHOW]) + (f", ... ({len(items)} in all)" if len(items) > SHOW else "")


# ---- COCO -------------------------------------------------------------------------------------

def _read_coco(src: Source, text: str | None = None) -> dict[str, Any]:
    p = Path(src.path)
    if text is None and not p.is_file():
        raise DatasetError(f"{src.path}: no such annotation file")
    if not Path(src.images).is_dir():
        raise DatasetError(f"{src.images}: no such image folder (coco:ANNOTATIONS.json:IMAGE_DIR)")
    try:
        data = json.loads(p.read_text() if text is None else text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{src.path} is not a COCO annotation file: not valid JSON ({e})") from None
    what = "a COCO instances file is a JSON object with lists 'images', 'annotations' and 'categories'"
    if not isinstance(data, dict):
        raise DatasetError(f"{src.path} is not a COCO annotation file: {what}")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DatasetError(f"{src.path} is not a COCO annotation file: it lacks {missing} ({what})")
    for key, fields in (("images", ("id", "file_name", "width", "height")), ("categories", ("id", "name")),
                        ("annotations", ("id", "image_id", "category_id", "bbox"))):
        bad = [i for i, e in enumerate(data[key]) if not isinstance(e, dict) or any(f not in e for f in fields)]
        if bad:
            raise DatasetError(f"{src.path} is not a COCO annotation file: {len(bad)} of its {key} lack one of "
                               f"{list(fields)} (first: {key}[{bad[0]}])")
    return data


def _check_coco(src: Source, split: str, staged: dict[str, str], linked: dict[str, str]) -> dict[str, Any]:
    """`staged`: the text of annotation files not written yet (absolute path -> text)."""
    text = staged.get(src.path)
    data = _read_coco(src, text)
    images = {im["id"]: im for im in data["images"]}
    cats = {c["id"]: c["name"] for c in data["categories"]}
    if not cats:
        raise DatasetError(f"{src.path}: no categories")
    missing = sorted(im["file_name"] for im in data["images"] if not (Path(src.images) / im["file_name"]).is_file())
    if missing:
        raise DatasetError(f"{len(missing)} of the {len(images)} images listed in {src.path} are missing from "
                           f"{src.images}: {_listing(missing)}. Point IMAGE_DIR at the folder their file_name "
                           f"is relative to")
    keypoints = keypoint_names(src.path, data["categories"])
    bad_kp: list[str] = []
    bad_ref, bad_box, masks, annotated = [], [], True, set()
    for a in data["annotations"]:
        im = images.get(a["image_id"])
        if im is None or a["category_id"] not in cats:
            bad_ref.append(f"annotation {a['id']} (image_id {a['image_id']}, category_id {a['category_id']})")
            continue
        box = a["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            bad_box.append(f"annotation {a['id']} in {im['file_name']}: bbox {box!r} is not [x, y, w, h]")
            continue
        x, y, w, h = box
        if w <= 0 or h <= 0:
            bad_box.append(f"annotation {a['id']} in {im['file_name']}: bbox {box} has zero area")
        elif x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > im["width"] + BOX_TOLERANCE \
                or y + h > im["height"] + BOX_TOLERANCE:
            bad_box.append(f"annotation {a['id']} in {im['file_name']}: bbox {box} lies outside the "
                           f"{im['width']}x{im['height']} image")
        seg = a.get("segmentation")
        masks = masks and bool(seg)
        if keypoints and not a.get("iscrowd", 0):
            why = keypoint_problem(a, len(keypoints))
            if why:
                bad_kp.append(f"annotation {a['id']} in {im['file_name']}: {why}")
        if not a.get("iscrowd", 0):
            annotated.add(a["image_id"])
    if bad_ref:
        raise DatasetError(f"{src.path}: {len(bad_ref)} annotations name an image or category that is not in the "
                           f"file: {_listing(bad_ref)}")
    if bad_box:
        raise DatasetError(f"{src.path}: {len(bad_box)} boxes (COCO [x, y, width, height] in pixels) lie outside "
                           f"their image or have zero area: {_listing(bad_box)}. Fix or drop these annotations")
    if bad_kp:
        raise DatasetError(f"{src.path}: {len(bad_kp)} annotations have keypoints that do not fit its "
                           f"{len(keypoints)} keypoint names (COCO 'keypoints' is [x1, y1, v1, ...], 3 numbers per "
                           f"name with visibility v 0, 1 or 2, and 'num_keypoints' counts v > 0): {_listing(bad_kp)}")
    if not annotated:
        raise DatasetError(f"the {split} split {src.path} has no annotated image ({len(images)} images, "
                           f"{len(data['annotations'])} annotations): nothing to train or evaluate on")
    ids = sorted(cats)  # Detectron2's load_coco_json: classes in id order, ids mapped to 0..K-1
    return {"classes": [cats[i] for i in ids], "category_ids": ids, "masks": masks, "annotated": len(annotated),
            "keypoints": keypoints,
            "files": {Path(src.path).name: sha256_file(src.path) if text is None else sha256_text(text)}}


# ---- VOC --------------------------------------------------------------------------------------

def _int(obj, tag: str, where: str) -> int:
    node = obj.find(tag)
    try:
        return int(node.text)
    except (AttributeError, TypeError, ValueError):
        raise DatasetError(f"{where}: <{tag}> is missing or not an integer "
                           f"({getattr(node, 'text', None)!r}); VOC coordinates and sizes are integer pixels") from None


def _check_voc(src: Source, split: str, staged: dict[str, str], linked: dict[str, str]) -> dict[str, Any]:
    """`staged`: split lists not written yet (absolute path -> text); `linked`: folders of the root that
    will be links (absolute path -> target)."""
    ids, ann, listing, text = _voc_split(src, staged, linked)
    classes: dict[str, list[str]] = {}
    bad_box, annotated, files = [], 0, {}
    for i in ids:
        xml = ann / f"{i}.xml"
        files[f"Annotations/{i}.xml"] = sha256_file(xml)
        names, bad = _read_voc_xml(xml)
        annotated += bool(names)
        for name in names:
            classes.setdefault(name, []).append(xml.name)
        bad_box += bad
    if bad_box:
        raise DatasetError(f"voc:{src.path}:{src.images}: {len(bad_box)} boxes (xmin, ymin, xmax, ymax; 1-based "
                           f"pixels) lie outside their image or have zero area: {_listing(bad_box)}")
    if not annotated:
        raise DatasetError(f"the {split} split voc:{src.path}:{src.images} has no annotated image "
                           f"({len(ids)} images, no <object>): nothing to train or evaluate on")
    files[f"ImageSets/Main/{src.images}.txt"] = sha256_file(listing) if text is None else sha256_text(text)
    return {"classes": sorted(classes), "class_files": classes, "masks": False, "annotated": annotated,
            "files": files}


def _voc_split(src: Source, staged: dict[str, str],
               linked: dict[str, str]) -> tuple[list[str], Path, Path, str | None]:
    """The split's image ids, once the root's folders, its split list and every id's XML and JPEG are found:
    (ids, Annotations folder, split list path, the staged text of the list or None)."""
    if src.images == ALL_XML:
        raise DatasetError(f"voc:{src.path} (no split: every XML) only goes with a held-out test split "
                           f"(--test holdout:0.2); otherwise give voc:VOC_ROOT:SPLIT")
    root = Path(src.path)
    ann, jpg = (Path(linked.get(str(root / d), root / d)) for d in ("Annotations", "JPEGImages"))
    listing = root / "ImageSets" / "Main" / f"{src.images}.txt"
    text = staged.get(str(listing))
    for need in (ann, jpg) + ((listing,) if text is None else ()):
        if not need.exists():
            raise DatasetError(f"voc:{src.path}:{src.images}: {need} does not exist (a VOC root holds "
                               f"Annotations/<id>.xml, JPEGImages/<id>.jpg and ImageSets/Main/<split>.txt)")
    ids = (listing.read_text() if text is None else text).split()
    if len(ids) < 2:
        raise DatasetError(f"{listing} lists {len(ids)} image(s); a split needs at least 2")
    no_xml = [i for i in ids if not (ann / f"{i}.xml").is_file()]
    if no_xml:
        raise DatasetError(f"{len(no_xml)} of the {len(ids)} images of {listing} have no annotation file in "
                           f"{ann}: {_listing([f'{i}.xml' for i in no_xml])}")
    no_jpg = [f"{i}.jpg" for i in ids if not (jpg / f"{i}.jpg").is_file()]
    if no_jpg:
        raise DatasetError(f"{len(no_jpg)} of the {len(ids)} images of {listing} are missing from "
                           f"{jpg}: {_listing(no_jpg)}")
    return ids, ann, listing, text


def _read_voc_xml(xml: Path) -> tuple[list[str], list[str]]:
    """One VOC annotation file: its objects' class names, and its boxes that have zero area or lie outside the
    image (described for the error). Raises DatasetError for what Detectron2's VOC loader and evaluator need."""
    try:
        tree = ET.parse(xml)
    except ET.ParseError as e:
        raise DatasetError(f"{xml} is not a VOC annotation file: {e}") from None
    size = tree.find("size")
    if size is None:
        raise DatasetError(f"{xml}: no <size> (VOC XML has <size><width>, <height>)")
    width, height = _int(size, "width", str(xml)), _int(size, "height", str(xml))
    names, bad_box = [], []
    for k, obj in enumerate(tree.findall("object")):
        where = f"{xml} object {k}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DatasetError(f"{where}: no <name>")
        for tag in ("pose", "truncated", "difficult"):  # read by Detectron2's VOC evaluator
            if obj.find(tag) is None:
                raise DatasetError(f"{where}: no <{tag}> (Detectron2's VOC evaluator reads pose, truncated "
                                   f"and difficult of every object)")
        names.append(name)
        box = obj.find("bndbox")
        if box is None:
            raise DatasetError(f"{where}: no <bndbox>")
        x1, y1, x2, y2 = (_int(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x2 < x1 or y2 < y1:  # 1-based inclusive pixels: xmin == xmax is one pixel wide
            bad_box.append(f"{xml.name}: ({x1}, {y1}, {x2}, {y2}) has zero area")
        elif x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            bad_box.append(f"{xml.name}: ({x1}, {y1}, {x2}, {y2}) lies outside the {width}x{height} image")
    return names, bad_box


def builtin_clash(name: str) -> list[str]:
    """Detectron2's builtin (and our synth_*) data set names that `name` would collide with."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    mine = {name} | {f"{name}_{s}" for s in SPLITS}
    hits = [n for n in DatasetCatalog.list() if (n in mine or n.startswith(f"{name}_"))
            and MetadataCatalog.get(n).get("user_dataset", None) is None]
    if name.startswith("synth_"):
        hits.append("synth_* (the built-in synthetic data)")
    return sorted(hits)


def check_name(name: str) -> None:
    if not NAME_RE.match(name or ""):
        raise DatasetError(f"dataset name {name!r}: use letters, digits, '_', '.', '-' (at most 64, starting "
                           f"with a letter or digit); it names records and Detectron2 data sets")
    clash = builtin_clash(name)
    if clash:
        raise DatasetError(f"dataset name {name!r} clashes with Detectron2's builtin data sets "
                           f"({_listing(clash)}); choose another name")


def inspect_dataset(name: str, train: Source, test: Source, *, staged: dict[str, str] | None = None,
                    linked: dict[str, str] | None = None, holdout: dict[str, Any] | None = None,
                    keypoint_flip_map: Any = None) -> UserDataset:
    """Check a user's data set (both splits, every annotation) and describe it; raises DatasetError.
    keypoint_flip_map: the declared flip map of COCO keypoint data (pairs of names; required for it).
    A held-out split (data/holdout.py) is checked before it is written: `staged` holds the text of its
    split files (absolute path -> text), `linked` the VOC folders that will be links (path -> target)."""
    check_name(name)
    if train.format != test.format:
        raise DatasetError(f"dataset {name!r}: train is {train.format} but test is {test.format}; give both "
                           f"splits in one format (the evaluator follows it)")
    check = _check_coco if train.format == "coco" else _check_voc
    info = {split: check(src, split, staged or {}, linked or {}) for split, src in (("train", train), ("test", test))}
    tr, te = info["train"], info["test"]
    if train.format == "coco":
        if (tr["category_ids"], tr["classes"]) != (te["category_ids"], te["classes"]):
            raise DatasetError(f"dataset {name!r}: the categories of {train.path} "
                               f"{dict(zip(tr['category_ids'], tr['classes']))} and of {test.path} "
                               f"{dict(zip(te['category_ids'], te['classes']))} differ; both splits need the "
                               f"same category list")
        ids = tr["category_ids"]
        if tr["keypoints"] != te["keypoints"]:
            raise DatasetError(f"dataset {name!r}: the keypoints of {train.path} ({len(tr['keypoints'])}: "
                               f"{list(tr['keypoints'])}) and of {test.path} ({len(te['keypoints'])}: "
                               f"{list(te['keypoints'])}) differ; both splits need the same keypoint names, in the "
                               f"same order")
    else:
        if tr["classes"] != te["classes"]:
            only = {split: sorted(set(a["classes"]) - set(b["classes"]))
                    for split, a, b in (("train", tr, te), ("test", te, tr))}
            where = [f"{c!r} in {_listing(sorted(set(info[s]['class_files'][c])))}" for s in SPLITS for c in only[s]]
            raise DatasetError(f"dataset {name!r}: the VOC classes differ between the annotation files of train "
                               f"and test: only in train {only['train']}, only in test {only['test']} "
                               f"({'; '.join(where[:SHOW])}). Rename or drop those objects so both splits have "
                               f"the same classes")
        ids = list(range(1, len(tr["classes"]) + 1))
    names = tuple(tr.get("keypoints") or ())
    if names:
        flips = check_flip_map(names, keypoint_flip_map, f"dataset {name!r}")
    elif keypoint_flip_map is not None:
        raise DatasetError(f"dataset {name!r}: a keypoint_flip_map is declared but its annotation files have no "
                           f"keypoints (COCO categories with 'keypoints'); drop it or point at the keypoint files")
    else:
        flips = ()
    digest = canonical_hash({split: info[split]["files"] for split in SPLITS})
    return UserDataset(name=name, format=train.format, train=train, test=test, classes=tuple(tr["classes"]),
                       category_ids=tuple(ids), has_masks=tr["masks"] and te["masks"],
                       train_images=tr["annotated"], test_images=te["annotated"], annotations_sha256=digest,
                       holdout=holdout, keypoint_names=names, keypoint_flip_map=flips)


def register_user_dataset(ds: UserDataset) -> list[str]:
    """Register <name>_train and <name>_test with Detectron2's own loaders and the metadata its builtin
    registration sets (evaluator_type coco | pascal_voc). Again in the same process: nothing to do for the
    same data set, re-pointed for another version of it (one process runs one declaration at a time)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances
    from detectron2.data.datasets.pascal_voc import register_pascal_voc

    names = [ds.dataset_name(s) for s in SPLITS]
    tag = canonical_hash(ds.to_dict())
    if all(n in DatasetCatalog.list() and MetadataCatalog.get(n).get("user_dataset", None) == tag for n in names):
        return names
    for n in names:
        if n in DatasetCatalog.list():
            if MetadataCatalog.get(n).get("user_dataset", None) is None:
                raise DatasetError(f"{n} is already registered by someone else; choose another dataset name")
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
    for split, src, n in zip(SPLITS, (ds.train, ds.test), names):
        if ds.format == "coco":
            meta = {"thing_classes": list(ds.classes),
                    "thing_dataset_id_to_contiguous_id": {cid: i for i, cid in enumerate(ds.category_ids)}}
            if ds.keypoint_names:  # what the train mapper's horizontal flip reads
                meta.update(keypoint_names=list(ds.keypoint_names),
                            keypoint_flip_map=[list(p) for p in ds.keypoint_flip_map])
            register_coco_instances(n, meta, src.path, src.images)  # evaluator_type "coco"
        else:
            register_pascal_voc(n, src.path, src.images, VOC_YEAR, class_names=list(ds.classes))
            MetadataCatalog.get(n).set(evaluator_type="pascal_voc")
        MetadataCatalog.get(n).set(user_dataset=tag)
    return names
