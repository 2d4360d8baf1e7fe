"""Scale-out through submitit: the per-node commands, and a real job through submitit's local executor."""
from __future__ import annotations

import json
import pickle
import shlex
from pathlib import Path

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


# ---------------------------------------------------------------- planning before submitting (a login node)
def _documented_submits(doc: str) -> list[list[str]]:
    """The `python -m mocobench.pretrain submit` commands of a docs page, as argv after the module name."""
    text = (Path(__file__).resolve().parents[2] / "docs" / doc).read_text().replace("\\\n", " ")
    return [shlex.split(line.split("#")[0])[3:] for line in text.splitlines()
            if line.strip().startswith("python -m mocobench.pretrain submit")]


def _plan(argv: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """`submit ... --dry-run` with submitit unusable: planning must not touch it (nor a GPU nor the data)."""
    import submitit

    def no_executor(*args, **kwargs):
        raise AssertionError("a plan submitted a job")

    monkeypatch.setattr(submitit, "AutoExecutor", no_executor)
    rc = pretrain_main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_documented_four_by_eight_job_plans_at_world_size_32(capsys, monkeypatch):
    (job,) = [argv for argv in _documented_submits("scale-out.md") if "--nodes" in argv and
              argv[argv.index("--nodes") + 1] == "4"]
    rc, out, err = _plan([*job[:1], "--dry-run", *job[1:]], capsys, monkeypatch)
    assert rc == 0, err
    assert "4 node(s) x 8 process(es) = world size 32" in out
    assert "global batch 1024 = 32 processes x 32 images" in out and "lr 0.12 = optim.lr 0.03 x 1024" in out
    assert "queue K=65536 = 64 global batches" in out
    assert "32 BN groups of 32 images (one per process, as the official DDP code; moco.bn_groups=8)" in out
    assert "not checked here (the nodes read them): the GPUs, data.path=/data/imagenet/train" in out
    nodes = [line for line in out.splitlines() if line.startswith("node ")]
    assert len(nodes) == 4 and all(f"--node_rank={n} " in line and "--nnodes=4 --nproc_per_node=8" in line
                                   for n, line in enumerate(nodes))
    assert all("train --resume auto --config moco_v2" in line for line in nodes)
    assert out.rstrip().endswith("dry run: nothing submitted")


def test_every_documented_pretraining_submit_plans(capsys, monkeypatch):
    jobs = [job for doc in ("scale-out.md", "cluster-and-ddp.md") for job in _documented_submits(doc)]
    assert len(jobs) >= 3
    for job in jobs:
        rc, out, err = _plan([*job[:1], "--dry-run", *job[1:]], capsys, monkeypatch)
        assert rc == 0 and "dry run: nothing submitted" in out, (job, err)


def test_two_by_eight_plans_bn_per_process_and_impossible_jobs_are_refused_in_one_line(capsys, monkeypatch):
    base = ["submit", "--dry-run", "--partition", "P", "--", "--config", "moco_v2", "data.path=/data/in"]
    two = ["--nodes", "2", "--gpus-per-node", "8"]
    rc, out, _ = _plan([*base[:2], *two, *base[2:]], capsys, monkeypatch)
    assert rc == 0 and "world size 16: global batch 256 = 16 processes x 16 images" in out
    assert "16 BN groups of 16 images (one per process" in out and "lr 0.03 = " in out
    for cluster, args, message in [
        (two, ["optim.batch_size=1000"], "optim.batch_size=1000 (global) is not divisible by the 16 processes: "
                                         "choose a multiple of 16, e.g. optim.batch_size=992 or 1008"),
        (["--nodes", "4", "--gpus-per-node", "8"], ["optim.batch_size=768"],
         "the queue size K=65536 is not divisible by the global batch size 768"),
        (two, ["--bogus"], "the training arguments after --: unrecognized arguments: --bogus"),
    ]:
        for dry in (True, False):  # a real submission checks the same, before anything is queued
            argv = [*base[:1], *(["--dry-run"] if dry else []), *cluster, *base[2:], *args]
            rc, out, err = _plan(argv, capsys, monkeypatch)
            assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
            assert message in err and "node 0" not in out, (argv, err)
