"""`python -m mocobench run`: fine-tune and evaluate one benchmark (detection or segmentation) for N trials.

    python -m mocobench run voc0712-det-c4 --weights output/pretrain/moco_v2_demo --trials 5
    python -m mocobench run voc-det --weights RUN_DIR --weights sup.pth --weights random   # make voc-det
    python -m mocobench run coco-mask-fpn-1x --weights R-50.pkl --msra --num-gpus 8
    python -m mocobench run coco-mask-fpn-1x --weights RUN_DIR --submit --nodes 4 --gpus-per-node 8 --partition P

Per initialisation (--weights, repeatable) and trial: resolve the config (benchmark YAML + init
delta + synthetic-demo delta + --opts), apply the fewer-GPU scaling rule (runner.plan), launch Detectron2
training and evaluation (runner.trial), and write one result record (mocobench.records).
A trial with a record is never re-run; an interrupted trial resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from mocobench.common.cluster import RDZV_PORT, Rendezvous, add_cluster_arguments
from mocobench.common.config import split_overrides
from mocobench.common.errors import UsageError
from mocobench.common.logs import cli_logging
from mocobench.data.datasets import register_builtin
from mocobench.data.declarations import declare, resolve_dataset
from mocobench.detection.config import DEFAULT_NORM, NORMS
from mocobench.pretrain.checkpoint import latest_checkpoint
from mocobench.records import INIT_KINDS
from mocobench.runner import RunnerError
from mocobench.runner.benchmarks import ALIASES, BENCHMARKS, resolve_benchmark
from mocobench.runner.parallel import auto_jobs, run_parallel
from mocobench.runner.plan import data_mode, plan_trial
from mocobench.runner.submit import check_not_submitted, split_job_argv, submit_run
from mocobench.runner.trial import run_trial
from mocobench.runner.weights import resolve_init

__all__ = ["add_arguments", "data_mode", "main", "resolve_benchmark"]  # the Makefile uses the last two
log = logging.getLogger(__name__)

# Trials per initialisation on the built-in data: at least 2, so that the demo tables show a trial std
# next to each mean and a difference between initialisations can be told from noise.
DEMO_TRIALS = 2
BANNER = """
################################################################################################
#  BUILT-IN SYNTHETIC DATA ({what})
#  No real dataset was found under DETECTRON2_DATASETS, so this run fine-tunes a ResNet-18 on
#  small synthetic scenes with a short schedule. The numbers test the pipeline end to end and
#  compare initialisations on toy data; they are NOT the paper's benchmark and are recorded
#  under "<benchmark>-synthetic". For the real protocol, set DETECTRON2_DATASETS (see README).
################################################################################################"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", help=f"one of {', '.join(BENCHMARKS)}; aliases "
                                          f"{', '.join(f'{a}={b}' for a, b in ALIASES.items())}")
    parser.add_argument("--weights", action="append", required=True, metavar="SPEC",
                        help="repeatable, one initialisation each: a pretraining output folder (latest checkpoint), "
                             "a checkpoint (.pth/.pth.tar; converted and proven, cached in OUTPUT_DIR/converted), "
                             "a Detectron2 .pkl, or 'random'")
    parser.add_argument("--label", help="table row name (one --weights only); default from the folder/file and epoch")
    parser.add_argument("--kind", choices=INIT_KINDS, help="init kind (one --weights only); default detected")
    parser.add_argument("--format", default="auto", metavar="LAYOUT",
                        help="checkpoint layout of the --weights file (one --weights only), for a file that fits two; "
                             "default: detect it (python -m mocobench.detection.convert --list-formats)")
    parser.add_argument("--msra", action="store_true",
                        help="the .pkl is MSRA caffe-format supervised (BGR, std 1, stride in 1x1)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="skip (loudly) --weights that do not exist instead of failing (make targets use it "
                             "for optional baselines)")
    parser.add_argument("--trials", type=int, default=None,
                        help=f"number of trials (paper: 5), seeds SEED+trial; default 1 on real data, "
                             f"{DEMO_TRIALS} on the built-in data (the demo shows a std)")
    parser.add_argument("--first-trial", type=int, default=0, help="index of the first trial (to add trials)")
    parser.add_argument("--seed", type=int, default=1000, help="seed of trial 0")
    user = parser.add_argument_group("your own data set (generic benchmarks det-fpn, det-c4, mask-fpn, mask-c4)")
    user.add_argument("--dataset", metavar="NAME|FILE.yaml",
                      help="the data set's name (declared once with --train/--test, stored as "
                           "RESULTS/datasets/NAME.yaml, then named alone) or a YAML file with name, train, test")
    user.add_argument("--train", metavar="SPEC", help="coco:ANNOTATIONS.json:IMAGE_DIR or voc:VOC_ROOT:SPLIT "
                                                      "(or voc:VOC_ROOT: every XML, with --test holdout:F)")
    user.add_argument("--test", metavar="SPEC", help="the evaluation split, in the same format as --train, or "
                                                     "holdout:FRACTION[:SEED] to hold it out of --train (e.g. "
                                                     "holdout:0.2; split files under RESULTS/datasets/NAME/)")
    user.add_argument("--epochs", type=float, default=None,
                      help="schedule in epochs over the annotated train images (default 12, about COCO's 1x); "
                           "MAX_ITER = ceil(epochs x images / 16) before the scaling rule")
    parser.add_argument("--data", choices=["auto", "real", "synthetic"], default="auto",
                        help="auto: the real datasets when present under DETECTRON2_DATASETS, else built-in data")
    parser.add_argument("--synthetic-root", default="output/synthetic")
    parser.add_argument("--synthetic-preset", default="demo", help="built-in data preset (demo | small | tiny)")
    parser.add_argument("--num-gpus", type=int, default=None, help="GPUs per machine (default: all visible; 0 = CPU)")
    parser.add_argument("--num-procs", type=int, default=None,
                        help="processes per machine: one per GPU (the default, and the only choice with GPUs); with "
                             "--num-gpus 0, N gloo processes on this machine's CPU, each with cores/N threads (the "
                             "multi-GPU code path, tested without GPUs; docs/multi-gpu-trials.md)")
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0)
    parser.add_argument("--dist-url", default="auto", help="tcp://HOST:PORT of machine 0 for multi-machine runs")
    parser.add_argument("--ims-per-gpu", type=int, default=2,
                        help="most images one GPU takes (protocol: 8 GPUs x 2). With fewer GPUs the batch, lr and "
                             "schedule are scaled (recorded); e.g. 1 GPU with --ims-per-gpu 8 gives the official "
                             "advice (batch 8, lr 0.01, 2x iterations)")
    parser.add_argument("--norm", choices=NORMS, default=None,
                        help=f"backbone (and FPN) norm; default {DEFAULT_NORM}, as the official MoCo detection "
                             f"configs. SyncBN is the named variant (the paper's wording); recorded in the protocol, "
                             f"so the two are never averaged or tabulated together")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only); recorded in the protocol")
    parser.add_argument("--results", default="results", help="folder of the result records")
    parser.add_argument("--output-dir", default="output/benchmarks",
                        help="trial folders (checkpoints, logs) and converted weights")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep intermediate model_NNNN.pth files")
    parser.add_argument("--verbose", action="store_true",
                        help="print Detectron2's full log (model structure, every logged iteration, evaluator tables) "
                             "instead of a progress bar per trial; it is in each trial's log.txt either way")
    parser.add_argument("--jobs", type=int, default=None,
                        help="CPU runs: trials at once, each in its own process with cores/N threads (default: 2 on "
                             "the built-in data with >= 2 cores, else 1)")
    parser.add_argument("--dry-run", action="store_true", help="resolve and print the plan, train nothing")
    parser.add_argument("--submit", action="store_true",
                        help="send this same command through submitit (SLURM, or --local) on --nodes x "
                             "--gpus-per-node, requeued on preemption/timeout (finished trials are skipped, an "
                             "interrupted one resumes); --num-gpus/--num-machines/--machine-rank/--dist-url are "
                             "then set per node")
    parser.add_argument("--wait", action="store_true", help="with --submit: wait for the job and fail if it fails")
    add_cluster_arguments(parser)
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="config overrides KEY VALUE or KEY=VALUE ... (last on the command line), e.g. "
                             "--opts SOLVER.MAX_ITER 50")


