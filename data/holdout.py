"""A test split held out of the train split: for users with one COCO json (or one folder of VOC XML files).

    --train coco:annotations.json:images --test holdout:0.2        # or holdout:0.2:SEED (default seed 0)
    --train voc:VOC_ROOT --test holdout:0.2                          # every XML of VOC_ROOT/Annotations

Each annotated image (at least one non-crowd annotation / one <object>) gets the key
sha256("SEED:IMAGE_ID"); sorted by key, the first round(F x N) of the N annotated images form the test
split, the rest the train split. So the split depends only on the image ids, the fraction and the seed,
never on the order of the file; images without annotation stay in train (Detectron2 trains on annotated
images only). The split files are written into the declaration's folder `<results>/datasets/NAME/`:

    COCO: train.json, test.json (the source's images and annotations, split; categories and the rest kept)
    VOC:  ImageSets/Main/{train,test}.txt, with Annotations/ and JPEGImages/ linked to the source root
          (Detectron2's VOC loader and evaluator read all three from one root)

This module only computes them (`plan_holdout`); data/declarations.py checks and writes them.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from mocobench.data.custom import ALL_XML, DatasetError, Source

PREFIX = "holdout"


@dataclass(frozen=True)
class Holdout:
    """`holdout:FRACTION[:SEED]`: the share of the train declaration's annotated images held out for test."""
    fraction: float
    seed: int = 0

    def text(self) -> str:
        return f"{PREFIX}:{self.fraction!r}:{self.seed}"


@dataclass(frozen=True)
class HoldoutPlan:
    """The two split Sources (under `folder`) and what has to exist there: files (relative path -> text)
    and directory links (relative path -> absolute target)."""
    train: Source
    test: Source
    folder: Path
    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    counts: tuple[int, int] = (0, 0)   # annotated images held in train / test


def is_holdout(text: str | None) -> bool:
    return bool(text) and str(text).split(":")[0] == PREFIX


def parse_holdout(text: str) -> Holdout:
    parts = str(text).split(":")
    usage = (f"{text!r}: a held-out test split is given as holdout:FRACTION or holdout:FRACTION:SEED, with "
             f"0 < FRACTION < 1 and an integer SEED (e.g. holdout:0.2)")
    if parts[0] != PREFIX or len(parts) not in (2, 3):
        raise DatasetError(usage)
    try:
        fraction = float(parts[1])
        seed = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise DatasetError(usage) from None
    if not 0 < fraction < 1:
        raise DatasetError(usage)
    return Holdout(fraction, seed)


def split_ids(annotated: list[str], holdout: Holdout, what: str) -> tuple[set[str], set[str]]:
    """The annotated image ids -> (train ids, test ids); refuses a split that would be empty."""
    n = len(annotated)
    n_test = math.floor(holdout.fraction * n + 0.5)
    if n_test < 1 or n_test >= n:
        side = "test" if n_test < 1 else "train"
        raise DatasetError(f"{holdout.text()} of the {n} annotated images of {what} leaves the {side} split "
                           f"empty ({n_test} held out); choose a fraction between {1 / max(n, 1):.3g} and "
                           f"{(n - 1) / max(n, 1):.3g}, or give a test split of your own")
    ranked = sorted(annotated, key=lambda i: (hashlib.sha256(f"{holdout.seed}:{i}".encode()).hexdigest(), i))
    return set(ranked[n_test:]), set(ranked[:n_test])


def _coco(src: Source, holdout: Holdout, folder: Path) -> HoldoutPlan:
    p = Path(src.path)
    try:
        data = json.loads(p.read_text())
        images, annotations = data["images"], data["annotations"]
        annotated = sorted({str(a["image_id"]) for a in annotations if not a.get("iscrowd", 0)})
        ids = {str(im["id"]) for im in images}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise DatasetError(f"{src.path}: cannot hold out a test split, it is not a readable COCO instances "
                           f"file (a JSON object with lists 'images', 'annotations', 'categories')") from None
    annotated = [i for i in annotated if i in ids]
    train_ids, test_ids = split_ids(annotated, holdout, src.path)
    files, sources = {}, {}
    for split, keep in (("train", lambda i: i not in test_ids), ("test", lambda i: i in test_ids)):
        part = dict(data)
        part["images"] = [im for im in images if keep(str(im["id"]))]
        part["annotations"] = [a for a in annotations if keep(str(a["image_id"]))]
        files[f"{split}.json"] = json.dumps(part)
        sources[split] = Source("coco", str(folder / f"{split}.json"), src.images)
    return HoldoutPlan(sources["train"], sources["test"], folder, files, {}, (len(train_ids), len(test_ids)))


def _voc_annotated(xml: Path) -> bool:
    import xml.etree.ElementTree as ET

    try:
        return ET.parse(xml).find("object") is not None
    except ET.ParseError as e:
        raise DatasetError(f"{xml} is not a VOC annotation file: {e}") from None


def _voc(src: Source, holdout: Holdout, folder: Path) -> HoldoutPlan:
    root = Path(src.path)
    if src.images == ALL_XML:
        if not (root / "Annotations").is_dir():
            raise DatasetError(f"voc:{src.path}: {root / 'Annotations'} does not exist (a VOC root holds "
                               f"Annotations/<id>.xml and JPEGImages/<id>.jpg)")
        ids = sorted(x.stem for x in (root / "Annotations").glob("*.xml"))
    else:
        listing = root / "ImageSets" / "Main" / f"{src.images}.txt"
        if not listing.is_file():
            raise DatasetError(f"voc:{src.path}:{src.images}: {listing} does not exist (give voc:{src.path} "
                               f"alone to hold out of every XML in Annotations/)")
        ids = listing.read_text().split()
    missing = [i for i in ids if not (root / "Annotations" / f"{i}.xml").is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} images of {src.text()} have no annotation file in "
                           f"{root / 'Annotations'}: {', '.join(missing[:5])}")
    annotated = [i for i in ids if _voc_annotated(root / "Annotations" / f"{i}.xml")]
    train_ids, test_ids = split_ids(annotated, holdout, src.text())
    files = {f"ImageSets/Main/{split}.txt": "".join(f"{i}\n" for i in ids if (i in test_ids) == (split == "test"))
             for split in ("train", "test")}
    links = {d: str(root / d) for d in ("Annotations", "JPEGImages")}
    return HoldoutPlan(Source("voc", str(folder), "train"), Source("voc", str(folder), "test"), folder, files,
                       links, (len(train_ids), len(test_ids)))


def plan_holdout(train: Source, holdout: Holdout, folder: str | Path) -> HoldoutPlan:
    """The split of `train` by `holdout`, to be stored under `folder`; nothing is written here."""
    folder = Path(folder).resolve()
    return (_coco if train.format == "coco" else _voc)(train, holdout, folder)
