"""`python -m mocobench.pretrain submit`: the same training, sent through submitit (SLURM or local).

One task per node runs torchrun, which starts one process per GPU; the nodes meet through torchrun's
c10d rendezvous on the first node. The job always trains with `--resume auto`, so a requeued job (after
preemption or timeout, see common/cluster.py) continues from the run's latest checkpoint. Each process
gets --cpus-per-gpu cores and, unless the command line sets data.workers, as many loader workers less one
(the core of the training process itself).
"""
from __future__ import annotations

from dataclasses import dataclass

from mocobench.common.cluster import ClusterSpec, NodeCommand, Rendezvous, python, submit


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


def submit_training(train_args: list[str], spec: ClusterSpec, *, procs_per_node: int | None = None,
                    name: str = "mocobench-pretrain"):
    """Submit `python -m mocobench.pretrain train TRAIN_ARGS` on spec.nodes x spec.gpus_per_node processes, each
    with spec.cpus_per_gpu cores and (unless TRAIN_ARGS set data.workers) that many loader workers less one."""
    procs = spec.procs(procs_per_node)
    build = TrainOnNode(tuple(train_args), procs, workers=max(1, spec.process_cpus(procs) - 1))
    return submit(NodeCommand(build), spec, name=name, procs_per_node=procs)