def check_num_procs(num_procs: int | None, *, num_gpus: int) -> int:
    """--num-procs: one process per GPU with GPUs; any count >= 1 on a CPU (default 1)."""
    if num_procs is None:
        return max(num_gpus, 1)
    if num_procs < 1:
        raise RunnerError(f"--num-procs {num_procs}: give 1 or more processes")
    if num_gpus > 0 and num_procs != num_gpus:
        raise RunnerError(f"--num-procs {num_procs} with --num-gpus {num_gpus}: with GPUs a trial runs one process "
                          f"per GPU; drop --num-procs (or use --num-gpus 0 for CPU processes)")
    return num_procs


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # third-party loggers
    cli_logging()
    try:
        return _main(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    import torch

    argv = getattr(args, "argv", None)  # the command line after `run` (set by `python -m mocobench`)
    job = None
    if args.submit:
        if argv is None:
            raise RunnerError("--submit needs the command line: run it as `python -m mocobench run ... --submit`")
        job, preview = split_job_argv(argv), args.dry_run
        # plan every trial here, as a dry run on the job's devices: bad input fails now, not in the queue
        cluster = job[0]
        args.num_gpus, args.num_machines, args.dry_run = cluster.gpus_per_node, cluster.nodes, True
        log.info(f"--submit: planning the job's trials here ({cluster.nodes} node(s) x {cluster.gpus_per_node} GPU(s)) "
                 f"before submitting it")
    elif argv is not None:
        check_not_submitted(argv)
    args.opts = [text for pair in split_overrides(args.opts or []) for text in pair]  # KEY VALUE ...
    if args.num_gpus is None:
        args.num_gpus = torch.cuda.device_count()
    if job is None and args.num_gpus > torch.cuda.device_count():  # a job's GPUs are on its nodes
        raise RunnerError(f"--num-gpus {args.num_gpus} but {torch.cuda.device_count()} CUDA devices are visible "
                          f"(use --num-gpus 0 for CPU)")
    if args.amp and args.num_gpus == 0:
        raise RunnerError("--amp needs CUDA (Detectron2's AMPTrainer); drop --amp on CPU")
    if args.num_gpus == 0 and args.num_machines > 1:
        raise RunnerError("multi-machine runs need GPUs")
    args.num_procs = check_num_procs(args.num_procs, num_gpus=args.num_gpus)
    if (args.label or args.kind or args.format != "auto") and len(args.weights) > 1:
        raise RunnerError("--label/--kind/--format apply to a single --weights; run once per initialisation")
    if (args.trials is not None and args.trials < 1) or args.first_trial < 0:
        raise RunnerError("--trials must be >= 1 and --first-trial >= 0")
    bench = resolve_benchmark(args.benchmark)
    dataset = None
    if bench.epochs is not None:  # a generic benchmark: the user's data set, checked (and declared) first
        if not args.dataset:
            raise RunnerError(f"{bench.name} runs on your own data set: give --dataset NAME --train SPEC --test "
                              f"SPEC (SPEC: coco:ANNOTATIONS.json:IMAGE_DIR or voc:VOC_ROOT:SPLIT; --test "
                              f"holdout:0.2 holds the test split out of --train), or "
                              f"--dataset NAME once declared")
        if args.data == "synthetic":
            raise RunnerError(f"{bench.name} runs on --dataset; --data synthetic is for the paper's benchmarks")
        dataset = resolve_dataset(args.dataset, args.train, args.test, args.results)
        synthetic = False
    elif args.dataset or args.train or args.test or args.epochs is not None:
        raise RunnerError(f"--dataset/--train/--test/--epochs are for the generic benchmarks (det-fpn, det-c4, "
                          f"mask-fpn, mask-c4); {bench.name} has its own data sets")
    else:
        synthetic = data_mode(bench, args.data)
        demo = resolve_benchmark(args.benchmark, builtin_data=synthetic)
        if demo is not bench:
            bench = demo
            log.info(f"built-in data: {args.benchmark} runs its demo benchmark {bench.name} ({bench.title}); "
                     f"see detection/benchmarks.py DEMO_ALIASES")
    if args.trials is None:
        args.trials = DEMO_TRIALS if synthetic else 1
    data = {"synthetic": synthetic, "root": args.synthetic_root, "preset": args.synthetic_preset,
            "user": dataset.to_dict() if dataset else None}
    if synthetic:
        print(BANNER.format(what=f"preset {args.synthetic_preset!r} in {args.synthetic_root}"), flush=True)
    register_builtin(data)
    num_devices = args.num_procs * args.num_machines  # one process per device (a GPU, or a CPU process)
    cache = Path(args.output_dir) / "converted"
    inits = []
    for spec in args.weights:
        p = Path(spec)
        absent = not p.exists() or (p.is_dir() and latest_checkpoint(p) is None)
        if spec != "random" and absent and args.skip_missing:
            log.warning(f"\n!!! --weights {spec}: no such file or no checkpoint in it: SKIPPED (baseline not "
                        f"available) !!!\n")
            continue
        inits.append(resolve_init(spec, cache_dir=cache, label=args.label, kind=args.kind, msra=args.msra,
                                  fmt=args.format))
    labels = [i.label for i in inits]
    if len(set(labels)) != len(labels):
        raise RunnerError(f"two initialisations share a label: {labels}; pass them in separate runs with --label")
    plans = [plan_trial(bench, init, trial, args=args, synthetic=synthetic, num_devices=num_devices, dataset=dataset)
             for init in inits for trial in range(args.first_trial, args.first_trial + args.trials)]
    if dataset is not None and not args.dry_run:
        declare(dataset, args.results)  # every check passed and every trial is planned
    jobs = auto_jobs(args.jobs, synthetic=synthetic, num_gpus=args.num_gpus, trials=len(plans),
                     num_procs=args.num_procs)
    for plan in plans:
        sc = plan.protocol["scaling"]
        if sc["applied"]:
            log.info(f"scaling rule applied ({num_devices} devices < {sc['reference']['gpus']}): "
                     f"{sc['reference']} -> {sc['result']}")
        if args.dry_run:
            log.info(f"dry run: {plan.benchmark} / {plan.init.label} trial {plan.trial} seed {plan.seed} -> "
                     f"{plan.record_path} (max_iter {plan.cfg.SOLVER.MAX_ITER}, "
                     f"batch {plan.cfg.SOLVER.IMS_PER_BATCH})")
    if args.dry_run:
        written = []
    elif jobs > 1:
        written = run_parallel(plans, args=args, data=data, jobs=jobs)
    else:
        written = [path for plan in plans if (path := run_trial(plan, args=args, data=data))]
    if job is not None and preview:  # --submit --dry-run: what each node would run; nothing submitted
        for node in range(cluster.nodes):
            print(shlex.join(job[1](Rendezvous(node, cluster.nodes, "FIRST_NODE", RDZV_PORT, "JOB_ID"))), flush=True)
        return 0
    if job is not None:
        return submit_run(*job)
    if synthetic:
        print(BANNER.format(what="the numbers above come from it"), flush=True)
    log.info(f"{len(written)} record(s) written under {args.results}")
    return 0
