"""A 2-process gloo DDP run (through torchrun and the real CLI) against the single-process path.

The single process uses BN over 2 sub-batches and a shuffled key batch; the 2 ranks use per-rank BN and
Shuffle BN across processes. With the same global batches (rank r = r-th slice) and the same shuffle
permutations, losses, queue contents and weights must agree up to float rounding."""
from __future__ import annotations

import json
import subprocess
import sys

import torch

from mocobench.pretrain.trainer import Trainer
from tests.helpers.pretrain import make_imagefolder, tiny_config, tiny_overrides


def _steps(out):
    return [e for e in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if e["kind"] == "step"]


def test_ddp_two_gloo_processes_match_single_process(tmp_path):
    data = make_imagefolder(tmp_path / "data", per_class=8)
    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    single = Trainer(tiny_config(data, single_out, "optim.epochs=1")).train()

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mocobench.pretrain", "train", "--config", "demo", *tiny_overrides(data, ddp_out, "optim.epochs=1")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "world size 2" in proc.stdout and "final checkpoint" in proc.stdout

    a = torch.load(single, weights_only=True)
    b = torch.load(ddp_out / "checkpoint_0000.pth.tar", weights_only=True)
    assert b["provenance"]["world_size"] == 2 and a["provenance"]["world_size"] == 1
    sa, sb = a["state_dict"], b["state_dict"]
    assert sa.keys() == sb.keys()
    # keys of all ranks enter the queue in rank order: same contents, same pointer
    assert sb["module.queue_ptr"].tolist() == sa["module.queue_ptr"].tolist() == [16]
    torch.testing.assert_close(sb["module.queue"], sa["module.queue"], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(sa["module.queue"][:, :16], a_init_queue(a))
    # same gradients (DDP averages what the single process computes on the whole batch) -> same weights
    for k in sa:
        if "running_" in k or "num_batches" in k:
            continue  # BN statistics: rank 0 keeps its own sub-batch's, the single process the mean of both
        torch.testing.assert_close(sb[k], sa[k], rtol=1e-4, atol=1e-5, msg=k)
    la, lb = _steps(single_out), _steps(ddp_out)
    assert [e["step"] for e in la] == [e["step"] for e in lb] == [1, 2]
    for ea, eb in zip(la, lb):
        assert abs(ea["loss"] - eb["loss"]) < 1e-4 and ea["lr"] == eb["lr"]


def a_init_queue(ckpt):
    """The queue the run started from (same seed, same construction) -- the enqueued part must differ from it."""
    torch.manual_seed(ckpt["config"]["train"]["seed"])
    from mocobench.pretrain.config import PretrainConfig
    from mocobench.pretrain.trainer import build_model

    return build_model(PretrainConfig.from_dict(ckpt["config"]), num_classes=2).queue[:, :16]
