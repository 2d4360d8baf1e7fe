"""`python -m mocobench.pretrain {train,submit,knn,lincls,upgrade}`: MoCo v1/v2 (or supervised) pretraining, its
cluster submission and evaluations, and the checkpoint upgrade.

  python -m mocobench.pretrain train --config demo             # built-in synthetic set, CPU, minutes
  python -m mocobench.pretrain train --config moco_v2 data.path=/data/imagenet/train optim.batch_size=256
  torchrun --nproc_per_node 8 -m mocobench.pretrain train --config moco_v2 data.path=...   # DDP, one node
  python -m mocobench.pretrain train --dry-run --config moco_v2 data.path=...  # the plan: batch, BN groups, lr
  python -m mocobench.pretrain submit --dry-run --nodes 4 --gpus-per-node 8 -- --config moco_v2 data.path=...
  python -m mocobench.pretrain knn --checkpoint CKPT --train DIR --val DIR
  python -m mocobench.pretrain lincls --checkpoint CKPT --train DIR --val DIR
  python -m mocobench.pretrain upgrade OLD NEW    # a checkpoint of ours with numpy RNG state -> plain format
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from mocobench.common.errors import UsageError
from mocobench.common.logs import cli_logging
from mocobench.common.warnings_policy import apply_command_policy

TRAIN_HELP = """Batch and lr: optim.batch_size is the GLOBAL batch (all processes together); each of N processes
gets batch_size/N. The lr follows the linear scaling rule: lr_used = optim.lr * optim.batch_size / optim.base_batch
(the paper: lr 0.03 at batch 256 on 8 GPUs; at batch 1024 use the same optim.lr, the rule gives 0.12).
moco.queue_size must be divisible by the global batch. One process emulates the paper's 8 GPUs with BN over
moco.bn_groups sub-batches and a shuffled key batch (Shuffle BN); under torchrun, each of N processes takes
max(1, bn_groups // N) of them: with N >= bn_groups, BN per process as in the official DDP code. Overrides:
key.sub=value, e.g. optim.epochs=10 train.amp=bf16 (or, last on the command line, --opts optim.epochs 10
train.amp bf16, as for the detection runner). `submit --dry-run` checks a config at a job's world size."""


def _config(args: argparse.Namespace):
    """The resolved config (PretrainConfig) of `train`'s arguments (--config, overrides, --opts, --output-dir)."""
    from mocobench.pretrain.config import load_config

    cfg = load_config(args.config, [*args.overrides, *args.opts])
    if args.output_dir:
        cfg.train.output_dir = args.output_dir
    return cfg


def _train(args: argparse.Namespace) -> int:
    from mocobench.pretrain.distributed import destroy_distributed
    from mocobench.pretrain.trainer import Trainer

    cfg = _config(args)
    if args.dry_run:
        return _plan_training(cfg)
    try:
        Trainer(cfg, resume=args.resume).train()  # under torchrun the trainer joins the process group
    finally:  # finished or failed, each rank shuts its process group down itself (not at interpreter exit)
        destroy_distributed()
    return 0


def _plan_training(cfg) -> int:
    """`train --dry-run`: the config checked at this world size (torchrun's WORLD_SIZE, else 1); nothing trained."""
    import os

    from mocobench.pretrain.world import data_paths, plan_world

    world = int(os.environ.get("WORLD_SIZE", "1"))
    lines = plan_world(cfg, world).describe(cfg)
    if os.environ.get("RANK", "0") != "0":  # under torchrun: printed once
        return 0
    print("\n".join([f"plan: {cfg.mode} {cfg.arch} for {cfg.optim.epochs} epochs -> "
                      f"{cfg.train.output_dir}", *(f"  {line}" for line in lines),
                      f"  not checked here: the device ({cfg.train.device})"
                      + "".join(f", {p}" for p in data_paths(cfg)),
                      "dry run: nothing trained"]), flush=True)
    return 0


class _NodeTrainParser(argparse.ArgumentParser):
    """`train`'s parser for the arguments after `submit ... --`: a mistake is one UsageError line, not usage text."""

    def error(self, message: str):
        raise UsageError(f"the training arguments after --: {message}")


def _submit(args: argparse.Namespace) -> int:
    from mocobench.common.cluster import spec_from_args
    from mocobench.pretrain.submit import plan_job, print_node_commands, submit_training, training_on_node

    train_args = [a for a in args.train_args if a != "--"]
    try:
        spec = spec_from_args(args)
        procs = spec.procs(args.procs_per_node)
        build = training_on_node(train_args, spec, procs)
    except ValueError as e:
        raise UsageError(str(e)) from None
    node_args = _NodeTrainParser(prog="train", add_help=False)
    add_train_arguments(node_args)
    # the whole config at the job's world size, here, before anything is queued (ConfigError: one line, exit 2)
    plan = plan_job(_config(node_args.parse_args(list(build.train_args))), spec, procs)
    print("\n".join(plan.lines()), flush=True)
    if args.dry_run:
        print_node_commands(build, spec)
        print("dry run: nothing submitted", flush=True)
        return 0
    job = submit_training(build, spec, procs_per_node=procs)
    if args.wait:
        job.result()  # raises if the job failed; its log is in the submitit folder
        print(f"job {job.job_id} finished")
    return 0


def _knn(args: argparse.Namespace) -> int:
    import torch

    from mocobench.pretrain import checkpoint as ckpt_lib
    from mocobench.pretrain.knn import knn_top1
    from mocobench.pretrain.lincls import model_from_checkpoint

    ckpt = ckpt_lib.load(args.checkpoint)
    encoder = model_from_checkpoint(ckpt, num_classes=1, arch=args.arch, source=args.checkpoint)
    size = args.image_size or ckpt_lib.stored_setting(ckpt, "data.image_size", 224)
    top1 = knn_top1(encoder, args.train, args.val, image_size=size, device=torch.device(args.device), k=args.k,
                    temperature=args.t, batch_size=args.batch_size, workers=args.workers, limit=args.limit)
    print(json.dumps({"knn_top1": top1, "k": args.k, "t": args.t, "checkpoint": args.checkpoint}))
    return 0


def _lincls(args: argparse.Namespace) -> int:
    from mocobench.pretrain.lincls import LinclsSettings, linear_eval

    s = LinclsSettings(epochs=args.epochs, lr=args.lr, milestones=args.milestones, batch_size=args.batch_size,
                       image_size=args.image_size, workers=args.workers, device=args.device)
    print(json.dumps(linear_eval(args.checkpoint, args.train, args.val, s, arch=args.arch, output=args.output)))
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from mocobench.pretrain.checkpoint import upgrade_legacy

    print(f"wrote {upgrade_legacy(args.old, args.new)}")
    return 0


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="demo", help="YAML file or bundled config name (pretrain/configs/)")
    parser.add_argument("--resume", default=None,
                        help="PATH of a checkpoint, or 'auto' (latest in the output directory)")
    parser.add_argument("--output-dir", default=None, help="shortcut for train.output_dir=...")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides of the config")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="overrides as KEY VALUE pairs (last on the command line), e.g. --opts optim.epochs 10")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")  # third-party loggers
    cli_logging()
    return _run(args)


