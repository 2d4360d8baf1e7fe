"""Decoding (data.decode, pretrain/decode.py): torchvision's JPEG decoder against PIL on real JPEGs (the built-in
synthetic scenes, written by PIL here), and the GPU-decode path run on CPU tensors: its header parsing, its
CPU fallback for files nvJPEG is not given, its batching and padding, and what it reports."""
from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mocobench.pretrain import decode as D
from mocobench.pretrain.batches import DeviceAugmentedBatch, DeviceDecodedBatch
from mocobench.pretrain.config import ConfigError
from mocobench.pretrain.data import ImageList, batch_augmentation, pad_collate
from mocobench.pretrain.hooks import SkippedImages
from mocobench.pretrain.log import read_log, skipped_images
from tests.helpers.jpeg import jpeg, pil_pixels, png, scene
from tests.helpers.pretrain import tiny_config

JPEG_KINDS = {  # name: (PIL mode, save options)
    "rgb q90 4:2:0": ("RGB", {"quality": 90}),
    "rgb q75 4:4:4": ("RGB", {"quality": 75, "subsampling": 0}),
    "rgb q95 4:2:2": ("RGB", {"quality": 95, "subsampling": 1}),
    "rgb progressive": ("RGB", {"quality": 85, "progressive": True}),
    "rgb optimized": ("RGB", {"quality": 80, "optimize": True}),
    "grayscale": ("L", {"quality": 90}),
    "cmyk": ("CMYK", {"quality": 90}),
}


@pytest.mark.parametrize("kind", list(JPEG_KINDS))
def test_torchvision_jpeg_decode_gives_pils_pixels(kind, monkeypatch):
    mode, save = JPEG_KINDS[kind]
    for index, size in ((0, (96, 72)), (3, (61, 47))):  # odd sizes: partial MCUs, chroma upsampling at the edge
        data = jpeg(scene(index, size), mode, **save)
        with monkeypatch.context() as m:
            m.setattr(D, "decode_pil", None)  # torchvision decodes it, not PIL
            got = D.decode_cpu(data, jpeg_decoder="torchvision")
        assert got.dtype == torch.uint8 and got.shape == (3, size[1], size[0])
        diff = (got.int() - pil_pixels(data).int()).abs()
        assert diff.max() == 0, f"{kind}: max |diff| {diff.max()}, on {(diff > 0).float().mean():.2%} of the values"


