"""Sending a command to a SLURM cluster (or a local process) through submitit, one task per node.

Each node runs one launcher (torchrun for pretraining, the runner with Detectron2's launch for
detection) that starts one process per GPU; the launchers find each other through the first node
(`rendezvous()`), at a port derived from the job id (`job_port`): the same on every node of a job, different
for two jobs whose first node is the same machine. On preemption or timeout submitit calls
`NodeCommand.checkpoint`, which requeues the same command: the commands resume from their last checkpoint
by themselves (`--resume auto`, the runner's trial folders), so nothing is lost but the steps since that
checkpoint. CPU cores are asked per GPU (`cpus_per_gpu`, one training process per GPU), so a node of
8 GPUs gets 8 x 10 cores by default.

    spec = ClusterSpec(nodes=4, gpus_per_node=8, partition="learnfair", time_min=4320, folder="output/slurm")
    job = submit(NodeCommand(build=my_argv_builder), spec, name="moco")
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import zlib
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)
# rendezvous ports: 20000-31999, below Linux's ephemeral range (32768-60999, where outgoing connections take
# their local ports) and above the usual services
PORT_BASE, PORT_SPAN = 20000, 12000


def job_port(job_id: str) -> int:
    """The first node's rendezvous port for a job, from its id alone: every node of the job computes the same
    port, and jobs sharing a first node get different ones. SLURM ids (12345, array task 12345_7) are numbers,
    given out in order: consecutive ids get consecutive ports (no two of 12000 consecutive jobs collide); any
    other id is hashed (crc32, the same in every process, unlike Python's hash())."""
    numeric = re.fullmatch(r"(\d+)(?:_(\d+))?", job_id)
    key = int(numeric[1]) + int(numeric[2] or 0) if numeric else zlib.crc32(job_id.encode())
    return PORT_BASE + key % PORT_SPAN


@dataclass(frozen=True)
class ClusterSpec:
    nodes: int = 1
    gpus_per_node: int = 8
    partition: str | None = None
    time_min: int = 60 * 72
    folder: str = "output/slurm"
    cpus_per_gpu: int = 10       # CPU cores per training process (one per GPU): its loader workers and itself
    cpus_per_task: int | None = None  # cores per node (one task per node); None: cpus_per_gpu x processes
    mem_gb: int | None = None
    local: bool = False          # submitit's local executor (this machine, one node): tests and dry runs

    def check(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 0 or self.time_min < 1:
            raise ValueError(f"--nodes must be >= 1, --gpus-per-node >= 0 and --time >= 1 minute, got {self}")
        if self.cpus_per_gpu < 1 or (self.cpus_per_task is not None and self.cpus_per_task < 1):
            raise ValueError(f"--cpus-per-gpu and --cpus-per-task must be >= 1, got {self.cpus_per_gpu} and "
                             f"{self.cpus_per_task}")
        if self.local and self.nodes != 1:
            raise ValueError("the local executor runs one node: use --nodes 1 with --local")

    def procs(self, procs_per_node: int | None = None) -> int:
        """Training processes per node: one per GPU unless said otherwise (CPU jobs: at least one)."""
        return procs_per_node or max(1, self.gpus_per_node)

    def node_cpus(self, procs_per_node: int | None = None) -> int:
        """CPU cores the job asks per node: --cpus-per-task if given, else --cpus-per-gpu per process."""
        return self.cpus_per_task or self.cpus_per_gpu * self.procs(procs_per_node)

    def process_cpus(self, procs_per_node: int | None = None) -> int:
        """CPU cores of one training process (at least 1)."""
        return max(1, self.node_cpus(procs_per_node) // self.procs(procs_per_node))


@dataclass(frozen=True)
class Rendezvous:
    """Where this node stands in the job: node rank, node count, and the first node's host."""
    node: int
    nodes: int
    host: str
    port: int
    job_id: str


def rendezvous(port: int | None = None) -> Rendezvous:
    """From submitit's job environment (SLURM variables, or the local executor's); the port: `job_port`."""
    import submitit

    env = submitit.JobEnvironment()
    hosts = env.hostnames or ["127.0.0.1"]
    job_id = str(env.job_id)
    return Rendezvous(node=env.node, nodes=env.num_nodes, host=hosts[0], port=port or job_port(job_id), job_id=job_id)


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


def executor_parameters(spec: ClusterSpec, name: str, procs_per_node: int | None = None) -> dict:
    """What the job asks of submitit: one task per node with the cores of all its processes, GPUs, time..."""
    spec.check()
    params = dict(name=name, nodes=spec.nodes, tasks_per_node=1, cpus_per_task=spec.node_cpus(procs_per_node),
                  timeout_min=spec.time_min)
    if spec.gpus_per_node:
        params["gpus_per_node"] = spec.gpus_per_node
    if not spec.local:
        params["slurm_partition"] = spec.partition
        params["slurm_signal_delay_s"] = 120  # time to requeue before SLURM kills the job
        if spec.mem_gb:
            params["mem_gb"] = spec.mem_gb
    return {k: v for k, v in params.items() if v is not None}


def executor(spec: ClusterSpec, name: str, procs_per_node: int | None = None):
    """A submitit executor for the spec: SLURM (nodes, GPUs, cores, partition, time, requeue) or local."""
    import submitit

    params = executor_parameters(spec, name, procs_per_node)
    ex = submitit.AutoExecutor(folder=spec.folder, cluster="local" if spec.local else None)
    ex.update_parameters(**params)
    return ex


def submit(command: NodeCommand, spec: ClusterSpec, *, name: str, procs_per_node: int | None = None):
    job = executor(spec, name, procs_per_node).submit(command)
    print(f"[cluster] submitted job {job.job_id} ({spec.nodes} node(s) x {spec.gpus_per_node} GPU(s), "
          f"{spec.node_cpus(procs_per_node)} CPU cores per node); logs in {spec.folder}", flush=True)
    return job


def add_cluster_arguments(parser) -> None:
    """--nodes, --gpus-per-node, --partition, --time, --slurm-folder, --cpus-per-gpu, --cpus-per-task, --mem-gb,
    --local."""
    g = parser.add_argument_group("cluster (submitit)")
    g.add_argument("--nodes", type=int, default=1, help="machines (one launcher task each)")
    g.add_argument("--gpus-per-node", type=int, default=8, help="GPUs (= processes) per machine")
    g.add_argument("--partition", default=None, help="SLURM partition")
    g.add_argument("--time", type=int, default=60 * 72, help="time limit in minutes (a timeout requeues the job)")
    g.add_argument("--slurm-folder", default="output/slurm", help="submitit's folder (logs, pickled jobs)")
    g.add_argument("--cpus-per-gpu", type=int, default=10,
                   help="CPU cores per GPU (per training process: its data-loader workers and itself); the job asks "
                        "this x the processes per node")
    g.add_argument("--cpus-per-task", type=int, default=None,
                   help="CPU cores per node, instead of --cpus-per-gpu x processes (one task runs per node)")
    g.add_argument("--mem-gb", type=int, default=None, help="memory per node")
    g.add_argument("--local", action="store_true",
                   help="run here through submitit's local executor instead of SLURM (one node; tests, dry runs)")


def spec_from_args(args) -> ClusterSpec:
    spec = ClusterSpec(nodes=args.nodes, gpus_per_node=args.gpus_per_node, partition=args.partition,
                       time_min=args.time, folder=args.slurm_folder, cpus_per_gpu=args.cpus_per_gpu,
                       cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, local=args.local)
    spec.check()
    return spec


def python() -> str:
    """The interpreter of this process (the job runs the same environment)."""
    return sys.executable
