"""Pretraining at any world size: BN groups per process (pretrain/world.py), with more processes than
moco.bn_groups.

- the rule itself, and the one-line refusals, at the world sizes of real jobs (1 to 64 processes);
- 4 gloo processes with moco.bn_groups=2 through torchrun and the real CLI: training finishes; at the first step
  each rank's key-encoder BN statistics, and the keys, equal an independent computation in this process of plain
  BN on that rank's slice of the permuted global batch (the official DDP code's Shuffle BN); the run equals one
  process with 4 BN groups (losses, queue, weights), and the mean of the ranks' BN statistics is its."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mocobench.common.config import ConfigError
from mocobench.pretrain.config import load_config
from mocobench.pretrain.encoders import build_resnet
from mocobench.pretrain.trainer import Trainer
from mocobench.pretrain.world import plan_world
from tests.helpers.pretrain import make_imagefolder, tiny_config, tiny_overrides


def _cfg(*overrides: str) -> dict:
    return load_config("moco_v2", ["data.path=/nowhere", *overrides])


@pytest.mark.parametrize("world,splits,groups", [(1, 8, 8), (2, 4, 8), (3, 2, 6), (4, 2, 8), (8, 1, 8),
                                                 (16, 1, 16), (32, 1, 32), (64, 1, 64)])
def test_bn_groups_per_process_at_any_world_size(world, splits, groups):
    plan = plan_world(_cfg("optim.batch_size=1536", "moco.queue_size=61440"), world)
    assert (plan.splits, plan.bn_groups) == (splits, groups)
    assert plan.per_process == 1536 // world and plan.group_batch * groups == 1536
    assert plan.lr == pytest.approx(0.03 * 1536 / 256)


def test_configs_that_cannot_run_at_a_world_size_are_refused_in_one_line():
    cases = [
        (_cfg("optim.batch_size=1000"), 32, "optim.batch_size=1000 (global) is not divisible by the 32 processes: "
                                            "choose a multiple of 32, e.g. optim.batch_size=992 or 1024"),
        (_cfg("optim.batch_size=768"), 16, "K=65536 is not divisible by the global batch size 768"),
        (_cfg("optim.batch_size=36", "moco.queue_size=3600"), 2, "cannot be split into 4 BN groups"),
        (_cfg("optim.lr=0.0"), 8, "optim.lr=0.0 gives lr 0.0"),
    ]
    for cfg, world, message in cases:
        with pytest.raises(ConfigError) as e:
            plan_world(cfg, world)
        assert message in str(e.value) and "\n" not in str(e.value)
    assert plan_world(_cfg("optim.batch_size=48", "moco.queue_size=4800"), 2).group_batch == 6  # 24 in 4 groups
    # without Shuffle BN, or in supervised mode, nothing is split: only the batch must divide
    assert plan_world(_cfg("optim.batch_size=36", "moco.queue_size=3600", "moco.shuffle_bn=false"), 2).splits == 1
    assert plan_world(load_config("supervised_demo"), 64).splits == 1


# ---------------------------------------------------------------- 4 processes, 2 BN groups, through torchrun
WORLD = 4
# the CLI in each rank, recording its first step (its key crops, the Shuffle BN permutation, the key encoder
# before and its BN statistics after) and its BN statistics at the end (the checkpoint holds rank 0's only)
WRAPPER = """import copy, os, sys
import torch
from mocobench.pretrain import trainer
from mocobench.pretrain.__main__ import main
from mocobench.pretrain.distributed import DistributedExchange
from mocobench.pretrain.moco import MoCo

rank, first = int(os.environ["RANK"]), {}
permutation, forward, train = DistributedExchange._permutation, MoCo.forward, trainer.Trainer.train

def recorded_permutation(self, n, device):
    perm = permutation(self, n, device)
    first.setdefault("perm", perm.clone())
    return perm

def recorded_forward(self, im_q, im_k, *, momentum=None):
    if "im_k" in first:
        return forward(self, im_q, im_k, momentum=momentum)
    first.update(im_k=im_k.clone(), encoder_k=copy.deepcopy(self.encoder_k.state_dict()))
    out = forward(self, im_q, im_k, momentum=momentum)
    first.update(queue=self.queue.clone(), stats={n: t.clone() for n, t in self.encoder_k.named_buffers()
                                                  if "running_" in n})
    return out

def recorded_train(self, *args, **kwargs):
    path = train(self, *args, **kwargs)
    last = {n: t for n, t in self.model.named_buffers() if "running_" in n}
    torch.save({"first": first, "last": last}, self.out / f"rank{rank}.pt")
    return path

DistributedExchange._permutation, MoCo.forward, trainer.Trainer.train = recorded_permutation, recorded_forward, \\
    recorded_train
