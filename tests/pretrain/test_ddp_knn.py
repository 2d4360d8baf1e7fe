"""The kNN monitor across 2 gloo processes (torch.multiprocessing spawn): each rank extracts only its slice of
the bank and of the queries, and the ranks together give the one-process predictions of rank 0's encoder, even
when the other rank holds different weights and BN statistics (as DDP ranks do: BN buffers are per rank)."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mocobench.pretrain import knn
from mocobench.pretrain.encoders import build_resnet
from tests.helpers.pretrain import make_imagefolder

SETTINGS = dict(image_size=16, device=torch.device("cpu"), k=10, temperature=0.1, batch_size=1, progress=False)


def _encoder(perturbed: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    encoder = build_resnet("resnet18", num_classes=8, stem="small")
    encoder.eval()  # running statistics of a random init are 0 / 1: give them values that matter
    with torch.no_grad():
        for m in encoder.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        if perturbed:  # another rank's copy: other weights, other statistics
            for t in [*encoder.parameters(), *encoder.buffers()]:
                if t.is_floating_point():
                    t.mul_(1.5).add_(0.1)
    return encoder


def _rank(rank: int, world: int, init: str, bank: str, queries: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        read: list[int] = []

        class CountingImageList(knn.ImageList):
            def __getitem__(self, index):
                read.append(index)
                return super().__getitem__(index)

        knn.ImageList = CountingImageList
        pred, labels = knn.knn_predictions(_encoder(perturbed=rank == 1), bank, queries, distributed=True, **SETTINGS)
        torch.save({"pred": pred, "labels": labels, "read": len(read)}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_give_the_one_process_knn_predictions(tmp_path):
    # 15 bank images (slices of 7 and 8: fewer than k=10 each, so the merge pads) and 9 queries (4 and 5)
    bank = make_imagefolder(tmp_path / "bank", classes=3, per_class=5, size=16)
    queries = make_imagefolder(tmp_path / "queries", classes=3, per_class=3, size=16, seed=1)
    mp.spawn(_rank, args=(2, f"file://{tmp_path}/pg", str(bank), str(queries), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks (and many times faster than 2 threads on a busy 2-core machine)
    try:
        ref_pred, ref_labels = knn.knn_predictions(_encoder(), bank, queries, **SETTINGS)
        other_pred, _ = knn.knn_predictions(_encoder(perturbed=True), bank, queries, **SETTINGS)
    finally:
        torch.set_num_threads(threads)
    assert not torch.equal(other_pred, ref_pred)  # rank 1's own weights would change the answer
    for r in ranks:
        assert torch.equal(r["pred"], ref_pred) and torch.equal(r["labels"], ref_labels)
    assert [r["read"] for r in ranks] == [7 + 4, 8 + 5]  # each rank its slice: the work shared, not all on rank 0
    assert 100.0 * (ranks[0]["pred"] == ranks[0]["labels"]).float().mean() == \
        100.0 * (ref_pred == ref_labels).float().mean()
