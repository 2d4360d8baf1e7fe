"""Decoding training images (`data.decode`): on the CPU in the loader's workers, or batched on the training device.

    torchvision (default)  JPEGs through torchvision's libjpeg-turbo decoder (`decode_jpeg`), anything else (and
                           any JPEG it rejects) through PIL. Same pixels as PIL: the tests compare both on
                           RGB, grayscale and CMYK JPEGs; benchmarks/perf/RESULTS.md on CIFAR-10's.
    pil                    everything through PIL (what runs did before the key existed)
    gpu                    (needs data.aug_device=gpu) the workers only read the file and parse its JPEG header;
                           the training step decodes the whole batch on the device (`decode_jpeg(list, device)`:
                           batched nvJPEG on CUDA, a loop on the CPU). Files nvJPEG is not given -- not a JPEG
                           (PNG, ...), not 3 x 8-bit components (grayscale, CMYK), not Huffman-coded, or without
                           its end-of-image marker (truncated) -- are decoded on the CPU in the worker instead, and
                           reported once per run (a "cpu_decoded" line in log.jsonl); a file the CPU cannot decode
                           either is skipped as an unreadable image, as with CPU decoding.

Where nvJPEG decodes: A100 and H100 GPUs have a hardware JPEG decoder, which torchvision uses for baseline JPEGs
in one batched call; progressive JPEGs, and every JPEG on GPUs without that decoder, go through nvJPEG's hybrid
path, whose Huffman decoding runs on the host, in the training process, one image at a time.

The torchvision ops are called directly (`torch.ops.image.*`, as batch_aug.py calls roi_align): the Python
wrappers warn on every call that torchvision's image I/O is deprecated in favour of TorchCodec.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision.io  # noqa: F401  (loads the image extension: torch.ops.image)
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

DECODES = ("torchvision", "pil", "gpu")
RGB = 3  # torchvision.io.ImageReadMode.RGB
CPU_DECODED = "cpu-decoded: "  # prefix of a loader note on a file decoded on the CPU under data.decode=gpu
# start-of-frame markers: Huffman baseline, extended, progressive (what nvJPEG takes) and the others
HUFFMAN_SOF = {0xC0, 0xC1, 0xC2}
OTHER_SOF = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class JpegHeader:
    height: int
    width: int
    components: int  # 1 grayscale, 3 YCbCr/RGB, 4 CMYK/YCCK
    precision: int   # bits per sample
    marker: int      # the start-of-frame marker (0xC0 baseline, 0xC2 progressive, ...)
    complete: bool   # ends with the end-of-image marker (else: truncated)


def jpeg_header(data: bytes) -> JpegHeader | None:
    """The frame header of a JPEG file's bytes; None when they are not a JPEG or its header is unreadable."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or start of scan before any frame header
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in HUFFMAN_SOF or marker in OTHER_SOF:
            if pos + 10 > n:
                return None
            # entropy-coded data never holds FF D9 (an FF there is followed by 00 or a restart marker), so the
            # marker within the last bytes (a few may trail it) means the file is whole
            return JpegHeader(height=int.from_bytes(data[pos + 5:pos + 7], "big"),
                              width=int.from_bytes(data[pos + 7:pos + 9], "big"), components=data[pos + 9],
                              precision=data[pos + 4], marker=marker, complete=b"\xff\xd9" in data[-64:])
        pos += 2 + length
    return None


def nvjpeg_refusal(header: JpegHeader | None) -> str | None:
    """Why a file is decoded on the CPU under data.decode=gpu, or None when nvJPEG gets it."""
    if header is None:
        return "not a JPEG"
    if not header.complete:
        return "no end-of-image marker at its end: truncated, or data after the image"
    if header.components != 3:
        return {1: "grayscale JPEG", 4: "CMYK JPEG"}.get(header.components, f"{header.components}-component JPEG")
    if header.marker not in HUFFMAN_SOF or header.precision != 8:
        return f"JPEG with start-of-frame 0x{header.marker:X}, {header.precision}-bit"
    if header.height == 0 or header.width == 0:
        return "JPEG without its size in the frame header"
    return None


def as_bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode_pil(data: bytes) -> torch.Tensor:
    """3 x H x W uint8 through PIL (RGB)."""
    with Image.open(io.BytesIO(data)) as im:
        return pil_to_tensor(im.convert("RGB"))


def decode_cpu(data: bytes, *, jpeg_decoder: str = "torchvision") -> torch.Tensor:
    """3 x H x W uint8 on the CPU: JPEGs through torchvision (jpeg_decoder="torchvision"), the rest and any JPEG
    it rejects through PIL. Raises OSError or ValueError (PIL's) for a file neither can read."""
    if jpeg_decoder == "torchvision" and data[:2] == b"\xff\xd8":
        try:
            return torch.ops.image.decode_jpeg(as_bytes_tensor(data), RGB, False)
        except RuntimeError:
            pass  # PIL decides: it reads some JPEGs libjpeg-turbo's strict mode refuses, and raises for the rest
    return decode_pil(data)


def read_pil(path: str | os.PathLike) -> Image.Image:
    """A PIL RGB image (the CPU augmentation path's input), decoded by PIL as before data.decode existed."""
    with Image.open(path) as im:
        return im.convert("RGB")


@dataclass
class ReadTensor:
    """path -> 3 x H x W uint8 decoded on the CPU (data.aug_device=gpu with CPU decoding); picklable for workers."""
    jpeg_decoder: str = "torchvision"

    def __call__(self, path: str | os.PathLike) -> torch.Tensor:
        return decode_cpu(Path(path).read_bytes(), jpeg_decoder=self.jpeg_decoder)