def build_parser() -> argparse.ArgumentParser:
    """The command line: train, submit, knn, lincls, upgrade (each subcommand added by its own step)."""
    parser = argparse.ArgumentParser(prog="python -m mocobench.pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_submit, _add_evaluations, _add_upgrade):
        add(sub)
    return parser


def _add_train(sub) -> None:
    tr = sub.add_parser("train", help="MoCo or supervised pretraining", description=TRAIN_HELP)
    tr.add_argument("--dry-run", action="store_true",
                    help="check the config at this world size (WORLD_SIZE under torchrun, else 1) and print the plan; "
                         "train nothing (no GPU or dataset needed)")
    add_train_arguments(tr)
    tr.set_defaults(func=_train)


def _add_submit(sub) -> None:
    sm = sub.add_parser("submit", help="the same training through submitit (SLURM; requeued on preemption)",
                        description="python -m mocobench.pretrain submit --nodes 4 --gpus-per-node 8 --partition P "
                                    "--time 4320 -- --config moco_v2 data.path=/data/imagenet/train: one torchrun per "
                                    "node (c10d rendezvous on the first), always --resume auto, so a requeued job "
                                    "continues from the latest checkpoint. Everything after -- goes to `train`. "
                                    "Before submitting, the config is checked at the job's world size (nodes x "
                                    "processes per node): the global batch over the processes, the BN groups, the "
                                    "queue against the global batch, the lr by the scaling rule; a config that "
                                    "cannot run is refused. --dry-run stops after printing each node's command.")
    from mocobench.common.cluster import add_cluster_arguments

    add_cluster_arguments(sm)
    sm.add_argument("--procs-per-node", type=int, default=None,
                    help="training processes per node (default: --gpus-per-node; on CPU, e.g. 2 gloo processes)")
    sm.add_argument("--wait", action="store_true", help="wait for the job and fail if it fails")
    sm.add_argument("--dry-run", action="store_true",
                    help="check the config at the job's world size and print each node's command; submit nothing "
                         "(no GPU or dataset needed: a login node or a laptop)")
    sm.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the arguments of `train`")
    sm.set_defaults(func=_submit)


def _add_evaluations(sub) -> None:
    for name, func, text in (("knn", _knn, "weighted kNN top-1 (k=200, T=0.1) of a checkpoint's backbone"),
                             ("lincls", _lincls, "linear evaluation with a frozen backbone (the paper's protocol)")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--checkpoint", required=True)
        p.add_argument("--train", required=True, help="labelled ImageFolder (train split)")
        p.add_argument("--val", required=True, help="labelled ImageFolder (val split)")
        p.add_argument("--arch", default=None, help="expected arch (checked against the checkpoint)")
        p.add_argument("--image-size", type=int, default=None, help="default: the pretraining image size")
        p.add_argument("--batch-size", type=int, default=256)
        p.add_argument("--workers", type=int, default=4)
        p.add_argument("--device", default="cuda" if _cuda() else "cpu")
        p.set_defaults(func=func)
    sub.choices["knn"].add_argument("--k", type=int, default=200)
    sub.choices["knn"].add_argument("--t", type=float, default=0.1)
    sub.choices["knn"].add_argument("--limit", type=int, default=None,
                                    help="at most N bank and N query images, evenly spread (quick checks)")
    lc = sub.choices["lincls"]
    lc.add_argument("--epochs", type=int, default=100)
    lc.add_argument("--lr", type=float, default=30.0)
    lc.add_argument("--milestones", type=int, nargs="*", default=[60, 80])
    lc.add_argument("--output", default=None, help="write the result as JSON here (never overwritten)")


def _add_upgrade(sub) -> None:
    up = sub.add_parser("upgrade", help="rewrite an old checkpoint of ours (numpy RNG state) in the plain format",
                        description="Checkpoints written before the RNG state was stored as tensors hold numpy "
                                    "objects that weights-only loading refuses. This rewrites one (that you trust: "
                                    "numpy's array reconstructors are allowed for it, nothing else) so that "
                                    "torch.load(NEW, weights_only=True) reads it.")
    up.add_argument("old")
    up.add_argument("new", help="written atomically; never replaces an existing file")
    up.set_defaults(func=_upgrade)


def _run(args: argparse.Namespace) -> int:
    """The chosen subcommand; a usage, data or run error is one line on stderr and exit status 2."""
    from mocobench.pretrain.data import DataError
    from mocobench.pretrain.trainer import RunError

    try:
        return args.func(args)
    except (UsageError, DataError, RunError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":  # (`python -m mocobench pretrain` comes through mocobench/__main__, which applies it too)
    apply_command_policy()  # the command's warnings policy, and its spawned children's (PYTHONWARNINGS)
    sys.exit(main())
