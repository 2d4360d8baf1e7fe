"""PASCAL VOC layout: VOCdevkit/VOC2007 (trainval, test) and VOCdevkit/VOC2012 (trainval).

Each year folder holds Annotations/<id>.xml, ImageSets/Main/<split>.txt and JPEGImages/<id>.jpg, as
read by detectron2's load_voc_instances and PascalVOCDetectionEvaluator. Boxes are the tight boxes
of the visible pixels in VOC's 1-based inclusive integers; crowd-cluster members are written as
`difficult` objects (the evaluator ignores them), instances cut by the border as `truncated`.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from mocobench.common.atomic import atomic_write

from . import shapes
from .scene import Scene, generate_scene
from .streams import image_rng, save_jpeg, write_split_lists

YEARS = {"voc2007": ("VOC2007", 2007), "voc2012": ("VOC2012", 2012)}


def file_id(year: int, split: str, index: int, params: dict[str, Any], layout: str) -> str:
    # ids are unique within a year folder: splits follow each other in the order of `counts`
    offset = 0
    for name, n in params["counts"][layout].items():
        if name == split:
            break
        offset += n
    number = offset + index + 1
    return f"{number:06d}" if year == 2007 else f"{year}_{number:06d}"


def annotation_xml(scene: Scene, folder: str, fid: str) -> ET.ElementTree:
    h, w = scene.image.shape[:2]
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = f"{fid}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "moco-transfer-bench synthetic"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for inst in scene.instances:
        x0, y0, x1, y1 = inst.box()
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = shapes.CATEGORIES[inst.category]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = str(int(inst.truncated))
        ET.SubElement(obj, "difficult").text = str(int(inst.crowd))
        bb = ET.SubElement(obj, "bndbox")
        # 1-based inclusive pixel indices: detectron2 subtracts 1 from xmin/ymin to get [x0, x1)
        for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(bb, tag).text = str(value)
    ET.indent(root)
    return ET.ElementTree(root)


def write_item(layout: str, root: Path, params: dict[str, Any], seed: int, task: tuple[str, int]) -> tuple[str, str]:
    folder, year = YEARS[layout]
    split, index = task
    w, h = params["detection_size"]
    scene = generate_scene(image_rng(seed, layout, split, index), w, h, params, kind="objects")
    fid = file_id(year, split, index, params, layout)
    save_jpeg(root / "JPEGImages" / f"{fid}.jpg", scene.image, params["jpeg_quality"])
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    with atomic_write(root / "Annotations" / f"{fid}.xml", overwrite=False, durable=False) as f:
        annotation_xml(scene, folder, fid).write(f, encoding="utf-8")
    return split, fid


def finish(layout: str, root: Path, params: dict[str, Any], records: list[tuple[str, str]]) -> None:
    write_split_lists(root / "ImageSets" / "Main", params["counts"][layout], records)
