"""Generation speed of the synthetic data: images per CPU-second (one core), per layout, at a given size.

    .venv/bin/python -m mocobench.benchmarks.perf.synthetic_speed --size 256 --images 200 [--out results/perf/x.json]

Draws and writes complete images with their annotations (the same code ensure_synthetic runs, one
process) into a temporary folder. Goal: >= 100 images/s per core at 256 px.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

from mocobench.common.atomic import write_text
from mocobench.common.provenance import collect as collect_provenance
from mocobench.common.warnings_policy import apply_command_policy
from mocobench.data.synthetic import PRESETS
from mocobench.data.synthetic.layout import WRITERS

GOAL_PER_CORE = 100.0


def measure(size: int, images: int, seed: int = 0) -> dict[str, float]:
    params = copy.deepcopy(PRESETS["demo"])
    params["imagefolder_size"] = size
    params["detection_size"] = [size, size]
    params["cityscapes_size"] = [2 * size, size]
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("imagefolder", "voc2007", "coco", "cityscapes"):
            module, sub = WRITERS[layout]
            out = Path(tmp) / sub
            split = next(iter(params["counts"][layout]))
            module.write_item(layout, out, params, seed, (split, 0))  # warm-up (imports, caches)
            start = time.process_time()  # CPU seconds of this process: fair on a shared machine
            records = [module.write_item(layout, out, params, seed, (split, i)) for i in range(1, images + 1)]
            module.finish(layout, out, {**params, "counts": {**params["counts"], layout: {split: images}}}, records)
            rates[layout] = images / (time.process_time() - start)
    return rates


def main(argv: list[str] | None = None) -> int:
    apply_command_policy()  # the command's warnings policy (and its children's), before Detectron2 loads
    parser = argparse.ArgumentParser(prog="python -m mocobench.benchmarks.perf.synthetic_speed", description=__doc__)
    parser.add_argument("--size", type=int, default=256, help="image side in px (Cityscapes: 2*size x size)")
    parser.add_argument("--images", type=int, default=200, help="images per layout (more = steadier figure)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here (never overwritten)")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.exists():
        parser.error(f"{args.out} exists; choose a new file name (results are never overwritten)")
    rates = measure(args.size, args.images)
    for layout, rate in rates.items():
        note = "" if rate >= GOAL_PER_CORE else f"  (below the goal of {GOAL_PER_CORE:.0f}/s)"
        print(f"{layout:<12} {rate:7.1f} images/s/core at {args.size} px{note}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"benchmark": "synthetic_speed", "size": args.size, "images_per_layout": args.images,
               "images_per_s_per_core": rates, "goal": GOAL_PER_CORE, "provenance": collect_provenance()}
        write_text(args.out, json.dumps(doc, indent=1), overwrite=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
