"""PreciseBN across processes (detection.precise_bn) against fvcore's per-process update and an independent
float64 computation; naiveSyncBN and torch's SyncBN in CPU (gloo) processes."""
from __future__ import annotations

import copy

import pytest
import torch
from detectron2.engine import launch
from detectron2.layers import NaiveSyncBatchNorm
from fvcore.nn.precise_bn import update_bn_stats
from torch import nn

from mocobench.detection.precise_bn import update_bn_stats_all_ranks

SIZES = {0: (6, 10, 6), 1: (10, 6, 8)}  # image side per iteration on each rank: multi-scale, unlike per rank
EPS = 1e-5


def _model(norm) -> nn.Sequential:
    torch.manual_seed(0)  # the same weights in every process
    m = nn.Sequential(nn.Conv2d(3, 4, 3), norm(4, eps=EPS), nn.ReLU(), nn.Conv2d(4, 5, 1), norm(5, eps=EPS))
    with torch.no_grad():  # BN weights away from 1/0, so that the second layer's input depends on them
        for bn in (m[1], m[4]):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return m.train()


def _batches(rank: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(2, 3, s, s, generator=g) * 2 + 1 for s in SIZES[rank]]


def _stats(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running_" in k}


def _worker(out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    rank = dist.get_rank()
    model = _model(NaiveSyncBatchNorm)
    start = copy.deepcopy(model.state_dict())
    update_bn_stats(model, iter(_batches(rank)), len(SIZES[rank]))  # what Detectron2's PreciseBN hook runs
    fvcore = _stats(model)
    model.load_state_dict(start)
    update_bn_stats_all_ranks(model, iter(_batches(rank)), len(SIZES[rank]))
    ours = _stats(model)
    try:  # torch's SyncBatchNorm in a CPU process group, training
        nn.SyncBatchNorm(3).train()(torch.randn(2, 3, 4, 4))
        sync_bn_error = None
    except ValueError as e:
        sync_bn_error = str(e)
    torch.save({"fvcore": fvcore, "ours": ours, "sync_bn_error": sync_bn_error}, f"{out}/rank{rank}.pt")


def _reference() -> dict[str, torch.Tensor]:
    """The population statistics of both BN layers over every pixel of both ranks, float64, with the
    first layer normalising as naiveSyncBN does in training (per iteration: mean and E[x^2] averaged
    over the ranks with equal weight)."""
    m = _model(nn.BatchNorm2d).double()
    conv1, bn1, conv2 = m[0], m[1], m[3]
    ranks = [[b.double() for b in _batches(r)] for r in SIZES]
    with torch.no_grad():
        y1 = [[conv1(b) for b in batches] for batches in ranks]
        y2 = []
        for i in range(len(SIZES[0])):
            mean = sum(y[i].mean(dim=(0, 2, 3)) for y in y1) / len(y1)
            meansqr = sum(y[i].square().mean(dim=(0, 2, 3)) for y in y1) / len(y1)
            scale = bn1.weight / torch.sqrt(meansqr - mean.square() + EPS)
            for y in y1:
                z = (y[i] - mean[None, :, None, None]) * scale[None, :, None, None] + bn1.bias[None, :, None, None]
                y2.append(conv2(torch.relu(z)))

    def population(tensors):
        pixels = torch.cat([t.permute(1, 0, 2, 3).reshape(t.shape[1], -1) for t in tensors], dim=1)
        return pixels.mean(dim=1), pixels.var(dim=1, unbiased=False)

    (m1, v1), (m2, v2) = population([y for ys in y1 for y in ys]), population(y2)
    return {"1.running_mean": m1, "1.running_var": v1, "4.running_mean": m2, "4.running_var": v2}


def test_precise_bn_one_process_equals_fvcore():
    """In one process the statistics are fvcore's (batch sizes varying from batch to batch)."""
    batches = _batches(0) + _batches(1)
    a, b = _model(nn.BatchNorm2d), _model(nn.BatchNorm2d)
    update_bn_stats(a, iter(batches), len(batches))
    assert update_bn_stats_all_ranks(b, iter(batches), len(batches)) == 2
    for k, v in _stats(a).items():
        torch.testing.assert_close(_stats(b)[k], v, rtol=1e-5, atol=1e-6, msg=k)
    with pytest.raises(RuntimeError, match="stopped after 6 of 7"):
        update_bn_stats_all_ranks(b, iter(batches), len(batches) + 1)


def test_precise_bn_two_gloo_processes_agree_and_match_one_process(tmp_path):
    """Two gloo processes with naiveSyncBN and another image size on each: fvcore's PreciseBN leaves each
    rank with its own statistics (detectron2#5398); ours gives both ranks the population statistics of all
    their images, computed here independently in float64. torch's SyncBN refuses CPU processes (the runner
    refuses it before launching: test_runner)."""
    launch(_worker, 2, dist_url="auto", args=(str(tmp_path),))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    ref = _reference()
    for k in ref:
        assert not torch.allclose(r0["fvcore"][k], r1["fvcore"][k], rtol=1e-3, atol=1e-4), k  # upstream differs
        torch.testing.assert_close(r0["ours"][k], r1["ours"][k], rtol=0, atol=1e-6, msg=k)
        for r in (r0, r1):
            torch.testing.assert_close(r["ours"][k].double(), ref[k], rtol=1e-4, atol=1e-5, msg=k)
    assert not torch.allclose(r0["fvcore"]["1.running_mean"].double(), ref["1.running_mean"], rtol=1e-3, atol=1e-4)
    assert r0["sync_bn_error"] and "SyncBatchNorm expected input tensor to be on GPU" in r0["sync_bn_error"]
