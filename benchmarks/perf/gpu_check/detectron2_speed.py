"""Detectron2 training seconds per iteration at the protocol's input sizes, with and without --amp, for the
three model families of the benchmarks: VOC Faster R-CNN R50-C4, COCO Mask R-CNN R50-FPN and the FCN
(semantic segmentation, dilated R50). The configs are the runner's own (detection.config.build_config, random
init); the model and optimizer come from the project's Detectron2 trainer and the step is Detectron2's
(SimpleTrainer, or AMPTrainer as cfg.SOLVER.AMP.ENABLED selects), on synthetic images of the protocol's
largest training scale (shorter side max(INPUT.MIN_SIZE_TRAIN), 4:3, at most MAX_SIZE_TRAIN; the FCN: its
crop) with a few random objects, images per GPU as the protocol's 16 on 8 GPUs. Figures, not pass/fail."""
from __future__ import annotations

import gc
import itertools
import time

import torch

from mocobench.benchmarks.perf.gpu_check.harness import Outcome, failed, passed

MODELS = (("VOC C4", "voc0712-det-c4"), ("COCO FPN", "coco-mask-fpn-1x"), ("FCN", "voc-seg-fcn"))
OBJECTS_PER_IMAGE = 5


def protocol_config(bench_name: str, device: str, tiny_input: int | None = None):
    """The runner's config of the benchmark (random init); tiny_input: the built-in data's demo delta, at that
    shorter side (and crop)."""
    from mocobench.detection.config import build_config
    from mocobench.runner.benchmarks import resolve_benchmark

    cfg = build_config(resolve_benchmark(bench_name), weights=None, random_init=True, synthetic=tiny_input is not None)
    cfg.MODEL.DEVICE = device
    if tiny_input is not None:
        cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (tiny_input,), tiny_input * 4 // 3
        cfg.INPUT.CROP.SIZE = [tiny_input, tiny_input]
    return cfg


def input_size(cfg) -> tuple[int, int]:
    if cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor":
        h, w = cfg.INPUT.CROP.SIZE
        return int(h), int(w)
    short = max(cfg.INPUT.MIN_SIZE_TRAIN)
    return int(short), int(min(cfg.INPUT.MAX_SIZE_TRAIN, round(short * 4 / 3)))


def synthetic_batch(cfg, n: int, seed: int = 0) -> list[dict]:
    """n training inputs as Detectron2's mappers give them: uint8 image, and instances (boxes, classes,
    rectangle masks for Mask R-CNN) or a semantic label map."""
    from detectron2.structures import BitMasks, Boxes, Instances

    g = torch.Generator().manual_seed(seed)
    h, w = input_size(cfg)
    out = []
    for _ in range(n):
        item = {"image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8), "height": h, "width": w}
        if cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor":
            classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
            blocks = torch.randint(0, classes, (-(-h // 16), -(-w // 16)), generator=g)  # 16 px class blocks
            item["sem_seg"] = blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)[:h, :w].contiguous()
        else:
            xy = torch.rand(OBJECTS_PER_IMAGE, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
            wh = (0.1 + 0.2 * torch.rand(OBJECTS_PER_IMAGE, 2, generator=g)) * torch.tensor([w, h])
            boxes = torch.cat([xy, xy + wh], 1)
            inst = Instances((h, w), gt_boxes=Boxes(boxes),
                             gt_classes=torch.randint(0, cfg.MODEL.ROI_HEADS.NUM_CLASSES, (OBJECTS_PER_IMAGE,),
                                                      generator=g))
            if cfg.MODEL.MASK_ON:
                masks = torch.zeros(OBJECTS_PER_IMAGE, h, w, dtype=torch.bool)
                for k, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
                    masks[k, y0:y1, x0:x1] = True
                inst.gt_masks = BitMasks(masks)
            item["instances"] = inst
        out.append(item)
    return out


def seconds_per_iter(cfg, shapes, ctx) -> dict:
    from detectron2.engine import AMPTrainer, SimpleTrainer
    from detectron2.utils.events import EventStorage

    import mocobench.segmentation  # noqa: F401  (registers the FCN head and the dilated backbone)
    from mocobench.detection.engine import Trainer

    model = Trainer.build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    batch = synthetic_batch(cfg, shapes.d2_images_per_gpu)
    loader = itertools.repeat(batch)
    step = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, loader, optimizer)
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    times = []
    with EventStorage(0) as step.storage:
        for i in range(shapes.d2_warmup + shapes.d2_iters):
            step.iter = i
            t0 = time.perf_counter()
            step.run_step()
            ctx.sync()
            times.append(time.perf_counter() - t0)
            step.storage.step()
    timed = times[shapes.d2_warmup:]
    out = {"s_per_iter": round(sum(timed) / len(timed), 4), "input_hw": list(input_size(cfg)),
           "images_per_gpu": shapes.d2_images_per_gpu, "iters": shapes.d2_iters, "warmup": shapes.d2_warmup,
           "peak_gib": round(torch.cuda.max_memory_allocated(ctx.device) / 2**30, 2) if ctx.cuda else None}
    del step, model, optimizer
    gc.collect()
    if ctx.cuda:
        torch.cuda.empty_cache()
    return out


def check(ctx) -> Outcome:
    tiny_input = None if ctx.shapes.d2_protocol_sizes else ctx.shapes.d2_tiny_input
    rows, errors = [], []
    for label, bench in MODELS:
        for amp in (False, True):
            row = {"model": label, "benchmark": bench, "amp": amp}
            if amp and not ctx.cuda:
                row["skipped"] = "Detectron2's AMPTrainer requires CUDA"
            else:
                try:
                    cfg = protocol_config(bench, ctx.device.type, tiny_input)
                    cfg.SOLVER.AMP.ENABLED = amp
                    row.update(seconds_per_iter(cfg, ctx.shapes, ctx))
                except Exception as e:  # noqa: BLE001 - reported per model; the others still run
                    row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                    errors.append(f"{label}{' amp' if amp else ''}")
            rows.append(row)
    parts = []
    for label, _ in MODELS:
        fp32, amp = (r for r in rows if r["model"] == label)
        text = lambda r: (f"{r['s_per_iter']:.3f}" if "s_per_iter" in r else ("skip" if "skipped" in r else "FAIL"))  # noqa: E731
        parts.append(f"{label} {text(fp32)} / amp {text(amp)} s/it")
    sizes = f"demo configs at {tiny_input} px (tiny)" if tiny_input else "protocol sizes"
    details = {"rows": rows, "sizes": sizes}
    line = f"{sizes}, {ctx.shapes.d2_images_per_gpu} img/GPU: " + "; ".join(parts)
    return failed(f"{line}; failed: {errors}", **details) if errors else passed(line, **details)
