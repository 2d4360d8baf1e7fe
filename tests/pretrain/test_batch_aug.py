"""The batched on-device augmentation (data.aug_device=gpu) against torchvision's per-image CPU pipeline.

Three levels: each operation equals torchvision's functional op for the same parameters; the sampled
parameters follow the same distributions (two-sample KS tests at alpha = 0.001, binomial z-tests);
whole pipelines give outputs with the same statistics (z-tests from the samples' own standard errors).
All on CPU tensors: the code is the same on a GPU.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision import transforms as T

from mocobench.pretrain import batch_aug as B
from mocobench.pretrain.cpu_aug import MEAN, STD, moco_augmentation, supervised_augmentation
from mocobench.pretrain.data import decoded_image, pad_collate

KS_C = 1.949  # c(alpha) of the two-sample Kolmogorov-Smirnov test at alpha = 0.001
Z = 4.5  # z-test bound: about 7e-6 two-sided per statistic under the null


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def assert_same_distribution(a, b, what: str) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    crit = KS_C * math.sqrt((len(a) + len(b)) / (len(a) * len(b)))
    d = ks_statistic(a, b)
    assert d < crit, f"{what}: KS statistic {d:.4f} >= {crit:.4f} (distributions differ)"


def assert_rate(flags: torch.Tensor, p: float, what: str) -> None:
    n = flags.numel()
    rate = flags.float().mean().item()
    assert abs(rate - p) < Z * math.sqrt(p * (1 - p) / n) + 1e-12, f"{what}: rate {rate:.4f}, expected {p}"


# ---------------------------------------------------------------- each operation
@pytest.fixture
def floats():
    torch.manual_seed(0)
    return torch.rand(6, 3, 20, 24)


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue"])
def test_colour_ops_equal_torchvision_per_sample(floats, name):
    factor = torch.rand(6) * 0.8 - 0.4 if name == "hue" else torch.rand(6) * 0.8 + 0.6
    ours = getattr(B, f"adjust_{name}")(floats, factor)
    ref = torch.stack([getattr(TF, f"adjust_{name}")(floats[i], float(factor[i])) for i in range(6)])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_grayscale_blur_and_jitter_order_equal_torchvision(floats):
    torch.testing.assert_close(B.grayscale(floats), TF.rgb_to_grayscale(floats), atol=1e-6, rtol=0)
    sigma = torch.rand(6) * 1.9 + 0.1
    ref = torch.stack([TF.gaussian_blur(floats[i], [5, 5], [float(sigma[i])] * 2) for i in range(6)])
    torch.testing.assert_close(B.gaussian_blur(floats, sigma, 5), ref, atol=1e-5, rtol=0)
    # ColorJitter: the four ops in each sample's own order, skipped where not applied
    factors = torch.tensor([[1.2, 0.7, 1.3, 0.05]] * 6)
    order = torch.stack([torch.randperm(4) for _ in range(6)])
    apply = torch.tensor([True, True, False, True, True, False])
    ours = B.color_jitter(floats, factors, order, apply)
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(6):
        x = floats[i]
        for op in order[i].tolist() if apply[i] else []:
            x = fns[op](x, float(factors[i, op]))
        torch.testing.assert_close(ours[i], x, atol=1e-5, rtol=0)


def test_crop_is_bilinear_resize_of_the_box(floats):
    """Enlarging crops equal torchvision's resized_crop except on the outermost output pixels: roi_align
    interpolates with the pixels just outside the box where torchvision repeats the box's edge pixel."""
    boxes = torch.tensor([[2., 3., 10., 12.], [0, 0, 20, 24], [5, 1, 7, 9], [1, 1, 15, 15], [0, 4, 16, 16],
                          [3, 3, 8, 8]])
    ours = B.resized_crop(floats, boxes, 32)
    for i in range(6):
        ref = TF.resized_crop(floats[i], *[int(v) for v in boxes[i]], [32, 32], antialias=True)
        torch.testing.assert_close(ours[i, :, 2:-2, 2:-2], ref[:, 2:-2, 2:-2], atol=1e-5, rtol=0)
    # shrinking crops average the box (an area filter): the mean over the box is kept
    small = B.resized_crop(floats, boxes, 2)
    for i in (1, 3, 4):  # boxes whose sides are multiples of 2: the bins tile the box exactly
        i0, j0, h, w = (int(v) for v in boxes[i])
        box = floats[i, :, i0:i0 + h, j0:j0 + w]
        torch.testing.assert_close(small[i].mean((1, 2)), box.mean((1, 2)), atol=0.02, rtol=0)


