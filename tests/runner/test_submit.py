"""`python -m mocobench run ... --submit`: the per-node runner commands (Detectron2's launch across nodes), the
requeue, bad cluster input, and a real job through submitit's local executor that a resubmission (what a
requeue runs) finds finished: nothing retrained, the record untouched."""
from __future__ import annotations

import json
import pickle

import pytest

from mocobench import records
from mocobench.__main__ import main as cli
from mocobench.common.cluster import NodeCommand, Rendezvous
from mocobench.runner.submit import split_job_argv
from tests.runner.test_runner import TINY

RUN = ["voc-det", "--weights", "random", "--trials", "2"]


def test_four_nodes_of_eight_gpus_meet_at_the_first_node():
    spec, build, wait = split_job_argv([*RUN, "--submit", "--nodes", "4", "--gpus-per-node", "8", "--partition",
                                        "learnfair", "--time=600", "--wait", "--opts", "SOLVER.MAX_ITER", "5"])
    assert (spec.nodes, spec.gpus_per_node, spec.partition, spec.time_min, spec.local, wait) == \
        (4, 8, "learnfair", 600, False, True)
    for n in range(4):
        cmd = build(Rendezvous(node=n, nodes=4, host="node-a", port=29500, job_id="7"))
        assert cmd[1:4] == ["-m", "mocobench", "run"]
        # the user's arguments without the cluster options, this node's place, then --opts (REMAINDER) last
        assert cmd[4:] == [*RUN, "--num-gpus", "8", "--num-machines", "4", "--machine-rank", str(n),
                           "--dist-url", "tcp://node-a:29500", "--opts", "SOLVER.MAX_ITER", "5"]
    one = split_job_argv([*RUN, "--submit", "--gpus-per-node", "8"])[1]
    assert one(Rendezvous(node=0, nodes=1, host="h", port=1, job_id="1"))[4:] == [*RUN, "--num-gpus", "8"]


def test_requeue_resubmits_the_same_runner_command():
    cmd = NodeCommand(split_job_argv([*RUN, "--submit", "--nodes", "2"])[1])
    again = cmd.checkpoint()
    r = Rendezvous(node=1, nodes=2, host="h", port=29500, job_id="9")
    assert isinstance(again.function, NodeCommand) and again.function.build(r) == cmd.build(r)
    assert pickle.loads(pickle.dumps(again.function)).build(r) == cmd.build(r)  # submitit pickles the job


