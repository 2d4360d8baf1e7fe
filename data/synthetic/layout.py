"""Write the synthetic data set once per parameter set, atomically, and find it again.

    layout = ensure_synthetic(root="output/synthetic", preset="demo", seed=0)

The folder is <root>/<preset>-<key[:10]>, where key hashes the generator version, the seed and every
resolved parameter. Everything is written into a hidden temporary sibling folder that is renamed into
place only when complete (with synthetic.json, the manifest, last), so an interrupted run never
looks finished; a later call simply starts over.
"""
from __future__ import annotations

import functools
import json
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tqdm import tqdm

from mocobench.common.atomic import write_text
from mocobench.common.hashing import canonical_hash

from . import cityscapes, coco, coco_keypoints, imagefolder, lvis, shapes, voc, voc_seg
from .presets import GENERATOR_VERSION, resolve_params

logger = logging.getLogger(__name__)
MANIFEST = "synthetic.json"
# layout name -> (writer module, folder inside the layout root)
WRITERS = {
    "imagefolder": (imagefolder, "imagefolder"),
    "voc2007": (voc, "VOCdevkit/VOC2007"),
    "voc2012": (voc, "VOCdevkit/VOC2012"),
    "voc2012_seg": (voc_seg, "VOCdevkit/VOC2012"),  # semantic segmentation files in the same year folder
    "coco": (coco, "coco"),
    "cityscapes": (cityscapes, "cityscapes"),
    "coco_kp": (coco_keypoints, "coco_kp"),  # COCO keypoints: articulated figures with 17 keypoints
    "lvis": (lvis, "lvis"),                  # LVIS v0.5: many long-tailed categories
}


@dataclass(frozen=True)
class SyntheticLayout:
    root: Path
    preset: str
    seed: int
    key: str
    params: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        """Category names (VOC / COCO classes and ImageFolder class folders): the preset's `categories`."""
        return list(self.params["categories"])

    @property
    def cityscapes_classes(self) -> list[str]:
        return list(shapes.CITYSCAPES_THING_CLASSES)

    @property
    def imagefolder(self) -> Path:
        return self.root / WRITERS["imagefolder"][1]

    @property
    def voc2007(self) -> Path:
        return self.root / WRITERS["voc2007"][1]

    @property
    def voc2012(self) -> Path:
        return self.root / WRITERS["voc2012"][1]

    @property
    def voc2012_seg(self) -> Path:
        return self.root / WRITERS["voc2012_seg"][1]

    @property
    def coco(self) -> Path:
        return self.root / WRITERS["coco"][1]

    @property
    def cityscapes(self) -> Path:
        return self.root / WRITERS["cityscapes"][1]

    @property
    def coco_kp(self) -> Path:
        return self.root / WRITERS["coco_kp"][1]

    @property
    def lvis(self) -> Path:
        return self.root / WRITERS["lvis"][1]

    @property
    def lvis_classes(self) -> list[str]:
        """The LVIS layout's category names, in id order."""
        return lvis.category_names(self.params["lvis_categories"])

    @classmethod
    def open(cls, root: str | os.PathLike) -> "SyntheticLayout":
        """A finished layout folder, from its manifest."""
        path = Path(root)
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"{path} is not a finished synthetic data set (no {MANIFEST}); "
                                    f"create one with `python -m mocobench.data.synthetic --root DIR --preset tiny`")
        m = json.loads(manifest.read_text())
        if m.get("generator_version") != GENERATOR_VERSION:
            raise ValueError(f"{path} was written by generator version {m.get('generator_version')}, this is "
                             f"version {GENERATOR_VERSION}; generate it again with ensure_synthetic")
        return cls(root=path.resolve(), preset=m["preset"], seed=m["seed"], key=m["key"], params=m["params"])


def cache_key(params: Mapping[str, Any], seed: int) -> str:
    return canonical_hash({"generator_version": GENERATOR_VERSION, "seed": int(seed), "params": params})


