"""CPU cost of the pretraining input pipeline per MoCo pair, side by side, on real JPEG files.

    .venv/bin/python -m mocobench.benchmarks.perf.input_pipeline PATH [--images 400] [--upscale 500x375]
        [--rounds 3] [--batch 32] [--out benchmarks/perf/results/input_pipeline_<machine>.json]

PATH: a folder of JPEGs (searched recursively; an ImageFolder does). --images takes that many, evenly spread.
--upscale WxH re-encodes each (PIL bicubic, JPEG quality 90) at an ImageNet-like size first, into a temporary
folder: for small images such as CIFAR-10's 32 x 32 when nothing larger is at hand (the output says which).

Stages, each what one loader worker does for one pair (one image, two views), one thread, the files read from
disk (the page cache after the first round):
  1. official    the official MoCo v2 pipeline, rebuilt from its published parameters: PIL decode, then twice
                 RandomResizedCrop(224, scale=(0.2, 1)), ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8,
                 RandomGrayscale 0.2, PIL Gaussian blur sigma U[0.1, 2] p=0.5, flip, ToTensor, Normalize
  2. cpu aug     our CPU augmentation path (data.aug_device=cpu): the training dataset's item, PIL decode + the
                 two views of pretrain/cpu_aug.py
  3. gpu aug     our GPU-augmentation path's CPU side (data.aug_device=gpu): decode only, with PIL
                 (data.decode=pil) and with torchvision (data.decode=torchvision), plus the padding collate
  4. gpu decode  the GPU-decode path's CPU side (data.decode=gpu): read the bytes, parse the JPEG header, collate

The clock is the process's CPU time (time.process_time: user + system core-seconds of this process), not wall
time, so that other work on a shared machine does not count; each round runs the stages one after another and
the median round is reported. From the cost per pair: pairs/s per core, and the CPU cores per GPU that the loader
needs at 3,000 and 4,500 pairs/s per GPU (the main training process's own share is not included).
Also reported: whether torchvision's JPEG decoder gives PIL's pixels on these files (max |diff|, share).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T

from mocobench.common.atomic import write_text
from mocobench.common.provenance import collect as collect_provenance
from mocobench.pretrain.cpu_aug import MEAN, STD, TwoCrops, moco_augmentation
from mocobench.pretrain.data import ImageList, evenly_spaced, pad_collate, unchanged
from mocobench.pretrain.decode import ReadTensor, decode_cpu, decode_pil, encoded_collate, read_encoded, read_pil

TARGETS = (3000, 4500)  # pairs/s per GPU: the goal and the stretch goal on an H100
JPEG_SUFFIXES = (".jpg", ".jpeg", ".JPG", ".JPEG")


class OfficialBlur:
    """MoCo v2's blur: PIL's Gaussian filter with radius sigma ~ U[0.1, 2]."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        self.sigma = sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


def official_augmentation(size: int = 224) -> T.Compose:
    """MoCo v2's training augmentation (aug+) from its published parameters."""
    return T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0)),
                      T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
                      T.RandomApply([OfficialBlur()], p=0.5), T.RandomHorizontalFlip(), T.ToTensor(),
                      T.Normalize(MEAN, STD)])


def official_pair(augment: T.Compose) -> Callable[[Path], torch.Tensor]:
    def pair(path: Path) -> torch.Tensor:
        with Image.open(path) as im:
            image = im.convert("RGB")
        return torch.stack([augment(image), augment(image)])
    return pair


def find_jpegs(root: Path, n: int) -> list[Path]:
    if not root.is_dir():
        raise SystemExit(f"error: {root} is not a folder (give a folder of JPEG files, e.g. an ImageFolder)")
    files = sorted(p for p in root.rglob("*") if p.suffix in JPEG_SUFFIXES and p.is_file())
    if not files:
        raise SystemExit(f"error: no JPEG files (*.jpg, *.jpeg) under {root}")
    return evenly_spaced(files, n)


def upscale(files: list[Path], size: tuple[int, int], out: Path) -> list[Path]:
    """Each file resized to size (w, h) with PIL bicubic and saved as JPEG quality 90 under out."""
    written = []
    for k, path in enumerate(files):
        with Image.open(path) as im:
            image = im.convert("RGB").resize(size, Image.BICUBIC)
        written.append(out / f"{k:06d}.jpg")
        image.save(written[-1], format="JPEG", quality=90)
    return written


def stages(size: int, batch: int) -> dict[str, tuple[str, Callable[[list[Path]], object]]]:
    """name -> (what it is, work on a list of files: every pair of them, batched as a worker batches them)."""
    def per_item(dataset_for: Callable[[list[Path]], ImageList], collate=None):
        def run(files: list[Path]) -> None:
            dataset = dataset_for(files)
            for start in range(0, len(dataset), batch):
                items = [dataset[i] for i in range(start, min(len(dataset), start + batch))]
                if collate is not None:
                    collate(items)
        return run

    def dataset(read, transform):
        def make(files: list[Path]) -> ImageList:
            ds = ImageList([(p, 0) for p in files], transform, read=read, report_skips=True)
            ds.seed = 0  # per-sample seeding, as in training
            return ds
        return make

    ours = TwoCrops(moco_augmentation("v2", size, 0.2))
    official = official_pair(official_augmentation(size))
    return {
        "official": ("official MoCo v2: PIL decode + 2 views (PIL/torchvision transforms)",
                     lambda files: [official(p) for p in files]),
        "cpu_aug": ("ours, data.aug_device=cpu: PIL decode + 2 views (pretrain/cpu_aug.py)",
                    per_item(dataset(read_pil, ours))),
        "gpu_aug_pil": ("ours, data.aug_device=gpu data.decode=pil: PIL decode + pad collate",
                        per_item(dataset(ReadTensor("pil"), unchanged), pad_collate)),
        "gpu_aug_torchvision": ("ours, data.aug_device=gpu data.decode=torchvision: torchvision decode + pad collate",
                                per_item(dataset(ReadTensor("torchvision"), unchanged), pad_collate)),
        "gpu_decode": ("ours, data.decode=gpu: read bytes + JPEG header + collate (decoding on the GPU)",
                       per_item(dataset(read_encoded, unchanged), encoded_collate)),
    }


