"""The CUDA pretraining path's defects that a CPU can see (issue 22: 2, 4, 5, 6, 9).

Each test drives the code the GPU runs, on CPU tensors, and checks the property the GPU depends on:
which roi_align kernel runs, the logits' dtype under autocast, no host round trip in a step, what split BN
copies, how large augmentation's intermediates get. Run-time behaviour on a GPU (sync debug mode, memory)
is the GPU check's part.
"""
from __future__ import annotations

import copy
import importlib

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from mocobench.pretrain import batch_aug as B
from mocobench.pretrain.cpu_aug import MEAN, STD
from mocobench.pretrain.data import pad_collate
from mocobench.pretrain.device import DeviceConstant, to_device
from mocobench.pretrain.distributed import LocalExchange
from mocobench.pretrain.moco import MoCo
from mocobench.pretrain.norm import SplitBatchNorm2d


class LargestOutput(TorchDispatchMode):
    """Records every op's new (non-view) output tensors: the largest numel, and how many had `numel`."""

    def __init__(self, numel: int = -1) -> None:
        super().__init__()
        self.largest, self.numel, self.count = 0, numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.largest = max(self.largest, t.numel())
                    self.count += t.numel() == self.numel
        return out


def uneven_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Eight decoded images, one 120 x 100 and seven 20 x 24, padded into one batch as the loader does."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, 120, 100), generator=g, dtype=torch.uint8)]
    images += [torch.randint(0, 256, (3, 20, 24), generator=g, dtype=torch.uint8) for _ in range(7)]
    batch, sizes, _ = pad_collate([(im, 0) for im in images])
    return batch, sizes


# ---------------------------------------------------------------- 2: the compiled roi_align
def test_crops_use_the_compiled_roi_align_under_deterministic_mode(monkeypatch):
    """torchvision.ops.roi_align switches to its pure-Python version under deterministic mode on CUDA (its
    temporaries are M x C x S x S x H x W). Here that switch is forced for every device, and the Python
    version replaced by a trap: the augmentation must still run, through the compiled kernel."""
    tv_roi_align = importlib.import_module("torchvision.ops.roi_align")  # the module (the package exports the function)

    def trap(*args, **kwargs):
        raise AssertionError("the pure-Python roi_align was used")

    compiled = torch.ops.torchvision.roi_align
    calls = []

    def spy(*args):
        calls.append(args[0].shape)
        return compiled(*args)

    monkeypatch.setattr(tv_roi_align, "_has_ops", lambda: False)  # the wrapper's condition for its fallback
    monkeypatch.setattr(tv_roi_align, "_roi_align", trap)
    monkeypatch.setattr(torch.ops.torchvision, "roi_align", spy)
    batch, sizes = uneven_batch()
    aug = B.BatchAugment(version="v2", size=8, min_scale=0.2, mean=MEAN, std=STD)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        a = aug.views(batch, sizes, 2, torch.Generator().manual_seed(0))
        b = aug.views(batch, sizes, 2, torch.Generator().manual_seed(0))
    finally:
        torch.use_deterministic_algorithms(was)
    assert calls, "the compiled roi_align was not called"
    assert a.shape == (8, 2, 3, 8, 8) and torch.equal(a, b)


# ---------------------------------------------------------------- 9: memory of the crop
def old_crops(images: torch.Tensor, boxes: torch.Tensor, size: int, views: int) -> torch.Tensor:
    """The previous path: the whole padded batch to float in [0, 1], one roi_align over it."""
    index = torch.arange(boxes.shape[0]).div(views, rounding_mode="floor")
    i, j, h, w = boxes.unbind(1)
    rois = torch.stack([index.float(), j, i, j + w, i + h], dim=1)
    return torchvision.ops.roi_align(images.float() / 255.0, rois, output_size=(size, size), spatial_scale=1.0,
                                     sampling_ratio=-1, aligned=True)