def test_padding_does_not_leak_into_crops():
    """An image padded into a larger batch gives the same crops as alone (pad_collate's layout)."""
    torch.manual_seed(1)
    small, big = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8), torch.randint(0, 256, (3, 50, 40),
                                                                                       dtype=torch.uint8)
    batch, sizes, labels = pad_collate([(small, 3), (big, 5)])
    assert batch.shape == (2, 3, 50, 40) and sizes.tolist() == [[20, 30], [50, 40]] and labels.tolist() == [3, 5]
    aug = B.BatchAugment(version="v2", size=16, min_scale=0.2, mean=MEAN, std=STD)
    params = aug.sample(sizes[:1, 0], sizes[:1, 1], torch.Generator().manual_seed(0))
    alone = aug.apply(small[None], params)
    padded = aug.apply(batch[:1], params)  # padded to the larger image's 50 x 40
    torch.testing.assert_close(padded, alone)


# ---------------------------------------------------------------- sampled parameters
@pytest.mark.parametrize("shape", [(40, 56), (375, 500), (30, 150), (20, 200)])
def test_crop_parameters_follow_torchvision(shape):
    """Same distribution of (top, left, height, width) as RandomResizedCrop.get_params, including the
    fallback centre crop (30 x 150: sometimes; 20 x 200: always)."""
    n, (h, w) = 3000, shape
    torch.manual_seed(0)
    img = torch.zeros(1, h, w)
    ref = np.array([T.RandomResizedCrop.get_params(img, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)) for _ in range(n)])
    ours = B.sample_crops(torch.full((n,), h), torch.full((n,), w), scale=(0.2, 1.0),
                          generator=torch.Generator().manual_seed(1)).numpy()
    assert (ours[:, 0] >= 0).all() and (ours[:, 0] + ours[:, 2] <= h).all() and (ours[:, 3] >= 1).all()
    assert (ours[:, 1] >= 0).all() and (ours[:, 1] + ours[:, 3] <= w).all()
    for k, name in enumerate(("top", "left", "height", "width")):
        if np.ptp(ref[:, k]) == 0:  # a fixed value (fallback only): must be exactly it
            assert (ours[:, k] == ref[0, k]).all(), f"{name}: {ours[:3, k]} != {ref[0, k]}"
        else:
            assert_same_distribution(ours[:, k], ref[:, k], f"{shape} crop {name}")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_other_parameters_follow_the_cpu_pipeline(version):
    """Probabilities, jitter ranges, blur sigma and the jitter order are read off the CPU pipeline's own
    transforms and compared with what the batched path samples."""
    size, n = 64, 4000
    ops = moco_augmentation(version, size, 0.2).transforms
    find = lambda kind: [o for o in ops if isinstance(o, kind)]  # noqa: E731
    applies = find(T.RandomApply)
    jitter = find(T.ColorJitter)[0] if version == "v1" else applies[0].transforms[0]
    gray_p = find(T.RandomGrayscale)[0].p
    flip_p = find(T.RandomHorizontalFlip)[0].p
    aug = B.BatchAugment(version=version, size=size, min_scale=0.2, mean=MEAN, std=STD)
    prm = aug.sample(torch.full((n,), 100), torch.full((n,), 120), torch.Generator().manual_seed(2))
    assert_rate(prm.flip, flip_p, "flip")
    assert_rate(prm.gray, gray_p, "grayscale")
    assert_rate(prm.jitter, applies[0].p if version == "v2" else 1.0, "jitter applied")
    if version == "v2":
        blur = applies[1].transforms[0]
        assert aug.blur_kernel == blur.kernel_size[0]
        assert_rate(prm.blur, applies[1].p, "blur applied")
        ref_sigma = [T.GaussianBlur.get_params(*blur.sigma) for _ in range(n)]
        assert_same_distribution(prm.sigma.numpy(), ref_sigma, "blur sigma")
    else:
        assert not prm.blur.any()
    torch.manual_seed(3)
    ref = [T.ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
           for _ in range(n)]
    for k, name in enumerate(("brightness", "contrast", "saturation", "hue")):
        assert_same_distribution(prm.factors[:, k].numpy(), [r[k + 1] for r in ref], f"jitter {name}")
    code = lambda perm: sum(int(v) * 4 ** i for i, v in enumerate(perm))  # noqa: E731
    assert_same_distribution([code(p) for p in prm.order], [code(r[0]) for r in ref], "jitter order")


