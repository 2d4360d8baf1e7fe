"""Declared user data sets: declared once (command line or a YAML file), named again in later runs.

A declaration is a small YAML file, `<results>/datasets/<name>.yaml`, written atomically and never
replaced: it holds the two splits (absolute paths) and, for information, the classes and the hash of the
annotation files when it was declared. The same YAML shape is what a user may write by hand and pass as
`--dataset FILE.yaml` (relative paths are taken from the file's folder):

    name: widgets
    train: coco:annotations/train.json:images       # or voc:VOC_ROOT:SPLIT
    test: coco:annotations/val.json:images          # or holdout:0.2 (data/holdout.py): held out of train
    keypoint_flip_map: [[left_eye, right_eye], ...]  # COCO keypoint data only (required there: kp-fpn)

A held-out test split is written, with the declaration, into the folder `<results>/datasets/<name>/`
(split files written once, never replaced; a later run recomputes them and refuses if they changed).
"""
from __future__ import annotations

import logging
from pathlib import Path

import yaml

from mocobench.common.atomic import link_dir, write_text
from mocobench.data.custom import DatasetError, Source, UserDataset, check_name, inspect_dataset, parse_source
from mocobench.data.holdout import Holdout, HoldoutPlan, is_holdout, parse_holdout, plan_holdout

log = logging.getLogger(__name__)
FOLDER = "datasets"


def declaration_path(results: str | Path, name: str) -> Path:
    return Path(results) / FOLDER / f"{name}.yaml"


def split_folder(results: str | Path, name: str) -> Path:
    """Where a held-out data set's split files live."""
    return Path(results) / FOLDER / name


def parse_test(text: str, base: str | Path | None = None) -> Source | Holdout:
    return parse_holdout(text) if is_holdout(text) else parse_source(text, base)