def tasks(layout: str, params: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(split, index) of every image of a layout, in the order of `counts`."""
    return [(split, i) for split, n in params["counts"][layout].items() for i in range(n)]


def _check_params(params: Mapping[str, Any]) -> None:
    shapes.category_ids(params["categories"])  # a bad category list fails here, before any image is drawn
    for layout in WRITERS:
        counts = params["counts"].get(layout)
        if not isinstance(counts, Mapping) or not counts:
            raise ValueError(f"synthetic parameter counts.{layout} must map split names to image counts")
        for split, n in counts.items():
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"counts.{layout}.{split} = {n!r}: give a positive number of images")
    lvis.vocabulary(params)  # a bad category count fails here too
    for name in ("imagefolder_size",):
        if params[name] < 32:
            raise ValueError(f"{name} = {params[name]}: images smaller than 32 px cannot hold the scenes")
    for name in ("detection_size", "cityscapes_size"):
        if min(params[name]) < 32:
            raise ValueError(f"{name} = {params[name]}: images smaller than 32 px cannot hold the scenes")


def ensure_synthetic(root: str | os.PathLike = "output/synthetic", preset: str = "tiny", seed: int = 0,
                     overrides: Mapping[str, Any] | None = None, workers: int = 1,
                     progress: bool = True) -> SyntheticLayout:
    """The synthetic data set for (preset + overrides, seed): generated on the first call, reused after.

    workers: processes drawing images (1 = in this process; the output is the same for any number).
    """
    params = resolve_params(preset, overrides)
    _check_params(params)
    key = cache_key(params, seed)
    base = Path(root)
    final = base / f"{preset}-{key[:10]}"
    if (final / MANIFEST).is_file():
        layout = SyntheticLayout.open(final)
        if layout.key != key:
            raise ValueError(f"{final} holds a different parameter set (key {layout.key[:10]}); remove it")
        return layout
    if final.exists():
        raise FileExistsError(f"{final} exists but has no {MANIFEST}: it is not a finished synthetic data set "
                              f"written by this tool; move or delete it and run again")
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=base))
    try:
        start = time.time()
        _generate(tmp, params, seed, workers, progress, preset)
        manifest = {"generator_version": GENERATOR_VERSION, "preset": preset, "seed": int(seed), "key": key,
                    "params": params, "classes": list(params["categories"]),
                    "cityscapes_classes": list(shapes.CITYSCAPES_THING_CLASSES),
                    "seconds": round(time.time() - start, 2)}
        write_text(tmp / MANIFEST, json.dumps(manifest, indent=1), overwrite=False)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a concurrent writer that finished first
                raise
            logger.info("another process finished %s first; using it", final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("synthetic data set written to %s", final)
    return SyntheticLayout.open(final)


def _generate(out: Path, params: dict[str, Any], seed: int, workers: int, progress: bool, preset: str) -> None:
    jobs = []
    for layout, (module, sub) in WRITERS.items():
        for task in tasks(layout, params):
            jobs.append((layout, task))
    bar = tqdm(total=len(jobs), desc=f"synthetic {preset}", unit="img", disable=not progress, mininterval=1.0)
    records: dict[str, list[Any]] = {layout: [] for layout in WRITERS}
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        run = functools.partial(_write_one, out, params, seed)
        results = pool.imap(run, jobs, chunksize=16) if pool else map(run, jobs)
        for layout, record in results:
            records[layout].append(record)
            bar.update()
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
    for layout, (module, sub) in WRITERS.items():
        module.finish(layout, out / sub, params, records[layout])


def _write_one(out: Path, params: dict[str, Any], seed: int, job: tuple[str, tuple[str, int]]) -> tuple[str, Any]:
    layout, task = job
    module, sub = WRITERS[layout]
    return layout, module.write_item(layout, out / sub, params, seed, task)
