"""`python -m mocobench.data.synthetic --root output/synthetic --preset demo [key.sub=value ...]`: generate
(once) and print paths. Overrides change preset parameters, e.g. counts.coco.train=50 (or --opts KEY VALUE)."""
from __future__ import annotations

import argparse
import logging
import sys

from mocobench.common.config import overrides_delta
from mocobench.common.warnings_policy import apply_command_policy

from .layout import ensure_synthetic
from .presets import PRESETS


def main(argv: list[str] | None = None) -> int:
    apply_command_policy()  # the command's warnings policy (and its children's), before Detectron2 loads
    parser = argparse.ArgumentParser(prog="python -m mocobench.data.synthetic", description=__doc__)
    parser.add_argument("--root", default="output/synthetic", help="folder holding the generated data sets")
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS),
                        help="tiny: tests (seconds); small: quick runs; demo: the demo chain (about a minute)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1,
                        help="processes drawing images (same bytes for any number; 1 leaves cores free)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides of the preset's parameters")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="overrides as KEY VALUE pairs (last)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        layout = ensure_synthetic(root=args.root, preset=args.preset, seed=args.seed, workers=args.workers,
                                  progress=not args.quiet, overrides=overrides_delta([*args.overrides, *args.opts]))
    except ValueError as e:  # unknown or mistyped parameters (mocobench.common.config.ConfigError)
        parser.error(str(e))
    print(f"root        {layout.root}")
    print(f"classes     {', '.join(layout.classes)}")
    for name in ("imagefolder", "voc2007", "voc2012", "coco", "cityscapes"):
        print(f"{name:<11} {getattr(layout, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
