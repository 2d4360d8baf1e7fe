"""`python -m mocobench.pretrain submit`: the same training, sent through submitit (SLURM or local).

One task per node runs torchrun, which starts one process per GPU; the nodes meet through torchrun's
c10d rendezvous on the first node. The job always trains with `--resume auto`, so a requeued job (after
preemption or timeout, see common/cluster.py) continues from the run's latest checkpoint. Each process
gets --cpus-per-gpu cores and, unless the command line sets data.workers, as many loader workers less one
(the core of the training process itself). Before anything is submitted, `plan_job` checks the config at
the job's world size (pretrain/world.py); `submit --dry-run` stops there and prints each node's command.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from mocobench.common.cluster import ClusterSpec, NodeCommand, Rendezvous, job_port, python, submit
from mocobench.pretrain.config import PretrainConfig
from mocobench.pretrain.world import WorldPlan, data_paths, plan_world


@dataclass(frozen=True)
class TrainOnNode:
    """This node's command: torchrun over the node's processes (plain python for one process on one node)."""
    train_args: tuple[str, ...]  # given --resume auto here if it has no --resume (another --resume is refused)
    procs_per_node: int
    workers: int | None = None   # data.workers per process, unless train_args set it

    def __post_init__(self) -> None:
        args = with_auto_resume(list(self.train_args))
        if self.workers is not None and not sets_key(args, "data.workers"):
            # --opts is argparse's REMAINDER: it stays last, and a KEY VALUE pair at its end joins it
            args += ["data.workers", str(self.workers)] if "--opts" in args else ["--opts", "data.workers",
                                                                                 str(self.workers)]
        object.__setattr__(self, "train_args", tuple(args))

    def __call__(self, r: Rendezvous) -> list[str]:
        train = ["-m", "mocobench.pretrain", "train", *self.train_args]
        if r.nodes == 1 and self.procs_per_node == 1:
            return [python(), *train]
        return [python(), "-m", "torch.distributed.run", f"--nnodes={r.nodes}",
                f"--nproc_per_node={self.procs_per_node}", f"--node_rank={r.node}",
                "--rdzv_backend=c10d", f"--rdzv_endpoint={r.host}:{r.port}", f"--rdzv_id={r.job_id}", *train]


def with_auto_resume(args: list[str]) -> list[str]:
    """Training arguments with `--resume auto` (what a requeued job needs), refusing another --resume."""
    if "--resume" in args:
        value = args[args.index("--resume") + 1] if args.index("--resume") + 1 < len(args) else ""
        if value != "auto":
            raise ValueError(f"a submitted run always resumes with --resume auto (requeue), not --resume {value}")
        return args
    return ["--resume", "auto", *args]


def sets_key(args: list[str], key: str) -> bool:
    """Whether `train` arguments override `key` (as key=value, or as a KEY VALUE pair after --opts)."""
    cut = args.index("--opts") if "--opts" in args else len(args)
    return any(a.startswith(key + "=") for a in args) or key in args[cut + 1:]


def training_on_node(train_args: list[str], spec: ClusterSpec, procs_per_node: int) -> TrainOnNode:
    """Each node's `train` arguments: --resume auto, and (unless TRAIN_ARGS set data.workers) the process's cores
    less one as loader workers."""
    return TrainOnNode(tuple(train_args), procs_per_node, workers=max(1, spec.process_cpus(procs_per_node) - 1))


@dataclass(frozen=True)
class JobPlan:
    """A pretraining job checked before it is queued: the config at nodes x processes (pretrain/world.py)."""
    nodes: int
    procs_per_node: int
    gpus_per_node: int
    cfg: PretrainConfig
    world: WorldPlan

    def lines(self) -> list[str]:
        unchecked = (["the GPUs"] if self.gpus_per_node else []) + data_paths(self.cfg)
        return [f"job: {self.nodes} node(s) x {self.procs_per_node} process(es) = world size "
                f"{self.world.world_size}; config {self.cfg.mode} {self.cfg.arch}, output "
                f"{self.cfg.train.output_dir}",
                *(f"  {line}" for line in self.world.describe(self.cfg)),
                *([f"  not checked here (the nodes read them): {', '.join(unchecked)}"] if unchecked else [])]


def plan_job(cfg: PretrainConfig, spec: ClusterSpec, procs_per_node: int) -> JobPlan:
    """The config at the job's world size (nodes x processes per node); ConfigError (one line) if it cannot run.
    Needs neither a GPU nor the dataset: a login node plans."""
    return JobPlan(spec.nodes, procs_per_node, spec.gpus_per_node, cfg, plan_world(cfg, spec.nodes * procs_per_node))


def print_node_commands(build: TrainOnNode, spec: ClusterSpec) -> None:
    """What each node would run, with the placeholder job id JOB_ID (the real job uses its own id and port)."""
    for node in range(spec.nodes):
        argv = build(Rendezvous(node, spec.nodes, "FIRST_NODE", job_port("JOB_ID"), "JOB_ID"))
        print(f"node {node}: {shlex.join(argv)}", flush=True)


def submit_training(build: TrainOnNode, spec: ClusterSpec, *, procs_per_node: int | None = None,
                    name: str = "mocobench-pretrain"):
    """Submit `python -m mocobench.pretrain train ARGS` (`training_on_node`) on spec.nodes x procs_per_node
    processes."""
    return submit(NodeCommand(build), spec, name=name, procs_per_node=spec.procs(procs_per_node))
