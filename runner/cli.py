"""`python -m mocobench run`: fine-tune and evaluate one benchmark (detection or segmentation) for N trials.

    python -m mocobench run voc0712-det-c4 --weights output/pretrain/moco_v2_demo --trials 5
    python -m mocobench run voc-det --weights RUN_DIR --weights sup.pth --weights random   # make voc-det
    python -m mocobench run coco-mask-fpn-1x --weights R-50.pkl --msra --num-gpus 8
    python -m mocobench run coco-mask-fpn-1x --weights RUN_DIR --submit --nodes 4 --gpus-per-node 8 --partition P

Per initialisation (--weights, repeatable) and trial: resolve the config (benchmark YAML + init
delta + synthetic-demo delta + --opts), apply the fewer-GPU scaling rule (runner.plan), launch Detectron2
training and evaluation (runner.trial), and write one result record (mocobench.records).
A trial with a record is never re-run; an interrupted trial resumes from its last checkpoint.

This module only parses: the work is `mocobench.runner.run.run_benchmark(RunRequest)`, which the suite
(`python -m mocobench run suite`) and notebooks call too. Bad input raises a UsageError, which the
dispatcher (`python -m mocobench`) prints as one line with exit status 2.
"""
from __future__ import annotations

import argparse
import logging

from mocobench.common.cluster import add_cluster_arguments
from mocobench.common.logs import cli_logging
from mocobench.detection.config import DEFAULT_NORM, NORMS
from mocobench.records import INIT_KINDS
from mocobench.runner.benchmarks import ALIASES, BENCHMARKS, resolve_benchmark
from mocobench.runner.plan import data_mode
from mocobench.runner.request import RunRequest, request_defaults
from mocobench.runner.run import DEMO_TRIALS, check_num_procs, run_benchmark

__all__ = ["DEMO_TRIALS", "add_arguments", "add_run_options", "check_num_procs", "data_mode", "main",
           "request_from_args", "resolve_benchmark"]  # the Makefile uses the last one and data_mode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", help=f"one of {', '.join(BENCHMARKS)}; aliases "
                                          f"{', '.join(f'{a}={b}' for a, b in ALIASES.items())}; or 'suite': "
                                          f"every benchmark of the paper, then the report card (run suite --help)")
    add_run_options(parser)


class _Supervised(argparse.Action):
    """--supervised SPEC: SPEC joins --weights (in command-line order) and is declared supervised."""

    def __call__(self, parser, namespace, values, option_string=None):
        weights = getattr(namespace, "weights", None)
        if weights is None:  # argparse copies list defaults only for append actions: make our own
            weights = []
        namespace.weights = [*weights, values]
        namespace.supervised = [*(getattr(namespace, "supervised", None) or []), values]


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Every option of `run` but the benchmark: the suite takes the same ones. Each option's default is
    RunRequest's field of the same name (runner/request.py), declared there once."""
    _add_init_options(parser)
    _add_trial_options(parser)
    _add_data_options(parser)
    _add_device_options(parser)
    _add_model_options(parser)
    _add_output_options(parser)
    _add_submit_options(parser)
    parser.add_argument("--opts", nargs=argparse.REMAINDER,
                        help="config overrides KEY VALUE or KEY=VALUE ... (last on the command line), e.g. "
                             "--opts SOLVER.MAX_ITER 50")
    parser.set_defaults(**request_defaults())


def _add_init_options(parser: argparse.ArgumentParser) -> None:
    """The initialisations: --weights (repeatable), --supervised, and what is declared about one."""
    parser.add_argument("--weights", action="append", metavar="SPEC",
                        help="repeatable, one initialisation each: a pretraining output folder (latest checkpoint), "
                             "a checkpoint (.pth/.pth.tar; converted and proven, cached in OUTPUT_DIR/converted), "
                             "a Detectron2 .pkl, or 'random'")
    parser.add_argument("--supervised", action=_Supervised, metavar="SPEC", default=[],
                        help="the supervised baseline's weights, declared (kind supervised): one more initialisation, "
                             "as --weights SPEC --kind supervised, beside any other --weights")
    parser.add_argument("--label", help="table row name (one --weights only); default from the folder/file and epoch")
    parser.add_argument("--kind", choices=INIT_KINDS,
                        help="declare the init kind (one --weights only); default: from evidence in the file (MSRA "
                             "pickle, a classifier stored with the backbone, our own pretraining, MoCo's layouts), "
                             "else 'other'")
    parser.add_argument("--format", metavar="LAYOUT",
                        help="checkpoint layout of the --weights file (one --weights only), for a file that fits two; "
                             "default: detect it (python -m mocobench.detection.convert --list-formats)")
    parser.add_argument("--msra", action="store_true",
                        help="assert that the .pkl is MSRA caffe weights (BGR, std 1, stride in 1x1); refused for any "
                             "other file. Not needed: MSRA/Caffe2 pickles are recognised from their content")
    parser.add_argument("--skip-missing", action="store_true",
                        help="skip (loudly) --weights that do not exist instead of failing (make targets use it "
                             "for optional baselines)")


