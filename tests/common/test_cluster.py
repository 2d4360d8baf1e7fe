"""Cluster jobs (common/cluster.py): the rendezvous port comes from the job id, so two jobs whose first node is
the same machine do not collide; the cores asked scale with the GPUs, and pretraining sizes its loader workers
from them. The job environment is submitit's, faked here as SLURM would fill it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from mocobench.common import cluster
from mocobench.common.cluster import ClusterSpec, NodeCommand, executor_parameters, job_port, rendezvous
from mocobench.pretrain.__main__ import main as pretrain_main
from mocobench.pretrain.submit import TrainOnNode
from mocobench.runner.submit import split_job_argv


class FakeJobEnvironment:
    """What submitit.JobEnvironment() reads from SLURM's variables on one node of a job."""

    def __init__(self, job_id: str, node: int, nodes: int = 2) -> None:
        self.job_id, self.node, self.num_nodes = job_id, node, nodes
        self.hostnames = ["node-a", "node-b"][:nodes]


def _on_node(monkeypatch, job_id: str, node: int):
    import submitit

    monkeypatch.setattr(submitit, "JobEnvironment", lambda: FakeJobEnvironment(job_id, node))
    return rendezvous()


def test_the_rendezvous_port_is_the_jobs_on_every_node_and_another_jobs_differs(monkeypatch):
    ports = {(job, node): _on_node(monkeypatch, job, node).port for job in ("4242", "4243") for node in (0, 1)}
    assert ports[("4242", 0)] == ports[("4242", 1)] and ports[("4243", 0)] == ports[("4243", 1)]
    assert ports[("4242", 0)] != ports[("4243", 0)]  # two jobs on the same first node (node-a)
    assert all(1024 < p < 32768 for p in ports.values())  # not privileged, below Linux's ephemeral range
    # SLURM gives ids out in order: thousands of consecutive jobs (and array tasks) never share a port
    assert len({job_port(str(i)) for i in range(880_000, 890_000)}) == 10_000
    assert len({job_port(f"77_{t}") for t in range(500)}) == 500
    assert job_port("77_3") != job_port("77_4")


def test_a_non_numeric_job_id_gets_the_same_port_in_every_process():
    """Every node computes the port on its own: it must not depend on the process (Python's hash() does)."""
    code = "from mocobench.common.cluster import job_port; print(job_port('local-job-xyz'))"
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout.strip() for seed in ("1", "2")}
    assert seen == {str(job_port("local-job-xyz"))}


@pytest.mark.parametrize("node", [0, 1])
def test_each_nodes_launcher_gets_the_jobs_port(node, monkeypatch):
    """From the job environment to the command each node runs: torchrun's c10d endpoint (pretraining) and
    Detectron2's --dist-url (the runner) carry the job's port."""
    import submitit

    monkeypatch.setattr(submitit, "JobEnvironment", lambda: FakeJobEnvironment("555123", node))
    ran = []
    monkeypatch.setattr(cluster.subprocess, "run", lambda argv, **kw: ran.append(argv))
    port = job_port("555123")
    NodeCommand(TrainOnNode(("--config", "moco_v2"), 8))()
    NodeCommand(split_job_argv(["voc-det", "--weights", "random", "--submit", "--nodes", "2"])[1])()
    torchrun, runner = ran
    assert f"--rdzv_endpoint=node-a:{port}" in torchrun and f"--node_rank={node}" in torchrun
    assert runner[runner.index("--dist-url") + 1] == f"tcp://node-a:{port}"
    assert runner[runner.index("--machine-rank") + 1] == str(node)


def test_cores_are_asked_per_gpu():
    eight = ClusterSpec(nodes=2, gpus_per_node=8)
    assert executor_parameters(eight, "j")["cpus_per_task"] == 80  # one task per node: 8 processes x 10 cores
    assert executor_parameters(ClusterSpec(gpus_per_node=8, cpus_per_gpu=6), "j")["cpus_per_task"] == 48
    assert executor_parameters(ClusterSpec(gpus_per_node=8, cpus_per_task=64), "j")["cpus_per_task"] == 64
    assert executor_parameters(ClusterSpec(gpus_per_node=0, local=True), "j", procs_per_node=2)["cpus_per_task"] == 20
    assert ClusterSpec(gpus_per_node=8, cpus_per_task=64).process_cpus() == 8
    with pytest.raises(ValueError, match="--cpus-per-gpu and --cpus-per-task must be >= 1"):
        ClusterSpec(cpus_per_gpu=0).check()


class FakeExecutor:
    """submitit.AutoExecutor as the submission sees it: the parameters it is given and the job it submits."""
    seen: list = []

    def __init__(self, folder, cluster=None) -> None:
        self.params: dict = {}

    def update_parameters(self, **params) -> None:
        self.params.update(params)

    def submit(self, command):
        FakeExecutor.seen.append((self.params, command))
        return type("Job", (), {"job_id": "1"})()


@pytest.mark.parametrize("cli,workers", [
    (["--cpus-per-gpu", "12"], "11"),                     # 12 cores per process: 11 workers and the trainer
    ([], "9"),                                            # the default 10 cores per GPU
    (["--", "data.workers=3"], "3"),                      # the user's choice stays
    (["--", "--opts", "data.workers", "3"], "3"),
])
def test_submitted_pretraining_sizes_cores_and_loader_workers_per_gpu(cli, workers, monkeypatch, tmp_path):
    import submitit

    monkeypatch.setattr(submitit, "AutoExecutor", FakeExecutor)
    FakeExecutor.seen = []
    cluster_args, train_args = (cli, []) if "--" not in cli else (cli[:cli.index("--")], cli[cli.index("--") + 1:])
    argv = ["submit", "--nodes", "2", "--gpus-per-node", "8", "--slurm-folder", str(tmp_path), *cluster_args,
            "--", "--config", "moco_v2", "data.path=/data/in", *train_args]
    assert pretrain_main(argv) == 0
    ((params, command),) = FakeExecutor.seen
    per_gpu = int(cluster_args[1]) if cluster_args else 10
    assert params["cpus_per_task"] == 8 * per_gpu and params["tasks_per_node"] == 1
    cmd = command.build(cluster.Rendezvous(node=0, nodes=2, host="h", port=20001, job_id="1"))
    # the node's `train` arguments through the real CLI, with the trainer replaced by one that keeps the config
    from mocobench.pretrain import trainer

    configs = []

    class KeepConfig:
        def __init__(self, cfg, resume=None) -> None:
            configs.append(cfg)

        def train(self) -> None:
            pass

    monkeypatch.setattr(trainer, "Trainer", KeepConfig)
    assert pretrain_main(cmd[cmd.index("mocobench.pretrain") + 1:]) == 0
    assert str(configs[0].data.workers) == workers and configs[0].data.path == "/data/in"
