"""Scale-out through submitit: the per-node commands, and a real job through submitit's local executor."""
from __future__ import annotations

import json
import pickle

import pytest

from mocobench.common.cluster import ClusterSpec, NodeCommand, Rendezvous
from mocobench.pretrain import checkpoint as ckpt_lib
from mocobench.pretrain.__main__ import main as pretrain_main
from mocobench.pretrain.submit import TrainOnNode, with_auto_resume
from tests.helpers.pretrain import make_imagefolder, tiny_overrides


def test_four_nodes_of_eight_gpus_meet_through_torchrun_rendezvous():
    build = TrainOnNode(("--config", "moco_v2", "data.path=/data/in"), 8)
    cmds = [build(Rendezvous(node=n, nodes=4, host="node-a", port=29500, job_id="77")) for n in range(4)]
    for n, cmd in enumerate(cmds):
        assert cmd[1:3] == ["-m", "torch.distributed.run"]
        assert {"--nnodes=4", "--nproc_per_node=8", f"--node_rank={n}", "--rdzv_backend=c10d",
                "--rdzv_endpoint=node-a:29500", "--rdzv_id=77"} <= set(cmd)
        assert cmd[-8:] == ["-m", "mocobench.pretrain", "train", "--resume", "auto", "--config", "moco_v2",
                            "data.path=/data/in"]
    one = TrainOnNode(("--config", "demo"), 1)(Rendezvous(node=0, nodes=1, host="h", port=1, job_id="1"))
    assert one[1:] == ["-m", "mocobench.pretrain", "train", "--resume", "auto", "--config", "demo"]  # no torchrun


def test_requeue_resubmits_the_same_resuming_command():
    cmd = NodeCommand(TrainOnNode(tuple(with_auto_resume(["--config", "demo"])), 8))
    again = cmd.checkpoint()
    assert isinstance(again.function, NodeCommand)
    r = Rendezvous(node=1, nodes=2, host="h", port=29500, job_id="9")
    assert again.function.build(r) == cmd.build(r) and "auto" in cmd.build(r)
    pickle.loads(pickle.dumps(again.function))  # submitit pickles the job
    with pytest.raises(ValueError, match="--resume auto"):
        with_auto_resume(["--resume", "ckpt.pth.tar"])


def test_bad_cluster_spec_is_refused():
    with pytest.raises(ValueError, match="--nodes 1 with --local"):
        ClusterSpec(nodes=2, local=True).check()


def test_submitted_training_runs_and_a_second_submission_resumes(tmp_path):
    """Through submitit's local executor: the job trains; a resubmission (what a requeue runs) continues the run
    from its latest checkpoint and finds it finished."""
    data = make_imagefolder(tmp_path / "data", per_class=4)
    out = tmp_path / "run"
    args = ["submit", "--local", "--gpus-per-node", "0", "--slurm-folder", str(tmp_path / "slurm"), "--wait", "--",
            *tiny_overrides(data, out, "optim.epochs=1")]
    assert pretrain_main(args) == 0
    assert ckpt_lib.latest_checkpoint(out).name == "checkpoint_0000.pth.tar"  # index = last finished epoch (0-based)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["kind"] == "epoch"
    ckpt_bytes = ckpt_lib.latest_checkpoint(out).read_bytes()
    assert pretrain_main(args) == 0  # requeued: resumes, nothing left to do, the checkpoint untouched
    assert ckpt_lib.latest_checkpoint(out).read_bytes() == ckpt_bytes
    after = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert after == log  # the resumed job rewrites no line and drops none
    logs = "".join(p.read_text() for p in (tmp_path / "slurm").glob("*_log.out"))
    assert "nothing to do" in logs or "final checkpoint" in logs
