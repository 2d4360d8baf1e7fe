"""Declared user data sets: declared once (command line or a YAML file), named again in later runs.

A declaration is a small YAML file, `<results>/datasets/<name>.yaml`, written atomically and never
replaced: it holds the two splits (absolute paths) and, for information, the classes and the hash of the
annotation files when it was declared. The same YAML shape is what a user may write by hand and pass as
`--dataset FILE.yaml` (relative paths are taken from the file's folder):

    name: widgets
    train: coco:annotations/train.json:images       # or voc:VOC_ROOT:SPLIT
    test: coco:annotations/val.json:images
"""
from __future__ import annotations

import logging
from pathlib import Path

import yaml

from mocobench.common.atomic import write_text
from mocobench.data.custom import DatasetError, Source, UserDataset, check_name, inspect_dataset, parse_source

log = logging.getLogger(__name__)
FOLDER = "datasets"


def declaration_path(results: str | Path, name: str) -> Path:
    return Path(results) / FOLDER / f"{name}.yaml"


def read_dataset_file(path: str | Path) -> tuple[str, Source, Source]:
    """A hand-written (or stored) declaration: (name, train, test)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DatasetError(f"cannot read the dataset file {path}: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("name", "train", "test")):
        raise DatasetError(f"{path}: a dataset file holds 'name', 'train' and 'test' (each split as "
                           f"coco:ANNOTATIONS.json:IMAGE_DIR or voc:VOC_ROOT:SPLIT)")
    base = path.resolve().parent
    return data["name"], parse_source(data["train"], base), parse_source(data["test"], base)


def resolve_dataset(dataset: str, train: str | None, test: str | None, results: str | Path) -> UserDataset:
    """--dataset NAME|FILE.yaml [--train SPEC --test SPEC] -> a checked UserDataset. Writes nothing: a new
    one is declared by `declare` once the run that uses it is planned."""
    if dataset.endswith((".yaml", ".yml")):
        if train or test:
            raise DatasetError("--dataset FILE.yaml declares the splits itself; drop --train/--test")
        name, tr, te = read_dataset_file(dataset)
    else:
        name = dataset
        check_name(name)
        tr = parse_source(train) if train else None
        te = parse_source(test) if test else None
    stored = declaration_path(results, name)
    if stored.exists():
        _, old_tr, old_te = read_dataset_file(stored)
        if (tr or te) and (tr, te) != (old_tr, old_te):
            raise DatasetError(f"dataset {name!r} is declared already in {stored} (train {old_tr.text()}, test "
                               f"{old_te.text()}); give the same splits, no splits (--dataset {name} alone), or "
                               f"another name")
        tr, te = old_tr, old_te
    elif not (tr and te):
        raise DatasetError(f"dataset {name!r} is not declared under {Path(results) / FOLDER}: declare it once with "
                           f"--train and --test (coco:ANNOTATIONS.json:IMAGE_DIR or voc:VOC_ROOT:SPLIT) or a "
                           f"dataset YAML file")
    ds = inspect_dataset(name, tr, te)
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


def declare(ds: UserDataset, results: str | Path) -> Path | None:
    """Store the declaration of a checked data set under `results` (atomically; an existing one is kept).
    Returns the new file, or None when it was declared already."""
    path = declaration_path(results, ds.name)
    if path.exists():
        return None
    text = yaml.safe_dump({"name": ds.name, "train": ds.train.text(), "test": ds.test.text(), "format": ds.format,
                           "classes": list(ds.classes), "annotations_sha256": ds.annotations_sha256}, sort_keys=False)
    try:
        write_text(path, text, overwrite=False)
    except FileExistsError:
        return None
    log.info(f"declared dataset {ds.name!r} in {path}; name it again with --dataset {ds.name}")
    return path