@pytest.mark.parametrize("extra,message", [
    (["--submit", "--num-gpus", "8"], "--num-gpus: set on each node"),
    (["--submit", "--dist-url=tcp://h:1", "--nodes", "2"], "--dist-url: set on each node"),
    (["--submit", "--nodes", "2", "--gpus-per-node", "0"], "need GPUs"),
    (["--submit", "--nodes", "2", "--local"], "--nodes 1 with --local"),
    (["--nodes", "4", "--partition", "p"], "--nodes, --partition: cluster options, used only with --submit"),
    (["--wait"], "--wait: cluster options, used only with --submit"),
])
def test_bad_cluster_input_is_a_clear_error(extra, message, capsys, tmp_path):
    folder = ["--slurm-folder", str(tmp_path / "slurm")] if "--submit" in extra else []
    assert cli(["run", *RUN, *folder, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "slurm").exists()  # nothing submitted


def test_submitted_run_trains_and_a_resubmission_retrains_nothing(synthetic_layout, tmp_path, capsys):
    out, results, slurm = tmp_path / "out", tmp_path / "results", tmp_path / "slurm"
    argv = ["run", "voc-det", "--data", "synthetic", "--synthetic-root", str(synthetic_layout.root.parent),
            "--synthetic-preset", "tiny", "--trials", "1", "--results", str(results), "--output-dir", str(out),
            "--weights", "random", "--submit", "--local", "--gpus-per-node", "0", "--slurm-folder", str(slurm),
            "--wait", "--opts", *TINY]
    assert cli(argv) == 0
    (path,) = records.find_records(results)
    (rec,) = records.load_records(results)
    assert rec["provenance"]["num_gpus"] == 0 and rec["provenance"]["attempts"] == 1 and "bbox" in rec["metrics"]
    (final,) = out.glob("*/*/*/trial00/model_final.pth")
    record_bytes, final_mtime = path.read_bytes(), final.stat().st_mtime_ns
    assert cli(argv) == 0  # what a requeue runs: the same command
    assert records.find_records(results) == [path] and path.read_bytes() == record_bytes
    assert final.stat().st_mtime_ns == final_mtime  # nothing retrained
    logs = sorted(slurm.glob("*_log.out"), key=lambda p: p.stat().st_mtime_ns)
    assert len(logs) == 2 and "finished already" in logs[-1].read_text() + logs[-1].with_suffix(".err").read_text()


@pytest.mark.parametrize("rank", [0, 1])
def test_each_node_command_drives_detectron2_launch_across_machines(rank, synthetic_layout, tmp_path, monkeypatch,
                                                                    capsys):
    """Each node's runner command, as the job builds it, reaches Detectron2's launch with the job's machines,
    the node's rank and the first node's address (launch faked; 2-GPU machines: 4 devices, demo batch 8)."""
    import detectron2.engine
    import torch

    calls = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(detectron2.engine, "launch", lambda fn, n, **kw: calls.append((n, kw)))
    out, results = tmp_path / "out", tmp_path / "results"
    _, build, _ = split_job_argv(["voc-det", "--data", "synthetic", "--synthetic-root",
                                  str(synthetic_layout.root.parent), "--synthetic-preset", "tiny", "--trials", "1",
                                  "--weights", "random", "--results", str(results), "--output-dir", str(out),
                                  "--submit", "--nodes", "2", "--gpus-per-node", "2"])
    cmd = build(Rendezvous(node=rank, nodes=2, host="node-a", port=29500, job_id="5"))
    if rank == 0:  # the fake launch trained nothing: the first machine, which writes the record, says so
        assert cli(cmd[3:]) == 2 and "training ended without metrics" in capsys.readouterr().err
    else:  # the other machines write no record and count no attempt (the first machine does, once)
        assert cli(cmd[3:]) == 0
        assert not list(out.rglob("attempts.jsonl")) and not records.find_records(results)
    ((n, kw),) = calls
    assert n == 2 and (kw["num_machines"], kw["machine_rank"], kw["dist_url"]) == (2, rank, "tcp://node-a:29500")
    if rank == 0:
        (attempts,) = out.rglob("attempts.jsonl")
        assert [json.loads(line)["event"] for line in attempts.read_text().splitlines()] == ["start", "end"]


def test_the_job_is_planned_before_it_is_submitted(synthetic_layout, tmp_path, capsys):
    """A plan that cannot run on the job's devices fails here, not after the queue; --dry-run with --submit
    prints each node's command and submits nothing."""
    slurm = tmp_path / "slurm"
    base = ["run", "voc-det", "--data", "synthetic", "--synthetic-root", str(synthetic_layout.root.parent),
            "--synthetic-preset", "tiny", "--weights", "random", "--results", str(tmp_path / "results"),
            "--output-dir", str(tmp_path / "out"), "--submit", "--slurm-folder", str(slurm)]
    assert cli([*base, "--nodes", "4", "--gpus-per-node", "8"]) == 2  # the demo's batch 8 over 32 GPUs
    assert "IMS_PER_BATCH 8 cannot be split evenly over 32 devices" in capsys.readouterr().err
    assert cli([*base, "--nodes", "2", "--gpus-per-node", "2", "--dry-run", "--opts", "SOLVER.MAX_ITER", "8"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if "--machine-rank" in line]
    assert [line[line.index("--machine-rank") + 1] for line in lines] == ["0", "1"]
    assert all(line[-3:] == ["--opts", "SOLVER.MAX_ITER", "8"] and "--dry-run" in line for line in lines)
    assert not slurm.exists() and not (tmp_path / "out").exists()  # nothing submitted, nothing trained