@dataclass
class Encoded:
    """One file as a worker hands it over under data.decode=gpu: its bytes (for the device) or, where nvJPEG is
    not given the file, the image decoded on the CPU, with the reason."""
    path: str
    height: int
    width: int
    data: torch.Tensor | None = None      # 1-D uint8: the JPEG file
    image: torch.Tensor | None = None     # 3 x H x W uint8: decoded on the CPU
    note: str = ""                        # "<path> (<why on the CPU>)" where image is set


def read_encoded(path: str | os.PathLike) -> Encoded:
    """The worker's part of data.decode=gpu: read the file and parse its header; decode on the CPU only what
    nvJPEG is not given (raising OSError/ValueError, like PIL, when the CPU cannot read it either)."""
    data = Path(path).read_bytes()
    header = jpeg_header(data)
    why = nvjpeg_refusal(header)
    if why is None:
        return Encoded(str(path), header.height, header.width, data=as_bytes_tensor(data))
    image = decode_cpu(data)
    return Encoded(str(path), image.shape[1], image.shape[2], image=image, note=f"{path} ({why})")


@dataclass
class EncodedBatch:
    """A batch under data.decode=gpu, as the loader hands it to the training process.

    The encoded files travel as one concatenated byte tensor (one shared-memory block per batch, not one per
    file); `sizes` (N x 2: h, w) come from the headers, so the padded batch's shape is known on the host
    before anything is decoded."""
    data: torch.Tensor                    # 1-D uint8: the encoded files, concatenated
    offsets: list[int]                    # file k is data[offsets[k]:offsets[k + 1]]
    encoded_index: list[int]              # batch position of each encoded file
    paths: list[str]                      # ... and its path (for errors)
    images: list[torch.Tensor]            # decoded on the CPU (3 x h x w uint8) ...
    image_index: list[int]                # ... and their batch positions
    sizes: torch.Tensor                   # N x 2 long
    notes: list[str] = field(default_factory=list)

    def pin_memory(self) -> EncodedBatch:  # the DataLoader's pin_memory thread calls this
        return EncodedBatch(self.data, self.offsets, self.encoded_index, self.paths,
                            [im.pin_memory() for im in self.images], self.image_index, self.sizes.pin_memory(),
                            self.notes)

    def files(self) -> list[torch.Tensor]:
        return [self.data[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]


def encoded_collate(batch: list[tuple]) -> tuple:
    """[(Encoded, label, skipped notes)] -> (EncodedBatch, labels N, notes): the notes list the files skipped as
    unreadable and, prefixed with CPU_DECODED, those decoded on the CPU."""
    items: list[Encoded] = [item[0] for item in batch]
    enc = [(b, it) for b, it in enumerate(items) if it.data is not None]
    offsets = [0]
    for _, it in enc:
        offsets.append(offsets[-1] + it.data.numel())
    data = torch.cat([it.data for _, it in enc]) if enc else torch.zeros(0, dtype=torch.uint8)
    dec = [(b, it) for b, it in enumerate(items) if it.data is None]
    out = EncodedBatch(data=data, offsets=offsets, encoded_index=[b for b, _ in enc], paths=[it.path for _, it in enc],
                       images=[it.image for _, it in dec], image_index=[b for b, _ in dec],
                       sizes=torch.tensor([[it.height, it.width] for it in items], dtype=torch.long))
    notes = [item[2] if len(item) > 2 else "" for item in batch]
    notes += [CPU_DECODED + it.note for it in items if it.note]
    return out, torch.tensor([item[1] for item in batch], dtype=torch.long), notes


def decode_jpegs(files: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """JPEG files (1-D uint8 CPU tensors) -> 3 x H x W uint8 RGB images on `device` (CUDA: one batched nvJPEG call)."""
    if device.type == "cuda":
        return torch.ops.image.decode_jpegs_cuda(files, RGB, device)
    return [torch.ops.image.decode_jpeg(f, RGB, False) for f in files]


def decode_padded(batch: EncodedBatch, device: torch.device) -> torch.Tensor:
    """The batch decoded on `device` and padded: N x 3 x Hmax x Wmax uint8, image b in its top-left corner (what
    pad_collate makes on the host). Shapes are read from the header sizes and the tensors' metadata: no wait
    for the device."""
    n = batch.sizes.shape[0]
    hmax, wmax = (int(v) for v in batch.sizes.max(dim=0).values) if n else (0, 0)
    out = torch.zeros(n, 3, hmax, wmax, dtype=torch.uint8, device=device)
    if batch.encoded_index:
        files = batch.files()
        try:
            decoded = decode_jpegs(files, device)
        except RuntimeError:  # one bad file fails the batched call: decode one by one to find it
            decoded = [_decode_one(f, path, device) for f, path in zip(files, batch.paths)]
        for b, image, path in zip(batch.encoded_index, decoded, batch.paths):
            h, w = (int(v) for v in batch.sizes[b])
            if tuple(image.shape) != (3, h, w):
                raise ValueError(f"{path}: decoded to {tuple(image.shape)}, its JPEG header says 3 x {h} x {w}")
            out[b, :, :h, :w] = image
    for b, image in zip(batch.image_index, batch.images):
        out[b, :, :image.shape[1], :image.shape[2]].copy_(image, non_blocking=True)
    return out


def _decode_one(file: torch.Tensor, path: str, device: torch.device) -> torch.Tensor:
    """A file the batched call failed on: alone on the device, else on the CPU; a clear error if neither reads it."""
    try:
        return decode_jpegs([file], device)[0]
    except RuntimeError:
        try:
            return decode_cpu(file.numpy().tobytes()).to(device)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: its header reads as a whole JPEG, but neither nvJPEG nor the CPU decodes it "
                             f"({e}); remove or re-encode the file") from None