def pixel_check(files: list[Path]) -> dict[str, float]:
    """torchvision's JPEG decoder against PIL's on these files."""
    worst, differing, total = 0, 0, 0
    for path in files:
        data = path.read_bytes()
        a, b = decode_cpu(data, jpeg_decoder="torchvision").int(), decode_pil(data).int()
        if a.shape != b.shape:
            return {"files": len(files), "max_abs_diff": float("nan"), "shape_mismatch": str(path)}
        diff = (a - b).abs()
        worst = max(worst, int(diff.max()))
        differing += int((diff > 0).sum())
        total += diff.numel()
    return {"files": len(files), "max_abs_diff": worst, "fraction_differing": differing / total}


def measure(files: list[Path], *, size: int = 224, batch: int = 32, rounds: int = 3,
            only: tuple[str, ...] | None = None) -> dict[str, dict]:
    """CPU seconds per pair of each stage (median over rounds), with the derived rates."""
    torch.set_num_threads(1)
    work = {k: v for k, v in stages(size, batch).items() if only is None or k in only}
    for _, run in work.values():
        run(files[:2])  # warm-up: imports, caches, the page cache for the first files
    times: dict[str, list[float]] = {k: [] for k in work}
    for _ in range(rounds):
        for name, (_, run) in work.items():
            start = time.process_time()
            run(files)
            times[name].append((time.process_time() - start) / len(files))
    out = {}
    for name, (what, _) in work.items():
        per_pair = statistics.median(times[name])
        out[name] = {"what": what, "cpu_ms_per_pair": 1000 * per_pair, "pairs_per_s_per_core": 1 / per_pair,
                     "rounds_ms": [round(1000 * t, 3) for t in times[name]],
                     **{f"cores_per_gpu_at_{t}": t * per_pair for t in TARGETS}}
    if "official" in out:
        for row in out.values():
            row["official_cost_ratio"] = out["official"]["cpu_ms_per_pair"] / row["cpu_ms_per_pair"]
    return out


def describe(files: list[Path]) -> dict[str, object]:
    sizes = []
    for path in files[: min(len(files), 50)]:
        with Image.open(path) as im:
            sizes.append(im.size)
    return {"images": len(files), "median_size_wh": [int(np.median([s[0] for s in sizes])),
                                                      int(np.median([s[1] for s in sizes]))],
            "mean_file_kb": float(np.mean([p.stat().st_size for p in files]) / 1024)}


def table(rows: dict[str, dict]) -> str:
    head = (f"{'stage':<20} {'CPU ms/pair':>11} {'pairs/s/core':>12} {'cores/GPU @3000':>15} {'@4500':>7} "
            f"{'official / this':>15}")
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(f"{name:<20} {r['cpu_ms_per_pair']:>11.3f} {r['pairs_per_s_per_core']:>12.1f} "
                     f"{r['cores_per_gpu_at_3000']:>15.2f} {r['cores_per_gpu_at_4500']:>7.2f} "
                     f"{r.get('official_cost_ratio', float('nan')):>14.1f}x")
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT, e.g. 500x375") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive")
    return w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocobench.benchmarks.perf.input_pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="folder of JPEG files (searched recursively)")
    parser.add_argument("--images", type=int, default=400, help="how many files, evenly spread (default 400)")
    parser.add_argument("--upscale", type=parse_size, metavar="WxH",
                        help="re-encode each file at this size first (e.g. 500x375 for CIFAR-10's 32 x 32)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all stages; the median counts")
    parser.add_argument("--size", type=int, default=224, help="view size (default 224)")
    parser.add_argument("--batch", type=int, default=32, help="items per collated batch (default 32)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here (never overwritten)")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.exists():
        parser.error(f"{args.out} exists; choose a new file name (results are never overwritten)")
    if args.images < 2 or args.rounds < 1:
        parser.error("--images must be at least 2 and --rounds at least 1")
    files = find_jpegs(args.path, args.images)
    with tempfile.TemporaryDirectory() as tmp:
        if args.upscale:
            files = upscale(files, args.upscale, Path(tmp))
        data = describe(files) | {"source": str(args.path), "upscaled_to": list(args.upscale or []) or None}
        print(f"{data['images']} JPEGs from {args.path}"
              + (f", upscaled to {args.upscale[0]}x{args.upscale[1]} (bicubic, quality 90)" if args.upscale
                 else " as given") + f": median {data['median_size_wh'][0]}x{data['median_size_wh'][1]}, "
              f"mean {data['mean_file_kb']:.1f} KB")
        pixels = pixel_check(files)
        rows = measure(files, size=args.size, batch=args.batch, rounds=args.rounds)
    print(f"torchvision vs PIL decode on these files: max |diff| {pixels['max_abs_diff']}, "
          f"{pixels.get('fraction_differing', float('nan')):.2%} of the values differ")
    print(f"CPU time of this process (core-seconds, not wall time), one thread, median of {args.rounds} rounds:")
    print(table(rows))
    if args.out is not None:
        doc = {"benchmark": "input_pipeline", "data": data, "view_size": args.size, "batch": args.batch,
               "rounds": args.rounds, "clock": "time.process_time (this process's CPU time)",
               "decode_pixels": pixels, "stages": rows, "provenance": collect_provenance()}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, json.dumps(doc, indent=1), overwrite=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