def read_dataset_file(path: str | Path) -> tuple[str, Source, Source | Holdout]:
    """A hand-written (or stored) declaration: (name, train, test)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DatasetError(f"cannot read the dataset file {path}: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("name", "train", "test")):
        raise DatasetError(f"{path}: a dataset file holds 'name', 'train' and 'test' (each split as "
                           f"coco:ANNOTATIONS.json:IMAGE_DIR or voc:VOC_ROOT:SPLIT; test may be holdout:FRACTION)")
    base = path.resolve().parent
    return data["name"], parse_source(data["train"], base), parse_test(data["test"], base)


def read_flip_map(path: str | Path):
    """The keypoint_flip_map of a dataset file (None when it declares none)."""
    data = yaml.safe_load(Path(path).read_text())
    return data.get("keypoint_flip_map") if isinstance(data, dict) else None


def resolve_dataset(dataset: str, train: str | None, test: str | None, results: str | Path) -> UserDataset:
    """--dataset NAME|FILE.yaml [--train SPEC --test SPEC] -> a checked UserDataset. Writes nothing: a new
    one is declared by `declare` once the run that uses it is planned."""
    if dataset.endswith((".yaml", ".yml")):
        if train or test:
            raise DatasetError("--dataset FILE.yaml declares the splits itself; drop --train/--test")
        name, tr, te = read_dataset_file(dataset)
        flips = read_flip_map(dataset)
    else:
        name = dataset
        check_name(name)
        tr = parse_source(train) if train else None
        te = parse_test(test) if test else None
        flips = None
    stored = declaration_path(results, name)
    if stored.exists():
        _, old_tr, old_te = read_dataset_file(stored)
        if (tr or te) and (tr, te) != (old_tr, old_te):
            raise DatasetError(f"dataset {name!r} is declared already in {stored} (train {old_tr.text()}, test "
                               f"{old_te.text()}); give the same splits, no splits (--dataset {name} alone), or "
                               f"another name")
        old_flips = read_flip_map(stored)
        if flips is not None and flips != old_flips:
            raise DatasetError(f"dataset {name!r} is declared already in {stored} with keypoint_flip_map "
                               f"{old_flips!r}; give the same map, none, or another name")
        tr, te, flips = old_tr, old_te, old_flips
    elif not (tr and te):
        raise DatasetError(f"dataset {name!r} is not declared under {Path(results) / FOLDER}: declare it once with "
                           f"--train and --test (coco:ANNOTATIONS.json:IMAGE_DIR or voc:VOC_ROOT:SPLIT) or a "
                           f"dataset YAML file")
    if isinstance(te, Holdout):
        ds = _inspect_holdout(name, tr, te, results, flips)
    else:
        ds = inspect_dataset(name, tr, te, keypoint_flip_map=flips)
    if stored.exists():
        declared = (yaml.safe_load(stored.read_text()) or {}).get("annotations_sha256")
        if declared and declared != ds.annotations_sha256:
            log.warning(f"dataset {name!r}: its annotation files changed since it was declared "
                        f"({declared[:12]} -> {ds.annotations_sha256[:12]}); records carry the new hash and "
                        f"tables keep the two versions apart")
    log.info(f"dataset {name!r}: {ds.format}, {len(ds.classes)} classes {list(ds.classes)}, "
             f"{ds.train_images} annotated train / {ds.test_images} test images, masks: {ds.has_masks}, "
             f"annotations {ds.annotations_sha256[:12]}")
    return ds


def _holdout_plan(train: Source, holdout: Holdout, results: str | Path, name: str) -> HoldoutPlan:
    plan = plan_holdout(train, holdout, split_folder(results, name))
    for rel, text in plan.files.items():  # written by an earlier run: must be what this run would write
        p = plan.folder / rel
        if p.exists() and p.read_text() != text:
            raise DatasetError(f"dataset {name!r}: its held-out split file {p} differs from the split of "
                               f"{train.text()} by {holdout.text()} now (the annotations changed since it was "
                               f"declared); declare the edited data under another name (nothing is replaced)")
    for rel, target in plan.links.items():
        p = plan.folder / rel
        if (p.exists() or p.is_symlink()) and not (p.is_symlink() and Path(p.readlink()) == Path(target)):
            raise DatasetError(f"dataset {name!r}: {p} should be a link to {target}; move it away or choose "
                               f"another name")
    return plan


def _inspect_holdout(name: str, train: Source, holdout: Holdout, results: str | Path, flips=None) -> UserDataset:
    """Split `train` by `holdout` in memory and check both splits as they will be written."""
    check_name(name)
    plan = _holdout_plan(train, holdout, results, name)
    log.info(f"dataset {name!r}: {holdout.text()} of {train.text()}: {plan.counts[0]} annotated train / "
             f"{plan.counts[1]} test images, split files in {plan.folder}")
    return inspect_dataset(name, plan.train, plan.test,
                           staged={str(plan.folder / rel): text for rel, text in plan.files.items()},
                           linked={str(plan.folder / rel): target for rel, target in plan.links.items()},
                           holdout={"source": train.text(), "fraction": holdout.fraction, "seed": holdout.seed},
                           keypoint_flip_map=flips)


def _write_holdout(ds: UserDataset, results: str | Path) -> None:
    """Write a held-out data set's split files (atomically, never replacing one) and its VOC links."""
    h = ds.holdout
    plan = _holdout_plan(parse_source(h["source"]), Holdout(h["fraction"], h["seed"]), results, ds.name)
    for rel, target in plan.links.items():
        link_dir(plan.folder / rel, target)
    for rel, text in plan.files.items():
        if not (plan.folder / rel).exists():
            write_text(plan.folder / rel, text, overwrite=False)


def declare(ds: UserDataset, results: str | Path) -> Path | None:
    """Store the declaration of a checked data set under `results` (atomically; an existing one is kept).
    Returns the new file, or None when it was declared already."""
    if ds.holdout:
        _write_holdout(ds, results)  # the split files first: a declaration always names files that exist
    path = declaration_path(results, ds.name)
    if path.exists():
        return None
    if ds.holdout:
        h = ds.holdout
        splits = {"train": h["source"], "test": Holdout(h["fraction"], h["seed"]).text(),
                  "splits": {"train": ds.train.text(), "test": ds.test.text()}}
    else:
        splits = {"train": ds.train.text(), "test": ds.test.text()}
    keypoints = {"keypoint_flip_map": [list(p) for p in ds.keypoint_flip_map]} if ds.keypoint_names else {}
    text = yaml.safe_dump({"name": ds.name, **splits, **keypoints, "format": ds.format, "classes": list(ds.classes),
                           "annotations_sha256": ds.annotations_sha256}, sort_keys=False)
    try:
        write_text(path, text, overwrite=False)
    except FileExistsError:
        return None
    log.info(f"declared dataset {ds.name!r} in {path}; name it again with --dataset {ds.name}")
    return path
