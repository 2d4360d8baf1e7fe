"""Sabotage check: can the demo tables see a broken transfer?

Takes the MoCo demo checkpoint (or the supervised one: --checkpoint output/pretrain/supervised_demo),
shuffles the values of every backbone tensor of its query encoder (supervised: of the network; each
tensor keeps its shape, dtype and value histogram; BN statistics included), and fine-tunes from it
through the same runner, converter, Detectron2 models and evaluators as `make demo`, with the demo's
trial count and seeds. A pipeline that really transfers the pretrained weights must then fall to the
random-init level; a pipeline that ignored them (wrong key names, skipped tensors) would not notice.

    python -m mocobench.benchmarks.perf.sabotage                       # after `make demo`
    python -m mocobench.benchmarks.perf.sabotage --checkpoint output/pretrain/supervised_demo

Its records go to a separate results folder (default output/sabotage/results), so the demo tables stay
as they were; the comparison with the demo's own random-init and MoCo records (from --results) is
printed as a Markdown table and written to OUT/<kind>/summary.json. A benchmark is decisive where the
intact checkpoint transfers (beats random init by at least the transfer threshold, 5 box AP50); there the
check passes when the shuffled checkpoint's AP50 is less than 5 above random init and closer to random
init than to the intact checkpoint. Elsewhere it is inconclusive: there is no transfer to break. Exit
status 0 when every decisive benchmark passes and there is one; 1 when one fails; 3 when none is decisive.
Recorded results: benchmarks/perf/RESULTS.md, section "Sabotage check".
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from mocobench.common.atomic import write_text
from mocobench.common.hashing import canonical_hash, sha256_file
from mocobench.common.warnings_policy import apply_command_policy
from mocobench.pretrain.checkpoint import latest_checkpoint, load, save_atomic
from mocobench.records import SYNTHETIC_SUFFIX, load_records
from mocobench.runner.benchmarks import resolve_benchmark

BENCHMARKS = ("voc-det", "coco-mask")        # the demo's two benchmarks (make voc-det coco-mask)
RECORD_NAMES = {b: resolve_benchmark(b, builtin_data=True).name + SYNTHETIC_SUFFIX for b in BENCHMARKS}  # as recorded
METRIC = "bbox/AP50"
THRESHOLD = 5.0                               # points of AP50: the demo's transfer threshold
LABEL = "shuffled"                            # the row of the shuffled checkpoint ("intact": the original)


def backbone_keys(state_dict: dict) -> tuple[list[str], str]:
    """The keys the converter turns into the Detectron2 backbone, and the checkpoint's kind."""
    for prefix, kind in (("module.encoder_q.", "moco"), ("module.", "supervised")):
        keys = [k for k in state_dict if k.startswith(prefix) and not k[len(prefix):].startswith("fc.")
                and not k.startswith(("module.encoder_k.", "module.queue"))]
        if keys:
            return keys, kind
    raise SystemExit("no module.encoder_q.* (MoCo) nor module.* (supervised) tensors: not a checkpoint of ours")


def shuffled_checkpoint(source: Path, out_root: Path, seed: int) -> tuple[Path, int, str]:
    """A copy of `source` in out_root/<kind>/ whose backbone tensors have their values permuted (fc/MLP
    head, key encoder and queue are left as they are: the converter drops them). Cached by source hash."""
    sha = sha256_file(source)
    ckpt = load(source)
    keys, kind = backbone_keys(ckpt["state_dict"])
    out_dir = out_root / kind
    target = out_dir / f"{source.name.split('.')[0]}-shuffled-{sha[:12]}-seed{seed}.pth.tar"
    if target.exists():
        return target, len(keys), kind
    gen = torch.Generator().manual_seed(seed)
    changed = 0
    for k in keys:
        t = ckpt["state_dict"][k]
        flat = t.reshape(-1)
        shuffled = flat[torch.randperm(flat.numel(), generator=gen)].reshape(t.shape).clone()
        changed += int(not torch.equal(shuffled, t))
        ckpt["state_dict"][k] = shuffled
    ckpt["sabotage"] = {"source": str(source), "source_sha256": sha, "shuffled_tensors": len(keys), "seed": seed}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_atomic(ckpt, target)
    print(f"[sabotage] {len(keys)} backbone tensors shuffled ({changed} changed; the rest hold one value, "
          f"e.g. num_batches_tracked) -> {target}", flush=True)
    return target, len(keys), kind


def _stats(values: list[float]) -> dict[str, float | int | None]:
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)}


def _protocol_sans_weights(record: dict) -> str:
    return canonical_hash({k: v for k, v in record["protocol"].items() if k != "weights_sha256"})


