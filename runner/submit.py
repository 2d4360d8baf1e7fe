"""`python -m mocobench run ... --submit`: the same runner command, sent through submitit (SLURM or local).

One task per node runs the runner, which starts one process per GPU through Detectron2's launch; the
nodes meet at the first node (`--num-machines N --machine-rank R --dist-url tcp://FIRST_NODE:PORT`). A
requeued job (preemption or timeout, see common/cluster.py) runs the same command again: trials with a
record are skipped and an interrupted trial resumes from its last Detectron2 checkpoint (runner/trial.py).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from mocobench.common.cluster import (
    ClusterSpec,
    NodeCommand,
    Rendezvous,
    add_cluster_arguments,
    python,
    spec_from_args,
    submit,
)
from mocobench.runner import RunnerError

SET_BY_JOB = ("--num-gpus", "--num-machines", "--machine-rank", "--dist-url")  # from the cluster options


@dataclass(frozen=True)
class RunOnNode:
    """This node's runner command: the user's arguments, then this node's place in the job, then --opts
    (argparse's REMAINDER, so it stays last)."""
    run_args: tuple[str, ...]
    opts: tuple[str, ...]
    gpus_per_node: int

    def __call__(self, r: Rendezvous) -> list[str]:
        node = ["--num-gpus", str(self.gpus_per_node)]
        if r.nodes > 1:  # one machine: Detectron2's launch picks a free local port (--dist-url auto)
            node += ["--num-machines", str(r.nodes), "--machine-rank", str(r.node),
                     "--dist-url", f"tcp://{r.host}:{r.port}"]
        return [python(), "-m", "mocobench", "run", *self.run_args, *node, *self.opts]


@dataclass(frozen=True)
class Job:
    """A run sent through submitit: the cluster spec, each node's runner command, and --wait."""
    cluster: ClusterSpec
    build: RunOnNode
    wait: bool

    @classmethod
    def from_argv(cls, argv: list[str]) -> Job:
        """The job the runner's command line (after `run`, with --submit) describes."""
        return cls(*split_job_argv(argv))


def _cluster_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_cluster_arguments(p)
    p.add_argument("--submit", action="store_true")
    p.add_argument("--wait", action="store_true")
    return p


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _given(options, args: list[str]) -> list[str]:
    return sorted({o for o in options for a in args if a == o or a.startswith(o + "=")})


def split_job_argv(argv: list[str]) -> tuple[ClusterSpec, RunOnNode, bool]:
    """The runner's command line (after `run`) -> the cluster spec, the per-node command, and --wait."""
    cut = argv.index("--opts") if "--opts" in argv else len(argv)
    head, opts = argv[:cut], argv[cut:]
    ns, run_args = _cluster_parser().parse_known_args(head)
    if taken := _given(SET_BY_JOB, run_args):
        raise RunnerError(f"with --submit, {', '.join(taken)}: set on each node from the cluster options; "
                          f"give --nodes N --gpus-per-node G instead")
    try:
        spec = spec_from_args(ns)
    except ValueError as e:
        raise RunnerError(str(e)) from None
    if spec.nodes > 1 and spec.gpus_per_node == 0:
        raise RunnerError("multi-machine runs need GPUs: give --gpus-per-node >= 1 with --nodes > 1")
    return spec, RunOnNode(tuple(run_args), tuple(opts), spec.gpus_per_node), ns.wait


def check_not_submitted(argv: list[str]) -> None:
    """Cluster options without --submit would be silently ignored: refuse them."""
    cut = argv.index("--opts") if "--opts" in argv else len(argv)
    if given := _given(_options(_cluster_parser()) - {"--submit"}, argv[:cut]):
        raise RunnerError(f"{', '.join(given)}: cluster options, used only with --submit (submitit); add --submit "
                          f"or drop them")


def submit_run(spec: ClusterSpec, build: RunOnNode, wait: bool, *, name: str = "mocobench-run") -> int:
    """Submit the per-node runner command (from `split_job_argv`) on the spec's nodes."""
    job = submit(NodeCommand(build), spec, name=name)
    if wait:
        job.result()  # raises if the job failed; its log is in the submitit folder
        print(f"job {job.job_id} finished", flush=True)
    return 0
