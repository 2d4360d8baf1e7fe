"""MoCo module, Shuffle/split BN, kNN and schedules against independent computations."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mocobench.pretrain.distributed import LocalExchange
from mocobench.pretrain.encoders import ARCHS, build_resnet
from mocobench.pretrain.knn import weighted_knn_predict
from mocobench.pretrain.moco import MoCo
from mocobench.pretrain.norm import SplitBatchNorm2d
from mocobench.pretrain.schedules import key_momentum, learning_rate, scaled_lr


def tiny_encoder(dim: int = 8) -> nn.Module:
    # no BN: each sample's output is independent of the batch, so Shuffle BN must be a no-op numerically
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, dim))


def test_moco_step_matches_independent_computation():
    torch.manual_seed(0)
    dim, K, N, m, T = 8, 12, 4, 0.9, 0.2
    model = MoCo(encoder=tiny_encoder(dim), dim=dim, queue_size=K, momentum=m, temperature=T,
                 exchange=LocalExchange(seed=1))
    with torch.no_grad():  # make f_k differ from f_q so that the momentum update is visible
        for p in model.encoder_k.parameters():
            p.add_(torch.randn_like(p))
    model.queue_ptr[0] = 8  # write at the end of the queue
    q_net, k_net = copy.deepcopy(model.encoder_q), copy.deepcopy(model.encoder_k)
    queue_before = model.queue.clone()
    im_q, im_k = torch.randn(N, 3, 6, 6), torch.randn(N, 3, 6, 6)

    logits, labels = model(im_q, im_k)

    # independent computation
    with torch.no_grad():
        for pk, pq in zip(k_net.parameters(), q_net.parameters()):
            pk.copy_(m * pk + (1 - m) * pq)
        k = k_net(im_k)
        k = k / k.norm(dim=1, keepdim=True)
    q = q_net(im_q)
    q = q / q.norm(dim=1, keepdim=True)
    expected = torch.cat([(q * k).sum(1, keepdim=True), q @ queue_before], dim=1) / T
    torch.testing.assert_close(logits, expected)
    assert labels.tolist() == [0] * N
    expected_loss = -torch.log_softmax(expected, dim=1)[:, 0].mean()
    torch.testing.assert_close(F.cross_entropy(logits, labels), expected_loss)
    for pk, pk_expected in zip(model.encoder_k.parameters(), k_net.parameters()):
        torch.testing.assert_close(pk, pk_expected)
    torch.testing.assert_close(model.queue[:, 8:12], k.T)
    torch.testing.assert_close(model.queue[:, :8], queue_before[:, :8])
    assert int(model.queue_ptr) == 0


def test_no_gradient_reaches_key_encoder():
    torch.manual_seed(0)
    model = build_resnet("resnet18", num_classes=16, stem="small", mlp=True, bn_splits=2)
    moco = MoCo(encoder=model, dim=16, queue_size=16, temperature=0.2)
    logits, labels = moco(torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16))
    F.cross_entropy(logits, labels).backward()
    assert all(p.grad is None and not p.requires_grad for p in moco.encoder_k.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in moco.encoder_q.parameters())
    assert moco.queue.grad is None and not moco.queue.requires_grad


def test_queue_wraps_fifo():
    torch.manual_seed(0)
    moco = MoCo(encoder=tiny_encoder(), dim=8, queue_size=8, momentum=0.5)
    keys = []
    for _ in range(3):
        moco(torch.randn(4, 3, 6, 6), torch.randn(4, 3, 6, 6))
        keys.append(moco.queue.clone())
    # step 3 overwrote columns 0..3 (the oldest: step 1's), step 2's keys stay in 4..7
    torch.testing.assert_close(keys[2][:, 4:], keys[1][:, 4:])
    assert not torch.allclose(keys[2][:, :4], keys[1][:, :4])
    torch.testing.assert_close(keys[1][:, :4], keys[0][:, :4])
    assert int(moco.queue_ptr) == 4
    torch.testing.assert_close(moco.queue.norm(dim=0), torch.ones(8))


def test_queue_not_divisible_by_global_batch_is_refused():
    moco = MoCo(encoder=tiny_encoder(), dim=8, queue_size=10)
    with pytest.raises(ValueError, match="K=10 is not divisible by the global batch size 4"):
        moco(torch.randn(4, 3, 6, 6), torch.randn(4, 3, 6, 6))


def test_split_batchnorm_equals_bn_per_chunk():
    torch.manual_seed(0)
    x = torch.randn(12, 5, 3, 3) * 3 + 1
    split = SplitBatchNorm2d(5, num_splits=3)
    with torch.no_grad():
        split.weight.uniform_(0.5, 2)
        split.bias.normal_()
    out = split(x)
    outs, means, vars_ = [], [], []
    for chunk in x.chunk(3):  # contiguous chunks, like 3 ranks holding consecutive slices
        rm, rv = torch.zeros(5), torch.ones(5)
        outs.append(F.batch_norm(chunk, rm, rv, split.weight, split.bias, True, 0.1, split.eps))
        means.append(rm)
        vars_.append(rv)
    torch.testing.assert_close(out, torch.cat(outs))
    torch.testing.assert_close(split.running_mean, torch.stack(means).mean(0))
    torch.testing.assert_close(split.running_var, torch.stack(vars_).mean(0))
    split.eval()
    torch.testing.assert_close(split(x), F.batch_norm(x, split.running_mean, split.running_var, split.weight,
                                                      split.bias, False, 0.0, split.eps))
    assert set(split.state_dict()) == set(nn.BatchNorm2d(5).state_dict())


def test_shuffle_bn_keys_independent_of_permutation_without_bn():
    # with a per-sample encoder, shuffle + unshuffle must return each key to its own query
    torch.manual_seed(0)
    enc = tiny_encoder()
    moco = MoCo(encoder=enc, dim=8, queue_size=8, exchange=LocalExchange(seed=3))
    im_k = torch.randn(4, 3, 6, 6)
    k = moco._keys(im_k)
    torch.testing.assert_close(k, F.normalize(moco.encoder_k(im_k), dim=1))


def test_shuffle_bn_computes_keys_on_the_permuted_batch():
    """With BN over 2 sub-batches, the keys are the encoder's on the exchange's permutation of the batch, put
    back in order; without the shuffle they differ (the test above cannot tell a shuffle from none)."""
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv2d(3, 4, 3), SplitBatchNorm2d(4, num_splits=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 8))
    moco = MoCo(encoder=enc, dim=8, queue_size=8, exchange=LocalExchange(seed=3))
    reference = copy.deepcopy(moco.encoder_k)  # before the call updates BN's running statistics
    seen = []
    moco.encoder_k.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    im_k = torch.randn(8, 3, 6, 6)
    k = moco._keys(im_k)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(3))  # LocalExchange(seed=3)'s first draw
    assert not torch.equal(perm, torch.arange(8))
    torch.testing.assert_close(seen[0], im_k[perm])  # the encoder saw the shuffled batch
    with torch.no_grad():
        expected = F.normalize(copy.deepcopy(reference)(im_k[perm]), dim=1)[torch.argsort(perm)]
        unshuffled = F.normalize(copy.deepcopy(reference)(im_k), dim=1)
    torch.testing.assert_close(k, expected)
    assert (k - unshuffled).abs().max() > 1e-3  # the sub-batches' statistics differ: the shuffle is visible


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_encoders_have_torchvision_keys(arch):
    import torchvision

    model = build_resnet(arch, num_classes=128, mlp=True)
    reference = set(getattr(torchvision.models, arch)(num_classes=128).state_dict())
    own = set(model.state_dict())
    assert own - reference == {"fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"}
    assert reference - own == {"fc.weight", "fc.bias"}


def test_small_stem_keeps_resolution():
    model = build_resnet("resnet18", num_classes=10, stem="small")
    feats = nn.Sequential(*list(model.children())[:4])(torch.randn(2, 3, 32, 32))
    assert feats.shape[-1] == 32


def test_weighted_knn_matches_brute_force():
    torch.manual_seed(0)
    train = F.normalize(torch.randn(50, 6), dim=1)
    labels = torch.randint(0, 4, (50,))
    query = F.normalize(torch.randn(9, 6), dim=1)
    pred = weighted_knn_predict(train, labels, query, num_classes=4, k=7, temperature=0.1, chunk=4)
    for i in range(9):
        sims = [(float(query[i] @ train[j]), int(labels[j])) for j in range(50)]
        sims.sort(reverse=True)
        votes = [0.0] * 4
        for s, c in sims[:7]:
            votes[c] += math.exp(s / 0.1)
        assert int(pred[i]) == max(range(4), key=lambda c: votes[c])


def test_lr_and_momentum_schedules():
    kw = dict(steps_per_epoch=10, epochs=200, base_lr=0.03)
    assert learning_rate(0, schedule="step", milestones=[120, 160], **kw) == pytest.approx(0.03)
    assert learning_rate(1200, schedule="step", milestones=[120, 160], **kw) == pytest.approx(0.003)
    assert learning_rate(1600, schedule="step", milestones=[120, 160], **kw) == pytest.approx(0.0003)
    assert learning_rate(0, schedule="cosine", **kw) == pytest.approx(0.03)
    assert learning_rate(1000, schedule="cosine", **kw) == pytest.approx(0.015)
    assert learning_rate(4, schedule="cosine", warmup_epochs=1, **kw) == pytest.approx(0.03 * 5 / 10)
    assert scaled_lr(0.03, 1024) == pytest.approx(0.12)
    assert key_momentum(5, total_steps=10, base=0.999, schedule="constant") == 0.999
    assert key_momentum(0, total_steps=10, base=0.99, schedule="cosine") == pytest.approx(0.99)
    assert key_momentum(10, total_steps=10, base=0.99, schedule="cosine") == pytest.approx(1.0)


def test_momentum_is_keyword_only_as_the_pretext_contract_declares():
    """PretextModel.__call__ declares `momentum` keyword-only; the models and the trainer's call agree with it
    (a positional momentum would silently become an input of a model with other inputs)."""
    import inspect

    from mocobench.pretrain.pretext import PretextModel
    from mocobench.pretrain.supervised import Supervised

    declared = inspect.signature(PretextModel.__call__).parameters["momentum"].kind
    assert declared is inspect.Parameter.KEYWORD_ONLY
    for model in (MoCo, Supervised):
        assert inspect.signature(model.forward).parameters["momentum"].kind is declared, model
    torch.manual_seed(0)
    moco = MoCo(encoder=build_resnet("resnet18", num_classes=8, stem="small"), dim=8, queue_size=8)
    with pytest.raises(TypeError):
        moco(torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), 0.5)
    encoder_k = [p.clone() for p in moco.encoder_k.parameters()]
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.add_(1.0)
    moco(torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), momentum=0.5)  # theta_k <- (theta_k + theta_q) / 2
    for before, after in zip(encoder_k, moco.encoder_k.parameters()):
        torch.testing.assert_close(after, before + 0.5)