# ---------------------------------------------------------------- whole pipelines
def scenes(seed: int = 0) -> list[Image.Image]:
    """Images of different sizes with gradients, flat rectangles (edges) and noise."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in [(40, 56), (64, 48), (36, 36), (50, 70)]:
        yy, xx = np.mgrid[0:h, 0:w]
        img = rng.random(3) * 255 * (0.5 + 0.5 * np.stack([xx / w, yy / h, 1 - xx / w], -1))
        for _ in range(6):
            y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
            img[y0:y0 + rng.integers(4, h // 2), x0:x0 + rng.integers(4, w // 2)] = rng.random(3) * 255
        img += rng.normal(0, 10, img.shape)
        out.append(Image.fromarray(img.clip(0, 255).astype(np.uint8)))
    return out


def output_statistics(x: torch.Tensor) -> torch.Tensor:
    """Per output image: channel means, pixel std, mean |horizontal gradient| (sharpness: blur, resize filter),
    grey (all channels equal), mean of the left half (flip). M x 7."""
    x = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    grey = ((x.max(1).values - x.min(1).values).amax((1, 2)) < 1e-2).float()
    sharp = (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
    left = x[..., : x.shape[-1] // 2].mean((1, 2, 3))
    return torch.cat([x.mean((2, 3)), x.std((1, 2, 3))[:, None], sharp[:, None], grey[:, None], left[:, None]], 1)


def compare(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|difference of means| / its standard error, per statistic (0 where both are constant)."""
    se = torch.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
    return torch.where(se > 0, (a.mean(0) - b.mean(0)).abs() / se.clamp(min=1e-12), torch.zeros_like(se))


@pytest.mark.parametrize("version", ["v1", "v2", "supervised"])
def test_outputs_have_the_statistics_of_the_cpu_pipeline(version):
    size, reps = 32, 150 if version == "v2" else 300  # PIL's blur makes the CPU v2 pipeline slow
    images = scenes()
    cpu = (supervised_augmentation(size, 0.2) if version == "supervised" else moco_augmentation(version, size, 0.2))
    torch.manual_seed(0)
    a = output_statistics(torch.stack([cpu(im) for _ in range(reps) for im in images]))
    batch, sizes, _ = pad_collate([(decoded_image(im), 0) for im in images])
    aug = B.BatchAugment(version=version, size=size, min_scale=0.2, mean=MEAN, std=STD)
    out = aug.views(batch, sizes, reps, torch.Generator().manual_seed(1))
    assert out.shape == (len(images), reps, 3, size, size)
    b = output_statistics(out.reshape(-1, 3, size, size))
    z = compare(a, b)
    assert (z < Z).all(), f"{version}: z per statistic {z.numpy().round(2)} (means cpu {a.mean(0).numpy().round(4)}, " \
                          f"batched {b.mean(0).numpy().round(4)})"
    if version == "v2":  # the comparison has teeth: without grayscale it fails. What it cannot see at this
        # sample size (checked): no blur (at 32 px the recipe's sigma is 0.014-0.29 px), no colour jitter (z ~3 on
        # the std), min_scale 0.6 instead of 0.2; the parameter tests above cover those
        index = torch.arange(len(images)).repeat_interleave(reps)
        for wrong in ("gray",):
            prm = aug.sample(sizes[index, 0], sizes[index, 1], torch.Generator().manual_seed(1))
            setattr(prm, wrong, torch.zeros_like(getattr(prm, wrong)))
            zb = compare(a, output_statistics(aug.apply(batch, prm, reps)))
            assert (zb >= Z).any(), f"a wrong pipeline ({wrong}) passed: z {zb.numpy().round(2)}"


def test_trainer_trains_with_batched_augmentation(tmp_path):
    """data.aug_device=gpu through the real trainer (CPU tensors): workers decode, the step augments two views."""
    from mocobench.pretrain.trainer import Trainer
    from tests.helpers.pretrain import make_imagefolder, tiny_config

    make_imagefolder(tmp_path / "d", per_class=8)
    trainer = Trainer(tiny_config(tmp_path / "d", tmp_path / "o", "data.aug_device=gpu", "optim.epochs=1"))
    images, sizes, targets, skipped = next(iter(trainer.loader))  # skipped: unreadable-file notes
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 20, 20) and sizes.tolist() == [[20, 20]] * 8
    assert skipped == [""] * 8  # every image readable
    views = trainer.prepare.augment_views(images, sizes, trainer.step)
    assert views.shape == (8, 2, 3, 16, 16) and not torch.equal(views[:, 0], views[:, 1])
    final = trainer.train()
    assert final.is_file() and all(math.isfinite(e["loss"]) for e in trainer.history)