def _add_trial_options(parser: argparse.ArgumentParser) -> None:
    """How many trials, and their seeds."""
    parser.add_argument("--trials", type=int,
                        help=f"number of trials (paper: 5), seeds SEED+trial; default 1 on real data, "
                             f"{DEMO_TRIALS} on the built-in data (the demo shows a std)")
    parser.add_argument("--first-trial", type=int, help="index of the first trial (to add trials)")
    parser.add_argument("--seed", type=int, help="seed of trial 0")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """A user's data set (generic benchmarks), or the real / built-in data."""
    user = parser.add_argument_group("your own data set (generic benchmarks det-fpn, det-c4, mask-fpn, mask-c4, "
                                     "kp-fpn)")
    user.add_argument("--dataset", metavar="NAME|FILE.yaml",
                      help="the data set's name (declared once with --train/--test, stored as "
                           "RESULTS/datasets/NAME.yaml, then named alone) or a YAML file with name, train, test")
    user.add_argument("--train", metavar="SPEC", help="coco:ANNOTATIONS.json:IMAGE_DIR or voc:VOC_ROOT:SPLIT "
                                                      "(or voc:VOC_ROOT: every XML, with --test holdout:F)")
    user.add_argument("--test", metavar="SPEC", help="the evaluation split, in the same format as --train, or "
                                                     "holdout:FRACTION[:SEED] to hold it out of --train (e.g. "
                                                     "holdout:0.2; split files under RESULTS/datasets/NAME/)")
    user.add_argument("--epochs", type=float,
                      help="schedule in epochs over the annotated train images (default 12, about COCO's 1x); "
                           "MAX_ITER = ceil(epochs x images / 16) before the scaling rule")
    parser.add_argument("--data", choices=["auto", "real", "synthetic"],
                        help="auto: the real datasets when present under DETECTRON2_DATASETS, else built-in data")
    parser.add_argument("--synthetic-root")
    parser.add_argument("--synthetic-preset", help="built-in data preset (demo | small | tiny)")


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    """GPUs, processes and machines, and the images one GPU takes."""
    parser.add_argument("--num-gpus", type=int, help="GPUs per machine (default: all visible; 0 = CPU)")
    parser.add_argument("--num-procs", type=int,
                        help="processes per machine: one per GPU (the default, and the only choice with GPUs); with "
                             "--num-gpus 0, N gloo processes on this machine's CPU, each with cores/N threads (the "
                             "multi-GPU code path, tested without GPUs; docs/multi-gpu-trials.md)")
    parser.add_argument("--num-machines", type=int)
    parser.add_argument("--machine-rank", type=int)
    parser.add_argument("--dist-url", help="tcp://HOST:PORT of machine 0 for multi-machine runs")
    parser.add_argument("--ims-per-gpu", type=int,
                        help="most images one GPU takes. Default: the protocol's batch spread over the GPUs (16 on 8 "
                             "GPUs is 2 each, on 4 GPUs 4 each: with synchronised BN the same computation). Give "
                             "fewer (e.g. when a GPU runs out of memory) and the linear scaling rule divides batch "
                             "and lr and multiplies the iterations (recorded; moco issue 11): 4 GPUs with "
                             "--ims-per-gpu 2 gives batch 8, lr 0.01, 2x iterations")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """Protocol variants recorded with the results: the norm, mixed precision, ViT heads."""
    parser.add_argument("--norm", choices=NORMS,
                        help=f"backbone (and FPN) norm; default {DEFAULT_NORM}, as the official MoCo detection "
                             f"configs. SyncBN is the named variant (the paper's wording); recorded in the protocol, "
                             f"so the two are never averaged or tabulated together")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only); recorded in the protocol")
    parser.add_argument("--vit-heads", type=int, default=None, metavar="N",
                        help="Vision Transformer weights: attention heads (default: the checkpoint's metadata, else "
                             "the standard count for the width; the plan says which; docs/vit.md)")


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where records and trial folders go, what is kept and shown; --dry-run."""
    parser.add_argument("--results", help="folder of the result records")
    parser.add_argument("--output-dir",
                        help="trial folders (checkpoints, logs) and converted weights")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep intermediate model_NNNN.pth files")
    parser.add_argument("--verbose", action="store_true",
                        help="print Detectron2's full log (model structure, every logged iteration, evaluator tables) "
                             "instead of a progress bar per trial; it is in each trial's log.txt either way")
    parser.add_argument("--jobs", type=int,
                        help="CPU runs: trials at once, each in its own process with cores/N threads (default: 2 on "
                             "the built-in data with >= 2 cores, else 1)")
    parser.add_argument("--dry-run", action="store_true", help="resolve and print the plan, train nothing")


def _add_submit_options(parser: argparse.ArgumentParser) -> None:
    """Sending the command through submitit (--submit, --wait, the cluster options)."""
    parser.add_argument("--submit", action="store_true",
                        help="send this same command through submitit (SLURM, or --local) on --nodes x "
                             "--gpus-per-node, requeued on preemption/timeout (finished trials are skipped, an "
                             "interrupted one resumes); --num-gpus/--num-machines/--machine-rank/--dist-url are "
                             "then set per node")
    parser.add_argument("--wait", action="store_true", help="with --submit: wait for the job and fail if it fails")
    add_cluster_arguments(parser)

def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # third-party loggers
    cli_logging()
    run_benchmark(request_from_args(args))
    return 0


def request_from_args(args: argparse.Namespace, **changes) -> RunRequest:
    """The parsed command line as a RunRequest; argv: the command line after `run` (set by `python -m
    mocobench`, which --submit re-runs on each node)."""
    return RunRequest.from_namespace(args, argv=getattr(args, "argv", None), **changes)