def test_augmentation_intermediates_are_bounded_by_the_crops_not_the_padded_batch():
    """A batch padded to its one large image: no intermediate is larger than one padded image (or six
    times the output, hue's table), never the padded batch in float; crops equal the previous path's."""
    batch, sizes = uneven_batch()
    aug = B.BatchAugment(version="v2", size=8, min_scale=0.2, mean=MEAN, std=STD)
    with LargestOutput() as seen:
        out = aug.views(batch, sizes, 2, torch.Generator().manual_seed(3))
    index = torch.arange(8).repeat_interleave(2)
    params = aug.sample(sizes[index, 0], sizes[index, 1], torch.Generator().manual_seed(3))
    one_image, padded_batch = batch[0].numel(), batch.numel()
    assert seen.largest <= max(one_image, 6 * out.numel()) < padded_batch, \
        f"largest intermediate {seen.largest} elements (one padded image {one_image}, the batch {padded_batch})"
    crops = B.resized_crop(batch, params.boxes, 8, 2) / 255.0
    torch.testing.assert_close(crops, old_crops(batch, params.boxes, 8, 2), atol=1e-6, rtol=0)
    # a float batch (one call, nothing converted) gives the same crops
    torch.testing.assert_close(B.resized_crop(batch.float() / 255.0, params.boxes, 8, 2), crops, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- 4: fp32 logits under autocast
class Crop(nn.Module):
    """An encoder autocast leaves alone (no matmul or conv): the first `dim` pixels, scaled."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :self.dim] * self.scale


def test_logits_are_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    model = MoCo(encoder=Crop(16), dim=16, queue_size=64, temperature=0.07, shuffle_keys=False)
    ref_model = copy.deepcopy(model)
    im_q, im_k = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4)
    queue = model.queue.clone()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, labels = model(im_q, im_k)
    ref, _ = ref_model(im_q, im_k)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, ref, rtol=0, atol=0)
    # and both are the float64 InfoNCE logits of the encoders' outputs, to fp32 rounding
    q = F.normalize(model.encoder_q(im_q).double(), dim=1)
    k = F.normalize(model.encoder_k(im_k).double(), dim=1)
    expected = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.double()], dim=1) / 0.07
    torch.testing.assert_close(logits.double(), expected, atol=1e-5, rtol=0)
    assert labels.tolist() == [0] * 8


# ---------------------------------------------------------------- 5: no host round trip in a step
def test_device_constants_are_copied_once_per_device():
    c = DeviceConstant([0.485, 0.456, 0.406])
    a, b = c.on("cpu"), c.on(torch.device("cpu"))
    assert a is b and a.tolist() == pytest.approx([0.485, 0.456, 0.406]) and a.dtype == torch.float32
    d = c.on("cpu", torch.float64)
    assert d is c.on("cpu", torch.float64) and d.dtype == torch.float64 and d is not a
    aug = B.BatchAugment(version="v2", size=8, min_scale=0.2, mean=MEAN, std=STD)
    assert aug._mean.on("cpu").tolist() == pytest.approx(list(MEAN)) and aug._mean.on("cpu") is aug._mean.on("cpu")
    assert aug._lo.on("cpu").tolist() == pytest.approx([0.6, 0.6, 0.6, -0.1])
    assert aug._hi.on("cpu").tolist() == pytest.approx([1.4, 1.4, 1.4, 0.1])
    t = torch.arange(5)
    assert torch.equal(to_device(t, "cpu"), t)


def test_augmentation_and_key_shuffle_make_no_blocking_copies(monkeypatch):
    """What makes the host wait on CUDA: a tensor built from a list on the device, or a blocking .to(device).
    Spied on CPU: neither may happen in the batched augmentation or the Shuffle BN permutation, from the
    second step on (the first copies the constants once, without blocking)."""
    made, copied = [], []
    tensor, to = torch.tensor, torch.Tensor.to

    def spy_tensor(*args, **kwargs):
        if kwargs.get("device") is not None:
            made.append(kwargs["device"])
        return tensor(*args, **kwargs)

    def spy_to(self, *args, **kwargs):
        targets_device = any(isinstance(a, (torch.device, str)) for a in args) or "device" in kwargs
        if targets_device and not kwargs.get("non_blocking", False):
            copied.append((args, kwargs))
        return to(self, *args, **kwargs)

    batch, sizes = uneven_batch()
    aug = B.BatchAugment(version="v2", size=8, min_scale=0.2, mean=MEAN, std=STD)
    exchange = LocalExchange(seed=0)
    keys = torch.randn(8, 4)
    expected = aug.views(batch, sizes, 2, torch.Generator().manual_seed(5))
    monkeypatch.setattr(torch, "tensor", spy_tensor)
    monkeypatch.setattr(torch.Tensor, "to", spy_to)
    views = aug.views(batch, sizes, 2, torch.Generator().manual_seed(5))
    shuffled, perm = exchange.shuffle(keys)
    restored = exchange.unshuffle(shuffled, perm)
    monkeypatch.undo()
    assert not made, f"tensors built from host lists on the device: {made}"
    assert not copied, f"blocking copies to a device: {copied}"
    assert torch.equal(views, expected)  # the cached constants give the same augmentation
    assert torch.equal(restored, keys) and sorted(perm.tolist()) == list(range(8))


# ---------------------------------------------------------------- 6: split BN per chunk
def reshape_split_bn(bn: SplitBatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """The previous formula: the batch reshaped into channels, normalised once, reshaped back."""
    s = bn.num_splits
    n, c, h, w = x.shape
    xs = x.reshape(s, n // s, c, h, w).transpose(0, 1).reshape(n // s, s * c, h, w)
    running_mean, running_var = bn.running_mean.repeat(s), bn.running_var.repeat(s)
    out = F.batch_norm(xs, running_mean, running_var, bn.weight.repeat(s), bn.bias.repeat(s), True, bn.momentum,
                       bn.eps)
    with torch.no_grad():
        bn.running_mean.copy_(running_mean.view(s, c).mean(0))
        bn.running_var.copy_(running_var.view(s, c).mean(0))
        bn.num_batches_tracked.add_(1)
    return out.reshape(n // s, s, c, h, w).transpose(0, 1).reshape(n, c, h, w)


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("splits", [2, 4])
def test_split_bn_per_chunk_equals_the_reshape_formula(fmt, splits):
    """The per-chunk computation (what channels_last on CUDA uses): outputs, gradients and running statistics
    equal the previous formula's (two steps); the output keeps the input's memory format as BatchNorm2d's
    does (the previous formula returned channels_last inputs contiguous); the forward writes one
    activation-sized tensor (the previous formula five: the fold's copies, batch_norm's output, the
    unfold's copy)."""
    torch.manual_seed(0)
    bn = SplitBatchNorm2d(5, num_splits=splits, per_chunk=True)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    ref = copy.deepcopy(bn)
    for step in range(2):
        x = (torch.randn(8, 5, 6, 7) * (1 + torch.arange(8.0)).view(8, 1, 1, 1)).contiguous(memory_format=fmt)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        with LargestOutput(numel=x.numel()) as seen:
            out = bn(xa)
        expected = reshape_split_bn(ref, xb)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        grad = torch.randn_like(out)
        out.backward(grad)
        expected.backward(grad)
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(bn.weight.grad, ref.weight.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(bn.bias.grad, ref.bias.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(bn.running_mean, ref.running_mean, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(bn.running_var, ref.running_var, atol=1e-6, rtol=1e-6)
        assert int(bn.num_batches_tracked) == int(ref.num_batches_tracked) == step + 1
        plain = nn.BatchNorm2d(5)(x)
        assert out.is_contiguous(memory_format=fmt) and plain.is_contiguous(memory_format=fmt)
        assert seen.count == 1, f"{seen.count} activation-sized tensors written in the forward"


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_split_bn_default_folds_on_cpu_and_equals_the_reshape_formula(fmt):
    """On a CPU the default is the fold (faster there): the same numbers as the reference formula."""
    torch.manual_seed(1)
    bn = SplitBatchNorm2d(3, num_splits=4)
    ref = copy.deepcopy(bn)
    x = torch.randn(8, 3, 4, 5).contiguous(memory_format=fmt)
    torch.testing.assert_close(bn(x), reshape_split_bn(ref, x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn.running_var, ref.running_var, atol=1e-6, rtol=1e-6)
    bn.eval()  # evaluation: plain BatchNorm2d with the kept running statistics
    torch.testing.assert_close(bn(x), F.batch_norm(x, ref.running_mean, ref.running_var, ref.weight, ref.bias),
                               atol=1e-5, rtol=1e-5)
