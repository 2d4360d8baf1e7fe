"""What the suite's fine-tuning costs over Detectron2's plain trainer: one detection trial's training through the
suite, and the same config through Detectron2's DefaultTrainer as its tools/train_net.py builds it, side by side
in one run, interleaved, for a C4 and an FPN benchmark on the built-in data.

    .venv/bin/python -m mocobench.benchmarks.perf.detection_overhead [--benchmarks voc0712-det-c4,coco-mask-fpn-1x]
        [--iters 40] [--warmup 5] [--rounds 2] [--device cpu|cuda] [--threads 1] [--out FILE.json]

The trial's config is the runner's own plan (`runner.run.prepare` with --weights random on the built-in data,
SOLVER.MAX_ITER = --iters). The two trainers:
  suite  detection/engine.py's Trainer, as a trial builds it: PreciseBN over all ranks, the trial's progress
         bar, DDP built for the device (one process here: none), plus the weights check when resuming or loading
  plain  DefaultTrainer with only build_evaluator defined (what tools/train_net.py adds), Detectron2's PreciseBN
Both run the same iterations with the same seed; the final evaluation (after training, outside s/iter) only
with --eval.

Per trainer: s/iter over the iterations after --warmup and before the last (each one's whole span, hooks
included: measured from one after_step to the next by a hook registered last), in wall time and in this
process's CPU time (the figure to trust on a shared machine; the loader's worker processes are not counted,
and they are the same in both), the last iteration's extra seconds (its hooks: PreciseBN, the final
checkpoint) and the whole train() wall time; and each hook's own time (wall, medians over rounds): ms per
iteration, seconds at the last iteration and in after_train, which names what the suite adds. The two
trainers alternate, --rounds times each (the order flips each round), and the median round counts: wall time
on a shared machine drifts, interleaving spreads the drift over both.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mocobench.common.atomic import write_text
from mocobench.common.provenance import collect as collect_provenance

BENCHMARKS = ("voc0712-det-c4", "coco-mask-fpn-1x")


def trial_config(benchmark: str, *, device: str, iters: int, output_dir: Path, synthetic_root: str,
                 preset: str = "demo", evaluate: bool = False):
    """The config and data of trial 0 of `benchmark` with random init on the built-in data, as the runner plans it
    (registers the built-in data sets, building them on first use). evaluate=False: no test sets (the final
    evaluation runs after training, outside s/iter; leaving it out saves its minutes)."""
    from mocobench.runner.run import RunRequest, prepare

    request = RunRequest(benchmark=benchmark, weights=["random"], data="synthetic", synthetic_root=synthetic_root,
                         synthetic_preset=preset, num_gpus=1 if device == "cuda" else 0, trials=1,
                         output_dir=str(output_dir / "trials"), results=str(output_dir / "results"),
                         opts=["SOLVER.MAX_ITER", str(iters)])
    prep = prepare(request, banner=False)
    cfg = prep.plans[0].cfg
    if not evaluate:
        cfg.defrost()
        cfg.DATASETS.TEST = ()
    return cfg, prep.data, prep.bench.name


def iteration_clock():
    """A Detectron2 hook that notes the time at each after_step (registered last: after every other hook)."""
    from detectron2.engine import HookBase

    class Clock(HookBase):
        def before_train(self):
            self.marks = [(time.perf_counter(), time.process_time())]

        def after_step(self):
            self.marks.append((time.perf_counter(), time.process_time()))

    return Clock()


def time_hooks(trainer) -> dict[str, dict[str, list[float]]]:
    """Wraps every hook's before_step / after_step / after_train with a wall-clock timer: hook class name ->
    method -> seconds of each call (the cost of each hook, named)."""
    costs: dict[str, dict[str, list[float]]] = {}
    for hook in trainer._hooks:
        name = type(hook).__name__
        for method in ("before_step", "after_step", "after_train"):
            def timed(call=getattr(hook, method), calls=costs.setdefault(name, {}).setdefault(method, [])):
                start = time.perf_counter()
                call()
                calls.append(time.perf_counter() - start)
            setattr(hook, method, timed)
    return costs


def hook_summary(costs: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Per hook: mean ms per iteration (before + after_step, all but the last iteration), the last iteration's
    seconds, after_train's seconds."""
    out = {}
    for name, calls in costs.items():
        steps = [b + a for b, a in zip(calls.get("before_step", []), calls.get("after_step", []))]
        out[name] = {"ms_per_iter": 1000 * statistics.mean(steps[:-1]) if len(steps) > 1 else 0.0,
                     "last_iter_s": steps[-1] if steps else 0.0, "after_train_s": sum(calls.get("after_train", []))}
    return out


def plain_trainer_class():
    from detectron2.engine import DefaultTrainer

    from mocobench.detection.engine import build_evaluator

    class PlainTrainer(DefaultTrainer):
        """tools/train_net.py's Trainer: DefaultTrainer with an evaluator for the dataset."""

        @classmethod
        def build_evaluator(cls, cfg, dataset_name, output_folder=None):
            return build_evaluator(cfg, dataset_name, output_folder or str(Path(cfg.OUTPUT_DIR) / "inference"))

    return PlainTrainer


