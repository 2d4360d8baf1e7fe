"""MoCo's augmentations on a whole batch at once, on the training device (`data.aug_device=gpu`).

The CPU path (`pretrain/cpu_aug.py`) augments one PIL image at a time in DataLoader workers. Here the
workers only decode (uint8 tensors, padded into one batch; with `data.decode=gpu` they only read the files
and the step decodes them on the device, `pretrain/decode.py`) and everything else runs as a few batched
tensor operations where the model runs, with every random parameter drawn per sample:

    RandomResizedCrop   scale (min_scale, 1), ratio (3/4, 4/3), 10 tries then a centre crop, as torchvision;
                        `roi_align` over the boxes (bilinear, averaging ceil(box/size) samples per output
                        pixel: an area filter where the crop shrinks, plain bilinear where it grows), on the
                        uint8 images a few at a time: crop first, scale to [0, 1] after (see `resized_crop`)
    v1: grayscale p=0.2 -> ColorJitter(0.4, 0.4, 0.4, 0.4) -> flip p=0.5
    v2: ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8 -> grayscale p=0.2 -> blur p=0.5 (cpu_aug.blur_settings) -> flip
    supervised: crop -> flip
    ColorJitter applies brightness, contrast, saturation and hue in a random order per sample.

Same order, probabilities and parameter distributions as `moco_augmentation`; the tests compare both
paths' sampled parameters and output statistics. Differences by construction: colour operations work on
floats (PIL rounds to uint8 after each), and the crop's downscaling filter is an area average (PIL:
a triangle filter), so pixel values differ slightly while their distribution matches within the tests'
tolerances. Runs on CPU tensors too (the tests and the CPU speed ladder use that).

Nothing in a step waits for the GPU: the constants (jitter ranges, mean/std) are copied to each device once,
the image sizes arrive through pinned memory without blocking (`pretrain/device.py`), and no random draw is
read on the host.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision  # noqa: F401  (registers the compiled torch.ops.torchvision.roi_align)

from mocobench.pretrain.cpu_aug import blur_settings
from mocobench.pretrain.device import DeviceConstant, to_device

# ITU-R 601-2 luma with torchvision's rounding of its first weight (rgb_to_grayscale on tensors)
LUMA = (0.2989, 0.587, 0.114)
VERSIONS = ("v1", "v2", "supervised")


@dataclass
class AugParams:
    """Per-sample parameters of one batch (N samples; all tensors on the augmentation device)."""
    boxes: torch.Tensor        # N x 4 float: top i, left j, height h, width w of the crop (pixels)
    flip: torch.Tensor         # N bool
    jitter: torch.Tensor       # N bool: ColorJitter applied
    factors: torch.Tensor      # N x 4: brightness, contrast, saturation factors, hue shift
    order: torch.Tensor        # N x 4 long: permutation of (0 brightness, 1 contrast, 2 saturation, 3 hue)
    gray: torch.Tensor         # N bool
    blur: torch.Tensor         # N bool
    sigma: torch.Tensor        # N float: blur sigma (pixels)


def sample_crops(heights: torch.Tensor, widths: torch.Tensor, *, scale: tuple[float, float],
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), generator: torch.Generator | None = None,
                 tries: int = 10) -> torch.Tensor:
    """torchvision's RandomResizedCrop.get_params for N images at once -> N x 4 (i, j, h, w), float.

    Per image: up to `tries` draws of area fraction ~ U(scale) and log aspect ~ U(log ratio); the first whose
    rounded box fits is taken, at a uniform integer position; if none fits, the centre crop with the aspect
    clamped to `ratio`."""
    n, dev = heights.shape[0], heights.device
    H, W = heights.float(), widths.float()
    area = (H * W)[:, None]                                                          # N x 1
    u = torch.rand(n, tries, 4, generator=generator, device=dev)                     # N x tries x 4
    target = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[..., 1]
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (h > 0) & (w <= W[:, None]) & (h <= H[:, None])                  # N x tries
    first = torch.argmax(ok.int(), dim=1)                                            # first fitting try (0 if none)
    pick = lambda t: t.gather(1, first[:, None])[:, 0]                               # noqa: E731
    h, w = pick(h), pick(w)
    # uniform integer position: i in [0, H - h], j in [0, W - w]
    i = torch.floor(pick(u[..., 2]) * (H - h + 1)).clamp(max=H - h)
    j = torch.floor(pick(u[..., 3]) * (W - w + 1)).clamp(max=W - w)
    # fallback: the whole image, its aspect clamped to the ratio range, centred
    in_ratio = W / H
    fw = torch.where(in_ratio < ratio[0], W, torch.where(in_ratio > ratio[1], torch.round(H * ratio[1]), W))
    fh = torch.where(in_ratio < ratio[0], torch.round(W / ratio[0]), H)
    fi, fj = torch.div(H - fh, 2, rounding_mode="floor"), torch.div(W - fw, 2, rounding_mode="floor")
    found = ok.any(dim=1)
    return torch.stack([torch.where(found, i, fi), torch.where(found, j, fj),
                        torch.where(found, h, fh), torch.where(found, w, fw)], dim=1)


def roi_align(x: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's compiled RoIAlign (aligned, adaptive sampling): x N x C x H x W float, rois M x 5
    (b, x1, y1, x2, y2) -> M x C x size x size.

    Called directly, not through `torchvision.ops.roi_align`: under `torch.use_deterministic_algorithms(True)`
    that wrapper runs a pure-Python version on CUDA whose temporaries are M x C x size x size x H x W
    (tens of GB at ImageNet shapes). The compiled forward is deterministic (one thread per output value,
    no atomics); only its backward is not, and augmentation never runs a backward."""
    return torch.ops.torchvision.roi_align(x, rois, 1.0, size, size, -1, True)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int, views_per_image: int = 1) -> torch.Tensor:
    """Crop boxes (M x 4: i, j, h, w) out of images (N x C x H x W; box m from images[m // views_per_image])
    and resize each to size x size (bilinear, pixel-centre aligned) -> M x C x size x size float32, in the
    images' units (0..255 for uint8).

    uint8 images are converted to float a few at a time, so that no intermediate is larger than the output
    (or than one image where a single image is larger): a batch padded to one 3000 x 4000 photo costs the
    crops' size, not N float copies of the photo. The scaling to [0, 1] is then done on the crops."""
    n, c, h, w = images.shape
    m = boxes.shape[0]
    if m != n * views_per_image:
        raise ValueError(f"{m} boxes for {n} images x {views_per_image} views")
    i, j, bh, bw = boxes.float().unbind(1)
    image_of = torch.div(torch.arange(m, device=boxes.device), views_per_image, rounding_mode="floor")
    rois = torch.stack([image_of.float(), j, i, j + bw, i + bh], dim=1)  # (b, x1, y1, x2, y2)
    if images.dtype == torch.float32:  # nothing to convert: one call
        return roi_align(images, rois, size)
    per_chunk = max(1, (m * c * size * size) // (c * h * w))  # images per chunk: float copy <= the output
    out = []
    for b0 in range(0, n, per_chunk):
        b1 = min(n, b0 + per_chunk)
        chunk_rois = rois[b0 * views_per_image:b1 * views_per_image].clone()
        chunk_rois[:, 0] -= b0
        out.append(roi_align(images[b0:b1].float(), chunk_rois, size))
    return out[0] if len(out) == 1 else torch.cat(out)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W -> N x 1 x H x W luma."""
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor * x + (1 - factor) * other, clamped to [0, 1]; factor per sample (N)."""
    f = factor.view(-1, 1, 1, 1).to(x.dtype)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), f)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), f)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x), f)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by shift (fraction of a turn, per sample) in HSV space."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    chroma = maxc - minc
    flat = chroma == 0
    safe = torch.where(flat, torch.ones_like(chroma), chroma)
    sat = chroma / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(flat, torch.zeros_like(hue), hue)
    hue = torch.remainder(hue / 6.0 + shift.view(-1, 1, 1).to(x.dtype), 1.0)
    # back to RGB: sector k = floor(6h), fraction within it
    h6 = hue * 6.0
    k = torch.floor(h6)
    frac = h6 - k
    v = maxc
    p = v * (1 - sat)
    q = v * (1 - sat * frac)
    t = v * (1 - sat * (1 - frac))
    k = k.long() % 6
    table = torch.stack([torch.stack(c, dim=1) for c in
                         ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], dim=0)  # 6xNx3xHxW
    return table.gather(0, k[None, :, None].expand(1, -1, 3, -1, -1))[0].clamp_(0, 1)


