"""`python -m mocobench.detection.convert`: the command line over pipeline.convert_file."""
from __future__ import annotations

import argparse
import sys

from mocobench.common.logs import cli_logging
from mocobench.detection.convert.detect import describe_formats
from mocobench.detection.convert.pipeline import convert_file
from mocobench.detection.convert.result import ConversionError
from mocobench.detection.formats import LAYOUTS

DESCRIPTION = ("Convert a pretrained ResNet or Vision Transformer checkpoint into a Detectron2 backbone pickle, "
               "and prove it right.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mocobench.detection.convert", description=DESCRIPTION)
    parser.add_argument("input", nargs="?",
                        help="checkpoint (.pth/.pth.tar/.ckpt/.torch/.safetensors) in any layout of --list-formats")
    parser.add_argument("output", nargs="?", help="Detectron2 weight file to write (.pkl); never overwritten "
                                                  "unless --overwrite")
    parser.add_argument("--format", default="auto", choices=["auto", *LAYOUTS],
                        help="input layout (default: detect it; see --list-formats)")
    parser.add_argument("--list-formats", action="store_true",
                        help="list every layout (source project, detection rule, drops, refusals) and exit")
    parser.add_argument("--vit-heads", type=int, default=None, metavar="N",
                        help="Vision Transformer checkpoints: attention heads (default: the checkpoint's metadata, "
                             "DINO args.arch / MoCo v3 arch / MAE args.model, else the standard count for the width; "
                             "the log says which; docs/vit.md)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the forward-pass proof (not recommended: it is what catches a wrong key map)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cli_logging()
    if args.list_formats:
        from mocobench.detection.vit.layouts import VIT_LAYOUTS

        print("Known input layouts:\n" + describe_formats())
        print("\nVision Transformer layouts (detected by their keys, for ViTDet: detection/vit, docs/vit.md):")
        for name, (source, kind) in VIT_LAYOUTS.items():
            print(f"  {name:14s} {source} [kind {kind}]")
        return 0
    if not args.input or not args.output:
        parser.error("INPUT and OUTPUT are required (or --list-formats)")
    try:
        convert_file(args.input, args.output, fmt=args.format, overwrite=args.overwrite, check=not args.no_verify,
                     vit_heads=args.vit_heads)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