def run_once(kind: str, cfg, out: Path, warmup: int) -> dict:
    import torch
    from detectron2.utils.env import seed_all_rng

    from mocobench.detection.engine import Trainer
    from mocobench.detection.progress import TrialProgress

    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = str(out)
    cfg.freeze()
    seed_all_rng(cfg.SEED)
    torch.manual_seed(cfg.SEED)
    trainer = Trainer(cfg) if kind == "suite" else plain_trainer_class()(cfg)
    if kind == "suite":  # as detection.engine.train_and_evaluate
        trainer.register_hooks([TrialProgress(f"overhead {out.name}")])
    trainer.resume_or_load(resume=False)
    costs = time_hooks(trainer)
    clock = iteration_clock()
    trainer.register_hooks([clock])
    start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - start
    out = {"train_s": total, "iters": len(clock.marks) - 1, "hooks": hook_summary(costs)}
    for key, col in (("", 0), ("cpu_", 1)):
        spans = [b[col] - a[col] for a, b in zip(clock.marks[:-1], clock.marks[1:])]
        steady = statistics.mean(spans[warmup:-1])
        out |= {f"{key}s_per_iter": steady, f"{key}last_iter_extra_s": spans[-1] - steady}
    return out


def compare(cfg, *, rounds: int, warmup: int, tmp: Path, echo=print) -> dict:
    runs: dict[str, list[dict]] = {"suite": [], "plain": []}
    for r in range(rounds):
        for kind in (("suite", "plain") if r % 2 == 0 else ("plain", "suite")):
            runs[kind].append(run_once(kind, cfg, tmp / f"{kind}{r}", warmup))
            last = runs[kind][-1]
            echo(f"  round {r + 1} {kind:<5} {last['s_per_iter']:.4f} s/iter (CPU {last['cpu_s_per_iter']:.4f}), "
                 f"last iteration's extra {last['last_iter_extra_s']:.1f} s")
    fields = ("s_per_iter", "last_iter_extra_s", "cpu_s_per_iter", "cpu_last_iter_extra_s", "train_s")
    med = {k: {f: statistics.median(x[f] for x in v) for f in fields} for k, v in runs.items()}
    pct = lambda f: 100 * (med["suite"][f] / med["plain"][f] - 1)  # noqa: E731
    hooks = {k: {h: {f: statistics.median(x["hooks"][h][f] for x in v) for f in v[0]["hooks"][h]}
                 for h in v[0]["hooks"]} for k, v in runs.items()}
    return {"median": med, "hooks": hooks, "rounds": runs, "overhead_s_per_iter_pct": pct("s_per_iter"),
            "overhead_cpu_s_per_iter_pct": pct("cpu_s_per_iter"), "overhead_train_pct": pct("train_s")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocobench.benchmarks.perf.detection_overhead",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="comma-separated benchmark names")
    parser.add_argument("--iters", type=int, default=40, help="SOLVER.MAX_ITER of each run (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="first iterations left out of s/iter (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each trainer, interleaved (default 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--eval", action="store_true", help="also evaluate at the end (outside s/iter; slow)")
    parser.add_argument("--synthetic-root", default="output/synthetic", help="the built-in data's folder")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here (never overwritten)")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.exists():
        parser.error(f"{args.out} exists; choose a new file name (results are never overwritten)")
    if args.iters < args.warmup + 2 or args.rounds < 1:
        parser.error("--iters must exceed --warmup by at least 2, and --rounds be at least 1")
    import torch

    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in (n.strip() for n in args.benchmarks.split(",") if n.strip()):
            cfg, _, ran = trial_config(name, device=args.device, iters=args.iters, output_dir=Path(tmp),
                                       synthetic_root=args.synthetic_root, evaluate=args.eval)
            print(f"{name} (runs {ran}): {args.iters} iterations, {args.rounds} rounds per trainer, {args.device}",
                  flush=True)
            results[name] = {"benchmark_run": ran, "input_min_size": list(cfg.INPUT.MIN_SIZE_TRAIN),
                             "ims_per_batch": cfg.SOLVER.IMS_PER_BATCH,
                             **compare(cfg, rounds=args.rounds, warmup=args.warmup, tmp=Path(tmp) / name)}
    print(f"\n{'benchmark':<18} {'clock':<5} {'suite s/iter':>12} {'plain s/iter':>12} {'overhead':>9} "
          f"{'suite last+':>11} {'plain last+':>11}")
    for name, r in results.items():
        m = r["median"]
        for clock, key in (("wall", ""), ("CPU", "cpu_")):
            suite, plain, pct = m["suite"], m["plain"], r[f"overhead_{key}s_per_iter_pct"]
            print(f"{name:<18} {clock:<5} {suite[key + 's_per_iter']:>12.4f} {plain[key + 's_per_iter']:>12.4f} "
                  f"{pct:>8.1f}% {suite[key + 'last_iter_extra_s']:>11.2f} {plain[key + 'last_iter_extra_s']:>11.2f}")
    for name, r in results.items():
        for kind in ("suite", "plain"):
            parts = [f"{h} {c['ms_per_iter']:.2f} ms/iter" + (f", last {c['last_iter_s']:.2f} s" if c["last_iter_s"]
                     > 0.05 else "") + (f", after_train {c['after_train_s']:.2f} s" if c["after_train_s"] > 0.05
                                         else "") for h, c in r["hooks"][kind].items()]
            print(f"{name} {kind} hooks: " + "; ".join(parts))
    print("last+: the last iteration's extra seconds (PreciseBN, the final checkpoint); CPU: this process's CPU time "
          "(loader workers not counted)")
    if args.out is not None:
        doc = {"benchmark": "detection_overhead", "device": args.device, "threads": args.threads,
               "iters": args.iters, "warmup": args.warmup, "rounds": args.rounds, "results": results,
               "clock": "time.perf_counter (wall) and time.process_time (this process's CPU)",
               "provenance": collect_provenance()}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, json.dumps(doc, indent=1), overwrite=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