def summarise(demo_results: Path, sabotage_results: Path, source_sha: str) -> dict:
    demo = load_records(demo_results) if demo_results.is_dir() else []
    ours = load_records(sabotage_results)
    summary = {}
    for bench in BENCHMARKS:
        name = RECORD_NAMES[bench]

        # only trials of the intact checkpoint's protocol (weights aside): never older demo data or schedules
        same = {_protocol_sans_weights(r) for r in demo if r["benchmark"] == name
                and r["init"]["weights_sha256"] == source_sha}

        def ap50(records, pick):
            return [r["metrics"]["bbox"]["AP50"] for r in records
                    if r["benchmark"] == name and _protocol_sans_weights(r) in same and pick(r)]

        rows = {
            "random": ap50(demo, lambda r: r["init"]["kind"] == "random"),
            "intact": ap50(demo, lambda r: r["init"]["weights_sha256"] == source_sha),
            LABEL: ap50(ours, lambda r: r["init"]["label"] == LABEL),
        }
        stats = {label: _stats(v) for label, v in rows.items()}
        ok, decisive = None, False
        if all(s["n"] for s in stats.values()):
            r, m, s = (stats[k]["mean"] for k in ("random", "intact", LABEL))
            decisive = (m - r) >= THRESHOLD    # the intact checkpoint transfers: a broken one must not
            ok = (s - r) < THRESHOLD and abs(s - r) < abs(s - m) if decisive else None
        summary[name] = {"metric": METRIC, "rows": stats, "values": rows, "decisive": decisive,
                         "falls_to_random": ok}
    return summary


def markdown(summary: dict) -> str:
    lines = ["| benchmark | random init | intact checkpoint | backbone shuffled | falls to random level |",
             "|---|---|---|---|---|"]
    for name, s in summary.items():
        def cell(label):
            st = s["rows"][label]
            if not st["n"]:
                return "no records"
            std = f" ± {st['std']:.1f}" if st["std"] is not None else ""
            return f"{st['mean']:.1f}{std} (n={st['n']})"
        verdict = {True: "yes", False: "**no**"}.get(s["falls_to_random"],
                                                       "inconclusive: the intact checkpoint does not transfer"
                                                       if s["rows"]["intact"]["n"] else "n/a: no records")
        lines.append(f"| {name} ({s['metric']}) | {cell('random')} | {cell('intact')} | {cell(LABEL)} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    apply_command_policy()  # the command's warnings policy (and its children's), before Detectron2 loads
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="output/pretrain/moco_v2_demo",
                   help="a MoCo or supervised checkpoint of ours, or a pretraining folder (its latest checkpoint)")
    p.add_argument("--results", default="results", help="the demo's results folder (random and MoCo records)")
    p.add_argument("--out", default="output/sabotage",
                   help="OUT/<kind>/: shuffled checkpoint, its records and the summary")
    p.add_argument("--trials", type=int, default=2, help="trials per benchmark (the demo's DET_TRIALS)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations")
    p.add_argument("--synthetic-root", default="output/synthetic")
    args = p.parse_args(argv)

    source = Path(args.checkpoint)
    if source.is_dir():
        found = latest_checkpoint(source)
        if found is None:
            raise SystemExit(f"{source} holds no checkpoint_NNNN.pth.tar: run `make pretrain` (or make demo) first")
        source = found
    target, n, kind = shuffled_checkpoint(source, Path(args.out), args.seed)
    out = target.parent
    for bench in BENCHMARKS:
        cmd = [sys.executable, "-m", "mocobench", "run", bench, "--weights", str(target), "--label", LABEL,
               "--kind", kind, "--trials", str(args.trials), "--data", "synthetic",
               "--synthetic-root", args.synthetic_root, "--results", str(out / "results"),
               "--output-dir", str(out / "benchmarks")]
        print("[sabotage] " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    summary = summarise(Path(args.results), out / "results", sha256_file(source))
    doc = {"checkpoint": str(source), "kind": kind, "shuffled_checkpoint": str(target), "shuffled_tensors": n,
           "trials": args.trials, "benchmarks": summary}
    write_text(out / "summary.json", json.dumps(doc, indent=1))
    print(markdown(summary))
    if any(not all(r["n"] for r in s["rows"].values()) for s in summary.values()):
        print("[sabotage] some rows have no records: run `make demo` first (random and intact rows come from "
              f"{args.results})")
        return 1
    verdicts = [s["falls_to_random"] for s in summary.values() if s["decisive"]]
    if not verdicts:
        print(f"[sabotage] INCONCLUSIVE: the intact checkpoint beats random init by less than {THRESHOLD} AP50 "
              "everywhere, so there is no transfer for the shuffled one to lose")
        return 3
    print(f"[sabotage] {'PASS' if all(verdicts) else 'FAIL'}: on the {len(verdicts)} benchmark(s) where the intact "
          f"checkpoint transfers, the shuffled one {'falls' if all(verdicts) else 'does not fall'} to random init")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