COLOR_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """ColorJitter per sample: ops in `order` (N x 4) with `factors` (N x 4), only where `apply` (N)."""
    out = x
    for pos in range(4):
        step = out.clone()
        for op_id, op in enumerate(COLOR_OPS):
            sel = (order[:, pos] == op_id) & apply
            # computed for the whole batch and selected (no data-dependent shapes, hence no host sync)
            step = torch.where(sel.view(-1, 1, 1, 1), op(out, factors[:, op_id]), step)
        out = step
    return out


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma (N), reflect padding (as torchvision)."""
    n, c, h, w = x.shape
    half = (kernel - 1) * 0.5
    pos = torch.linspace(-half, half, kernel, device=x.device, dtype=x.dtype)
    k1 = torch.exp(-0.5 * (pos[None] / sigma.to(x.dtype)[:, None]) ** 2)
    k1 = (k1 / k1.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (N*C) x kernel
    pad = kernel // 2
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k1[:, None, :, None], groups=n * c)  # vertical
    y = F.conv2d(y, k1[:, None, None, :], groups=n * c)  # horizontal
    return y.reshape(n, c, h, w)


class BatchAugment:
    """Batched MoCo augmentation: uint8 images (padded) -> normalised crops, per-sample parameters.

    Args (keyword-only): version (v1 | v2 | supervised), size (output side), min_scale (crop area lower
    bound), mean/std (normalisation)."""

    def __init__(self, *, version: str, size: int, min_scale: float, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> None:
        if version not in VERSIONS:
            raise ValueError(f"augmentation must be one of {VERSIONS}, got {version!r}")
        self.version, self.size, self.scale = version, size, (min_scale, 1.0)
        self.mean, self.std = mean, std
        self._mean, self._std = DeviceConstant(mean), DeviceConstant(std)  # copied to each device once
        self.blur_kernel, self.blur_sigma = blur_settings(size)
        j = (0.4, 0.4, 0.4, 0.4) if version == "v1" else (0.4, 0.4, 0.4, 0.1)
        self.jitter_ranges = [(1 - j[0], 1 + j[0]), (1 - j[1], 1 + j[1]), (1 - j[2], 1 + j[2]), (-j[3], j[3])]
        self._lo = DeviceConstant([r[0] for r in self.jitter_ranges])
        self._hi = DeviceConstant([r[1] for r in self.jitter_ranges])

    def sample(self, heights: torch.Tensor, widths: torch.Tensor, generator: torch.Generator | None = None
               ) -> AugParams:
        n, dev = heights.shape[0], heights.device
        u = torch.rand(n, 9, generator=generator, device=dev)
        lo, hi = self._lo.on(dev), self._hi.on(dev)
        boxes = sample_crops(heights, widths, scale=self.scale, generator=generator)
        order = torch.argsort(torch.rand(n, 4, generator=generator, device=dev), dim=1)  # uniform permutation
        v1, v2 = self.version == "v1", self.version == "v2"
        false = torch.zeros(n, dtype=torch.bool, device=dev)
        bs = self.blur_sigma
        return AugParams(
            boxes=boxes, flip=u[:, 0] < 0.5,
            jitter=(u[:, 1] < 0.8) if v2 else (~false if v1 else false),
            factors=lo + (hi - lo) * u[:, 2:6], order=order,
            gray=(u[:, 6] < 0.2) if (v1 or v2) else false,
            blur=(u[:, 7] < 0.5) if v2 else false,
            sigma=bs[0] + (bs[1] - bs[0]) * u[:, 8])

    def apply(self, images: torch.Tensor, params: AugParams, views_per_image: int = 1) -> torch.Tensor:
        """images: N x 3 x H x W uint8 (or float in [0, 1]) -> M x 3 x size x size normalised float32
        (M = len(params.boxes) = N x views_per_image; crop m from images[m // views_per_image])."""
        x = resized_crop(images, params.boxes, self.size, views_per_image)
        x = (x.div_(255.0) if images.dtype == torch.uint8 else x).clamp_(0, 1)
        if self.version == "v1":
            x = torch.where(params.gray.view(-1, 1, 1, 1), grayscale(x).expand_as(x), x)
            x = color_jitter(x, params.factors, params.order, params.jitter)
        elif self.version == "v2":
            x = color_jitter(x, params.factors, params.order, params.jitter)
            x = torch.where(params.gray.view(-1, 1, 1, 1), grayscale(x).expand_as(x), x)
            x = torch.where(params.blur.view(-1, 1, 1, 1), gaussian_blur(x, params.sigma, self.blur_kernel), x)
        x = torch.where(params.flip.view(-1, 1, 1, 1), x.flip(-1), x)
        mean = self._mean.on(x.device, x.dtype).view(1, -1, 1, 1)
        std = self._std.on(x.device, x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def views(self, images: torch.Tensor, sizes: torch.Tensor, n_views: int,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """n_views independent augmentations of each image: N x n_views x 3 x size x size.

        images: N x 3 x Hmax x Wmax uint8, image b in its top-left sizes[b] = (h, w) corner."""
        n = images.shape[0]
        index = torch.arange(n, device=images.device).repeat_interleave(n_views)  # (b0, b0, b1, b1, ...)
        sizes = to_device(sizes, images.device)  # from the loader's pinned batch: no wait
        params = self.sample(sizes[index, 0], sizes[index, 1], generator)
        out = self.apply(images, params, n_views)
        return out.view(n, n_views, *out.shape[1:])