sys.exit(main(sys.argv[1:]))
"""


def _steps(out):
    return [e for e in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if e["kind"] == "step"]


@pytest.mark.slow
def test_torchrun_four_processes_two_bn_groups_trains_as_one_process_with_four(tmp_path):
    data = make_imagefolder(tmp_path / "data", per_class=8)  # 16 images: 2 steps of 8, 2 images per process
    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    single = Trainer(tiny_config(data, single_out, "optim.epochs=1", "moco.bn_groups=4"))
    single_ckpt = single.train()

    script = tmp_path / "train_rank.py"
    script.write_text(WRAPPER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD), str(script),
           "train", "--config", "demo", *tiny_overrides(data, ddp_out, "optim.epochs=1", "moco.bn_groups=2")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "world size 4" in text and "2 images per process in 1 BN group(s)" in text and "final checkpoint" in text

    a = torch.load(single_ckpt, weights_only=True)
    b = torch.load(ddp_out / "checkpoint_0000.pth.tar", weights_only=True)
    assert b["provenance"]["world_size"] == WORLD
    sa, sb = a["state_dict"], b["state_dict"]
    assert sb["module.queue_ptr"].tolist() == sa["module.queue_ptr"].tolist() == [16]
    torch.testing.assert_close(sb["module.queue"], sa["module.queue"], rtol=1e-4, atol=1e-5)
    for k in sa:
        if "running_" not in k and "num_batches" not in k:
            torch.testing.assert_close(sb[k], sa[k], rtol=1e-4, atol=1e-5, msg=k)
    la, lb = _steps(single_out), _steps(ddp_out)
    assert [e["step"] for e in lb] == [1, 2]
    for ea, eb in zip(la, lb):
        assert abs(ea["loss"] - eb["loss"]) < 1e-4 and ea["lr"] == eb["lr"]
    ranks = [torch.load(ddp_out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    # the first step, independently in this process: plain BN on each rank's slice of the permuted key batch
    # (the official code's Shuffle BN), from the key encoder the ranks started the step with
    perm = ranks[0]["first"]["perm"]
    assert all(torch.equal(r["first"]["perm"], perm) for r in ranks) and not torch.equal(perm, torch.arange(8))
    im_k = torch.cat([r["first"]["im_k"] for r in ranks])  # the global batch of key crops, in rank order
    b = im_k.shape[0] // WORLD
    keys = torch.empty(im_k.shape[0], 128)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for r, rank in enumerate(ranks):
            encoder = build_resnet("resnet18", num_classes=128, stem="small", mlp=True)  # nn.BatchNorm2d
            encoder.load_state_dict(rank["first"]["encoder_k"])
            mine = perm[r * b:(r + 1) * b]
            with torch.no_grad():
                keys[mine] = F.normalize(encoder.train()(im_k[mine]), dim=1)  # back to the images they came from
            for name, value in encoder.named_buffers():
                if "running_" in name:
                    torch.testing.assert_close(rank["first"]["stats"][name], value, msg=f"rank {r} {name}")
    finally:
        torch.set_num_threads(threads)
    for rank in ranks:  # every rank enqueued the keys of all 8 images, in rank order
        torch.testing.assert_close(rank["first"]["queue"][:, :8].T, keys, rtol=1e-4, atol=1e-5)
    # at the end: each rank kept its own statistics; their mean is the one process's mean over its 4 groups
    for name, value in single.model.named_buffers():
        if "running_" in name:
            torch.testing.assert_close(torch.stack([r["last"][name] for r in ranks]).mean(0), value, rtol=1e-4,
                                       atol=1e-5, msg=name)
    name = "encoder_k.bn1.running_mean"
    assert not torch.allclose(ranks[0]["last"][name], ranks[1]["last"][name])
    torch.testing.assert_close(sb[f"module.{name}"], ranks[0]["last"][name])  # the checkpoint holds rank 0's


def test_train_dry_run_plans_at_torchruns_world_size_without_data_or_device(tmp_path, capsys, monkeypatch):
    from mocobench.pretrain.__main__ import main

    out = tmp_path / "run"
    monkeypatch.setenv("WORLD_SIZE", "16")
    args = ["train", "--dry-run", "--config", "moco_v2", "data.path=/nowhere", f"train.output_dir={out}"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "16 BN groups of 16 images (one per process" in text and "lr 0.03 = optim.lr 0.03 x 256" in text
    assert "not checked here: the device (auto), data.path=/nowhere" in text and not out.exists()
    assert main([*args, "optim.batch_size=250"]) == 2
    assert capsys.readouterr().err == ("error: optim.batch_size=250 (global) is not divisible by the 16 processes: "
                                       "choose a multiple of 16, e.g. optim.batch_size=240 or 256\n")
