"""2-process gloo pretraining runs through torchrun and the real CLI: unreadable images met by either rank are
reported and counted over both (and every rank stops together), the kNN monitor under DDP gives the
one-process value of the saved checkpoint, and every rank leaves its process group, also after an error."""
from __future__ import annotations

import json
import subprocess
import sys

import torch

from mocobench.pretrain import checkpoint as ckpt_lib
from mocobench.pretrain.data import scan_imagefolder
from mocobench.pretrain.knn import knn_top1
from mocobench.pretrain.lincls import model_from_checkpoint
from mocobench.pretrain.sampler import GlobalBatchSampler
from tests.helpers.pretrain import make_imagefolder, tiny_overrides

# the CLI's main in each rank, then whether the process group is still there
WRAPPER = """import os, sys
import torch.distributed as dist
from mocobench.pretrain.__main__ import main
rc = main(sys.argv[1:])
print(f"rank {os.environ['RANK']}: exit {rc}, process group after: {dist.is_initialized()}", flush=True)
sys.exit(rc)
"""


def _torchrun(tmp_path, *train_args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "train_rank.py"
    script.write_text(WRAPPER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           "train", "--config", "demo", *train_args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=400)


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_unreadable_images_of_every_rank_are_reported_and_counted_together(tmp_path):
    data = make_imagefolder(tmp_path / "data", per_class=8)  # 16 images, global batch 8: 4 per rank and step
    samples, _ = scan_imagefolder(data)
    first = [next(iter(GlobalBatchSampler(16, global_batch=8, rank=r, world_size=2, seed=0))) for r in (0, 1)]
    # one unreadable image in each rank's first batch (its successor, the replacement, is readable)
    broken = [next(i for i in first[r] if (i + 1) % 16 not in first[1 - r]) for r in (0, 1)]
    for i in broken:
        samples[i][0].write_bytes(b"not an image")
    out = tmp_path / "run"
    proc = _torchrun(tmp_path, *tiny_overrides(data, out, "optim.epochs=1", "data.max_bad_images=1"))
    text = proc.stdout + proc.stderr
    # one each is within the limit of 1 on either rank; the two together are not: both ranks stop
    assert proc.returncode != 0, text[-3000:]
    assert text.count("more than 1 unreadable images") == 2, text[-3000:]
    assert {e["path"] for e in _log(out) if e["kind"] == "skipped"} == {str(samples[i][0]) for i in broken}
    for r in (0, 1):
        assert f"rank {r}: exit 2, process group after: False" in proc.stdout, text[-3000:]


def test_knn_monitor_under_ddp_gives_the_one_process_value_and_every_rank_leaves_its_group(tmp_path):
    data = make_imagefolder(tmp_path / "data", per_class=8)
    bank = make_imagefolder(tmp_path / "bank", classes=2, per_class=7, seed=2)  # 14 images: 7 per rank
    queries = make_imagefolder(tmp_path / "queries", classes=2, per_class=5, seed=3)
    out = tmp_path / "run"
    knn = ["knn.every=1", f"knn.train_path={bank}", f"knn.val_path={queries}", "knn.k=5", "knn.batch_size=1"]
    proc = _torchrun(tmp_path, *tiny_overrides(data, out, "optim.epochs=1", *knn))
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "world size 2" in text
    for r in (0, 1):
        assert f"rank {r}: exit 0, process group after: False" in proc.stdout, text[-3000:]
    (epoch,) = [e for e in _log(out) if e["kind"] == "epoch"]
    # independent: the saved checkpoint's backbone (rank 0's weights and BN statistics), in this one process
    ckpt = ckpt_lib.load(ckpt_lib.latest_checkpoint(out))
    state = {k[len("module.encoder_q."):]: v for k, v in ckpt["state_dict"].items()
             if k.startswith("module.encoder_q.") and ".fc." not in k}
    encoder = model_from_checkpoint(ckpt, num_classes=2)
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in state.items())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected = knn_top1(encoder, bank, queries, image_size=16, device=torch.device("cpu"), k=5, batch_size=1,
                            progress=False)
    finally:
        torch.set_num_threads(threads)
    assert epoch["knn_top1"] == expected
