"""Sending a command to a SLURM cluster (or a local process) through submitit, one task per node.

Each node runs one launcher (torchrun for pretraining, the runner with Detectron2's launch for
detection) that starts one process per GPU; the launchers find each other through the first node
(`rendezvous()`). On preemption or timeout submitit calls `NodeCommand.checkpoint`, which requeues the
same command: the commands resume from their last checkpoint by themselves (`--resume auto`, the
runner's trial folders), so nothing is lost but the steps since that checkpoint.

    spec = ClusterSpec(nodes=4, gpus_per_node=8, partition="learnfair", time_min=4320, folder="output/slurm")
    job = submit(NodeCommand(build=my_argv_builder), spec, name="moco")
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)
RDZV_PORT = 29500


@dataclass(frozen=True)
class ClusterSpec:
    nodes: int = 1
    gpus_per_node: int = 8
    partition: str | None = None
    time_min: int = 60 * 72
    folder: str = "output/slurm"
    cpus_per_task: int = 10
    mem_gb: int | None = None
    local: bool = False          # submitit's local executor (this machine, one node): tests and dry runs

    def check(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 0 or self.time_min < 1:
            raise ValueError(f"--nodes must be >= 1, --gpus-per-node >= 0 and --time >= 1 minute, got {self}")
        if self.local and self.nodes != 1:
            raise ValueError("the local executor runs one node: use --nodes 1 with --local")


@dataclass(frozen=True)
class Rendezvous:
    """Where this node stands in the job: node rank, node count, and the first node's host."""
    node: int
    nodes: int
    host: str
    port: int
    job_id: str


def rendezvous(port: int = RDZV_PORT) -> Rendezvous:
    """From submitit's job environment (SLURM variables, or the local executor's)."""
    import submitit

    env = submitit.JobEnvironment()
    hosts = env.hostnames or ["127.0.0.1"]
    return Rendezvous(node=env.node, nodes=env.num_nodes, host=hosts[0], port=port, job_id=str(env.job_id))


class NodeCommand:
    """The picklable job: builds this node's command line from its `Rendezvous` and runs it.

    build(rdzv) -> argv. A non-zero exit fails the job (its log is in the submitit folder). Requeued as is
    on preemption/timeout (submitit's Checkpointable protocol)."""

    def __init__(self, build: Callable[[Rendezvous], list[str]], *, env: dict[str, str] | None = None) -> None:
        self.build = build
        self.env = env or {}

    def __call__(self) -> int:
        rdzv = rendezvous()
        argv = self.build(rdzv)
        log.info("node %d/%d: %s", rdzv.node, rdzv.nodes, " ".join(argv))
        print(f"[cluster] node {rdzv.node}/{rdzv.nodes}: {' '.join(argv)}", flush=True)
        subprocess.run(argv, check=True, env=os.environ | self.env)
        return 0

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption or timeout: requeue the same command (it resumes by itself)."""
        import submitit

        print("[cluster] preempted or out of time: requeued; the command resumes from its last checkpoint",
              flush=True)
        return submitit.helpers.DelayedSubmission(NodeCommand(self.build, env=self.env))


def executor(spec: ClusterSpec, name: str):
    """A submitit executor for the spec: SLURM (nodes, GPUs, partition, time, requeue) or local."""
    import submitit

    spec.check()
    ex = submitit.AutoExecutor(folder=spec.folder, cluster="local" if spec.local else None)
    params = dict(name=name, nodes=spec.nodes, tasks_per_node=1, cpus_per_task=spec.cpus_per_task,
                  timeout_min=spec.time_min)
    if spec.gpus_per_node:
        params["gpus_per_node"] = spec.gpus_per_node
    if not spec.local:
        params["slurm_partition"] = spec.partition
        params["slurm_signal_delay_s"] = 120  # time to requeue before SLURM kills the job
        if spec.mem_gb:
            params["mem_gb"] = spec.mem_gb
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def submit(command: NodeCommand, spec: ClusterSpec, *, name: str):
    job = executor(spec, name).submit(command)
    print(f"[cluster] submitted job {job.job_id} ({spec.nodes} node(s) x {spec.gpus_per_node} GPU(s)); logs in "
          f"{spec.folder}", flush=True)
    return job


def add_cluster_arguments(parser) -> None:
    """--nodes, --gpus-per-node, --partition, --time, --slurm-folder, --cpus-per-task, --mem-gb, --local."""
    g = parser.add_argument_group("cluster (submitit)")
    g.add_argument("--nodes", type=int, default=1, help="machines (one launcher task each)")
    g.add_argument("--gpus-per-node", type=int, default=8, help="GPUs (= processes) per machine")
    g.add_argument("--partition", default=None, help="SLURM partition")
    g.add_argument("--time", type=int, default=60 * 72, help="time limit in minutes (a timeout requeues the job)")
    g.add_argument("--slurm-folder", default="output/slurm", help="submitit's folder (logs, pickled jobs)")
    g.add_argument("--cpus-per-task", type=int, default=10, help="CPU cores per node for the job")
    g.add_argument("--mem-gb", type=int, default=None, help="memory per node")
    g.add_argument("--local", action="store_true",
                   help="run here through submitit's local executor instead of SLURM (one node; tests, dry runs)")


def spec_from_args(args) -> ClusterSpec:
    spec = ClusterSpec(nodes=args.nodes, gpus_per_node=args.gpus_per_node, partition=args.partition,
                       time_min=args.time, folder=args.slurm_folder, cpus_per_task=args.cpus_per_task,
                       mem_gb=args.mem_gb, local=args.local)
    spec.check()
    return spec


def python() -> str:
    """The interpreter of this process (the job runs the same environment)."""
    return sys.executable
