"""Convert a pretrained ResNet checkpoint into a Detectron2 backbone pickle, and prove it right. A Vision
Transformer checkpoint is sent to detection/vit (its layouts, names and proof) before layout detection.

    python -m mocobench.detection.convert INPUT OUTPUT          # detect the layout, convert, verify
    python -m mocobench.detection.convert INPUT OUTPUT --format swav
    python -m mocobench.detection.convert --list-formats

Reads every layout of detection/formats.py (ours, MoCo v1/v2/v3, torchvision and timm, SwAV, DINO, Barlow
Twins / VICReg, DenseCL, PixPro, PyContrast, solo-learn, mmselfsup / mmpretrain, VISSL, lightly), from
torch.save files (foreign objects read as inert placeholders, never constructed) or .safetensors. The one
layout that fits the file is used (two that fit: an error naming both; --format NAME decides). Writes
``{"model": {name: ndarray}, "__author__", ..., "matching_heuristics": True}`` holding exactly the backbone
tensors of the detected depth: every dropped tensor listed, every BN statistic present, every shape as
Detectron2's ResNet expects. Every conversion is checked by the forward-pass proof (detection/proof.py).

The parts, one job each:
    load.py          safe readers (torch files with inert placeholders, .safetensors) and walking what was read
    detect.py        which layout of detection/formats.py the file is (the layouts themselves are data there)
    archs.py         the architecture families; the detected layout's family extracts, renames and proves
    resnet.py        the ResNet extractor: backbone keys, depth inference, strict checks
    resnet_names.py  torchvision ResNet names -> Detectron2 names
    result.py        what the parts share: ConversionError and the result of one conversion
    save.py          the Detectron2 pickle, written atomically
    d2_pickles.py    what a Detectron2 .pkl is from its content (MSRA Caffe2 blobs, torchvision-converted, ours)
    pipeline.py      convert / convert_file: load -> detect -> extract -> rename -> save -> prove
    cli.py           the command line (also `python -m mocobench convert`)
"""
from __future__ import annotations

from mocobench.detection.convert.archs import ARCHITECTURES, Architecture
from mocobench.detection.convert.cli import main
from mocobench.detection.convert.detect import describe_formats, detect_layout, list_formats, match_layout
from mocobench.detection.convert.load import load_checkpoint, load_checkpoint_report
from mocobench.detection.convert.pipeline import convert, convert_file, extract_backbone
from mocobench.detection.convert.resnet_names import torchvision_to_detectron2
from mocobench.detection.convert.result import Conversion, ConversionError
from mocobench.detection.convert.save import save_detectron2
from mocobench.detection.formats import LAYOUTS, Layout
from mocobench.detection.proof import VerifyReport, verify

FORMATS = LAYOUTS          # name -> Layout (detection/formats.py)
CheckpointFormat = Layout  # the name this module used before the layouts became data

__all__ = ["ConversionError", "CheckpointFormat", "FORMATS", "LAYOUTS", "Conversion", "VerifyReport",
           "ARCHITECTURES", "Architecture", "load_checkpoint", "load_checkpoint_report", "detect_layout",
           "match_layout", "list_formats", "describe_formats", "extract_backbone", "torchvision_to_detectron2",
           "convert", "save_detectron2", "verify", "convert_file", "main"]