def test_the_header_gives_size_and_what_nvjpeg_is_not_given():
    pixels = scene(1, (70, 50))
    rgb, prog = jpeg(pixels), jpeg(pixels, progressive=True)
    h = D.jpeg_header(rgb)
    assert (h.height, h.width, h.components, h.precision, h.marker, h.complete) == (50, 70, 3, 8, 0xC0, True)
    assert D.jpeg_header(prog).marker == 0xC2 and D.nvjpeg_refusal(D.jpeg_header(prog)) is None
    assert D.nvjpeg_refusal(h) is None
    assert D.nvjpeg_refusal(D.jpeg_header(rgb[: len(rgb) // 2])) .startswith("no end-of-image marker")
    assert D.nvjpeg_refusal(D.jpeg_header(jpeg(pixels, "CMYK"))) == "CMYK JPEG"
    assert D.nvjpeg_refusal(D.jpeg_header(jpeg(pixels, "L"))) == "grayscale JPEG"
    assert D.jpeg_header(png(pixels)) is None and D.nvjpeg_refusal(None) == "not a JPEG"
    assert D.jpeg_header(b"\xff\xd8\xff") is None and D.jpeg_header(b"") is None


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory) -> dict[str, Path]:
    """Six files of different sizes: three plain JPEGs, a truncated one, a CMYK JPEG and a PNG."""
    root = tmp_path_factory.mktemp("mixed")
    contents = {"a.jpg": jpeg(scene(0, (64, 48))), "b.jpg": jpeg(scene(1, (40, 56)), progressive=True),
                "c.jpg": jpeg(scene(2, (50, 50)))}
    whole = jpeg(scene(3, (48, 64)))
    contents["truncated.jpg"] = whole[: len(whole) * 2 // 3]
    contents["cmyk.jpg"] = jpeg(scene(4, (36, 44)), "CMYK")
    contents["image.png"] = png(scene(5, (30, 20)))
    paths = {}
    for name, data in contents.items():
        paths[name] = root / name
        paths[name].write_bytes(data)
    return paths


ORDER = ("a.jpg", "truncated.jpg", "cmyk.jpg", "b.jpg", "image.png", "c.jpg")


def gpu_decode_batch(mixed_files):
    """One loader batch under data.decode=gpu, built by the dataset and collate function the loader uses."""
    samples = [(mixed_files[name], k) for k, name in enumerate(ORDER)]
    dataset = ImageList(samples, lambda x: x, read=D.read_encoded, report_skips=True)
    return D.encoded_collate([dataset[i] for i in range(len(dataset))])


def test_a_truncated_a_cmyk_and_a_png_file_in_one_batch(mixed_files):
    encoded, labels, notes = gpu_decode_batch(mixed_files)
    # the truncated file is skipped as unreadable (replaced by the next file, the CMYK one), not fatal
    assert labels.tolist() == [0, 2, 2, 3, 4, 5]
    skipped = [n for n in notes if n and not n.startswith(D.CPU_DECODED)]
    assert len(skipped) == 1 and skipped[0].startswith(f"{mixed_files['truncated.jpg']} (")
    cpu = sorted(n[len(D.CPU_DECODED):] for n in notes if n.startswith(D.CPU_DECODED))
    assert cpu == sorted([f"{mixed_files['cmyk.jpg']} (CMYK JPEG)"] * 2 + [f"{mixed_files['image.png']} (not a JPEG)"])
    # the three whole RGB JPEGs travel encoded, in one byte tensor; the others decoded on the CPU
    assert encoded.encoded_index == [0, 3, 5] and encoded.image_index == [1, 2, 4]
    assert encoded.data.numel() == sum(mixed_files[n].stat().st_size for n in ("a.jpg", "b.jpg", "c.jpg"))
    # decoded and padded "on the device" (CPU tensors): exactly what PIL decoding + pad_collate give
    padded = D.decode_padded(encoded, torch.device("cpu"))
    names = ("a.jpg", "cmyk.jpg", "cmyk.jpg", "b.jpg", "image.png", "c.jpg")
    reference, sizes, _ = pad_collate([(pil_pixels(mixed_files[n].read_bytes()), 0) for n in names])
    assert torch.equal(encoded.sizes, sizes) and torch.equal(padded, reference)


def test_gpu_decode_step_makes_the_views_of_cpu_decoding(mixed_files, tmp_path):
    """DeviceDecodedBatch (decode, pad, augment) equals DeviceAugmentedBatch on the PIL-decoded, padded batch."""
    cfg = tiny_config(tmp_path, tmp_path / "out", "data.aug_device=gpu", "data.decode=gpu")
    kwargs = dict(device=torch.device("cpu"), views=2, seed=3, rank=1)
    encoded, labels, _ = gpu_decode_batch(mixed_files)
    on_device = DeviceDecodedBatch(batch_augmentation(cfg), collate_fn=D.encoded_collate, **kwargs)
    views, targets = on_device((encoded, labels), step=7)
    names = ("a.jpg", "cmyk.jpg", "cmyk.jpg", "b.jpg", "image.png", "c.jpg")
    images, sizes, _ = pad_collate([(pil_pixels(mixed_files[n].read_bytes()), 0) for n in names])
    reference = DeviceAugmentedBatch(batch_augmentation(cfg), collate_fn=pad_collate, **kwargs)
    expected, _ = reference((images, sizes, labels), step=7)
    assert views.shape == (6, 2, 3, 16, 16) and torch.equal(views, expected) and torch.equal(targets, labels)


def test_a_file_the_batched_decode_fails_on_is_found_and_named(mixed_files, monkeypatch):
    encoded, _, _ = gpu_decode_batch(mixed_files)
    real = D.decode_jpegs

    def batched_fails(files, device):
        if len(files) > 1:
            raise RuntimeError("Error while decoding JPEG images")
        return real(files, device)

    monkeypatch.setattr(D, "decode_jpegs", batched_fails)  # one by one: every file decodes
    assert torch.equal(D.decode_padded(encoded, torch.device("cpu")),
                       pad_collate([(pil_pixels(mixed_files[n].read_bytes()), 0) for n in
                                    ("a.jpg", "cmyk.jpg", "cmyk.jpg", "b.jpg", "image.png", "c.jpg")])[0])
    start = encoded.offsets[1]
    encoded.data[start + 200:start + 260] = 0xFF  # b.jpg: header whole, scan data broken
    monkeypatch.setattr(D, "decode_jpegs", lambda files, device: (_ for _ in ()).throw(RuntimeError("nvjpeg")))
    with pytest.raises(ValueError, match=r"b\.jpg: its header reads as a whole JPEG, but neither"):
        D.decode_padded(encoded, torch.device("cpu"))


def test_the_hook_reports_cpu_decoded_files_once_and_apart_from_unreadable_ones(tmp_path, caplog):
    from mocobench.pretrain.config import DataConfig, PretrainConfig, TrainConfig

    cfg = PretrainConfig(data=DataConfig(max_bad_images=0), train=TrainConfig(log_every=1))
    trainer = SimpleNamespace(cfg=cfg, out=tmp_path, env=SimpleNamespace(is_main=True), resume_from=None)
    hook = SkippedImages()
    hook.before_train(trainer)
    notes = [D.CPU_DECODED + "x/cmyk.jpg (CMYK JPEG)", "", D.CPU_DECODED + "x/p.png (not a JPEG)"]
    with caplog.at_level(logging.INFO, logger="mocobench.pretrain.trainer"):
        for step in (1, 2):  # the same files in two steps: reported once
            hook.before_step(trainer, SimpleNamespace(skipped=notes))
            hook.report(trainer, epoch=0, step=step)  # max_bad_images=0: not counted as unreadable
    assert hook.cpu_decoded == {"x/cmyk.jpg", "x/p.png"} and not hook.seen
    assert skipped_images(tmp_path, kind="cpu_decoded") == ["x/cmyk.jpg", "x/p.png"]
    assert skipped_images(tmp_path) == []
    assert sum("decoded on the CPU" in r.message for r in caplog.records) == 2
    (tmp_path / "log.jsonl").open("a").write('{"epoch": 0, "step": 2, "loss": 1.0, "lr": 0.1}\n')
    assert len(read_log(tmp_path)) == 1  # the notes are not measurements


def test_decode_gpu_needs_the_batched_augmentation(tmp_path):
    with pytest.raises(ConfigError, match="data.decode=gpu .* set data.aug_device=gpu"):
        tiny_config(tmp_path, tmp_path / "out", "data.decode=gpu")
    with pytest.raises(ConfigError, match="data.decode='nvjpeg': choose one of"):
        tiny_config(tmp_path, tmp_path / "out", "data.decode=nvjpeg")


def test_the_gpu_decode_step_makes_no_blocking_copies(mixed_files, tmp_path, monkeypatch):
    """As test_cuda_path's check of the batched augmentation: no tensor built from host values on the device
    and no blocking copy to it, in a step after the first (which copies the constants once)."""
    cfg = tiny_config(tmp_path, tmp_path / "out", "data.aug_device=gpu", "data.decode=gpu")
    prepare = DeviceDecodedBatch(batch_augmentation(cfg), collate_fn=D.encoded_collate, device=torch.device("cpu"),
                                 views=2, seed=0, rank=0)
    batch = gpu_decode_batch(mixed_files)[:2]
    prepare(batch, step=0)
    made, copied = [], []
    tensor, to, copy_ = torch.tensor, torch.Tensor.to, torch.Tensor.copy_

    def spy_tensor(*args, **kwargs):
        made.extend([kwargs["device"]] if kwargs.get("device") is not None else [])
        return tensor(*args, **kwargs)

    def spy_to(self, *args, **kwargs):
        if (any(isinstance(a, (torch.device, str)) for a in args) or "device" in kwargs) and not kwargs.get(
                "non_blocking", False):
            copied.append(("to", args, kwargs))
        return to(self, *args, **kwargs)

    def spy_copy(self, src, non_blocking=False):
        if src.device != self.device or not non_blocking and self.dim() == 3:  # host images: asynchronous
            copied.append(("copy_", src.shape))
        return copy_(self, src, non_blocking)

    monkeypatch.setattr(torch, "tensor", spy_tensor)
    monkeypatch.setattr(torch.Tensor, "to", spy_to)
    monkeypatch.setattr(torch.Tensor, "copy_", spy_copy)
    prepare(batch, step=1)
    monkeypatch.undo()
    assert not made and not copied, (made, copied)


@pytest.mark.slow
def test_a_run_with_gpu_decode_reports_what_it_decoded_on_the_cpu(mixed_files, tmp_path):
    from mocobench.pretrain.trainer import Trainer

    data = tmp_path / "data"
    for k, name in enumerate(ORDER * 2):  # 12 images in 2 classes
        (data / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
        (data / f"c{k % 2}" / f"{k}_{name}").write_bytes(mixed_files[name].read_bytes())
    cfg = tiny_config(data, tmp_path / "out", "data.aug_device=gpu", "data.decode=gpu", "optim.epochs=1",
                      "moco.bn_groups=1", "data.workers=1", "data.prefetch=1", "optim.batch_size=12",
                      "moco.queue_size=24")  # one step that sees every file
    trainer = Trainer(cfg)
    trainer.train()
    hook = next(h for h in trainer.hooks if isinstance(h, SkippedImages))
    assert sorted(Path(p).name for p in hook.seen) == ["1_truncated.jpg", "7_truncated.jpg"]
    assert sorted(Path(p).name for p in skipped_images(tmp_path / "out", kind="cpu_decoded")) == [
        "10_image.png", "2_cmyk.jpg", "4_image.png", "8_cmyk.jpg"]


def test_a_run_saved_before_data_decode_existed_resumes_under_the_default(tmp_path):
    from mocobench.pretrain.config import config_diff

    cfg = tiny_config(tmp_path, tmp_path / "out")
    stored = cfg.to_dict()  # as config.yaml and checkpoints hold it
    old = {**stored, "data": {k: v for k, v in stored["data"].items() if k != "decode"}}
    assert cfg.data.decode == "torchvision" and config_diff(old, cfg) == []
    gpu = tiny_config(tmp_path, tmp_path / "out", "data.aug_device=gpu", "data.decode=gpu")
    assert "data.decode: 'torchvision' != 'gpu'" in config_diff({**old, "data": {**old["data"], "aug_device": "gpu"}},
                                                                  gpu)
