"""python -m mocobench.benchmarks.perf.gpu_check [--device cuda|cpu] [--tiny] [--out FILE] [--only a,b]

Runs every check (see the package docstring and docs/gpu-check.md), prints one table, writes one JSON file
and exits 1 if any check failed (2 on bad usage). Test hook: --inject-failure NAME makes that check fail
in place of running it (the test suite uses it to prove the exit status)."""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from mocobench.benchmarks.perf.gpu_check import (
    augmentation,
    ddp,
    decode,
    detectron2_speed,
    environment,
    logits,
    pretrain_speed,
    resume,
    sync_step,
)
from mocobench.benchmarks.perf.gpu_check.harness import report, run_checks, table, write_report
from mocobench.benchmarks.perf.gpu_check.shapes import SHAPES
from mocobench.common.warnings_policy import apply_command_policy

# order: the cheap correctness checks first, the figures last (the compile stage last of all: the budget)
CHECKS = [("environment", environment.check), ("augmentation", augmentation.check),
          ("logits_dtype", logits.check), ("sync_step", sync_step.check), ("resume_knn_lincls", resume.check),
          ("ddp_gloo", ddp.check), ("detectron2_speed", detectron2_speed.check),
          ("gpu_decode", decode.check), ("pretrain_speed", pretrain_speed.check)]
NAMES = [name for name, _ in CHECKS]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mocobench.benchmarks.perf.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="auto: cuda when torch sees a GPU (default)")
    p.add_argument("--tiny", action="store_true", help="toy shapes (the default on a CPU)")
    p.add_argument("--full", action="store_true", help="the issue's shapes on a CPU too (slow)")
    p.add_argument("--out", type=Path, default=None,
                   help="the JSON report (default: output/gpu_check/gpu_check-<host>-<UTC time>.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--only", default=None, help=f"comma-separated checks to run (default all: {','.join(NAMES)})")
    p.add_argument("--budget-s", type=float, default=330.0,
                   help="time budget: the compile stage is skipped when less than its need is left (default 330)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 on a machine shared with other jobs)")
    p.add_argument("--inject-failure", action="append", default=[], metavar="CHECK",
                   help="test hook: report CHECK as failed without running it")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    apply_command_policy()  # the command's warnings policy (and its children's), before Detectron2 loads
    args = parse(argv)
    import torch

    from mocobench.benchmarks.perf.gpu_check.context import Context

    if args.tiny and args.full:
        print("error: --tiny and --full exclude each other", file=sys.stderr)
        return 2
    only = NAMES if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(only + args.inject_failure) - set(NAMES))
    if unknown:
        print(f"error: unknown check(s) {unknown}; choose from {NAMES}", file=sys.stderr)
        return 2
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device (torch.cuda.is_available() is False); "
              "run with --device cpu, or on a GPU node", file=sys.stderr)
        return 2
    size = "full" if args.full or (device == "cuda" and not args.tiny) else "tiny"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path("output/gpu_check") / f"gpu_check-{socket.gethostname()}-{stamp}.json"
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists; not overwriting it (pass --overwrite, or another --out)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    versions = environment.versions()
    print(f"[gpu_check] {size} shapes on {device}: python {versions['python']}, torch {versions['torch']}, "
          f"torchvision {versions['torchvision']}, detectron2 {versions['detectron2']}, fvcore {versions['fvcore']}, "
          f"CUDA {versions['cuda']}, {versions['device_name']}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    start = time.perf_counter()
    try:
        ctx = Context(device=torch.device(device), shapes=SHAPES[size], tmp=tmp)
        checks = [(n, fn) for n, fn in CHECKS if n in only]
        results = run_checks(checks, ctx, inject=set(args.inject_failure), budget_s=args.budget_s,
                             echo=lambda line: print(line, flush=True))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - start
    settings = {"device": device, "size": size, "only": only, "budget_s": args.budget_s,
                "inject_failure": args.inject_failure, "shapes": SHAPES[size].as_dict(), "argv": sys.argv[1:]}
    data = report(results, settings=settings, environment=versions, wall_s=wall)
    print()
    print(table(results))
    print(f"wall time {wall:.0f} s")
    write_report(out, data, overwrite=args.overwrite)
    print(f"[gpu_check] report: {out}")
    return 0 if data["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
