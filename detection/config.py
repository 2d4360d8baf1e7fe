"""A benchmark's resolved Detectron2 config: the protocol file, the init delta (MSRA caffe weights or
random init), the built-in data's demo delta or a user's data set, then --opts, merged in that order; for
a user's data set the schedule is then converted from epochs (apply_epoch_schedule).

Every file in configs/ loads on its own in Detectron2's tools (`train_net.py --config-file`): the
overlays (init/, demo/) name through `_BASE_` the protocol they were written against. The runner
applies only an overlay's own keys (`merge_overlay`), so one overlay serves every benchmark it fits.
"""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from mocobench.common.benchmark import Benchmark
from mocobench.common.config import ConfigError
from mocobench.common.hashing import canonical_hash
from mocobench.data.custom import UserDataset
from mocobench.data.datasets import SYNTHETIC_TWINS
from mocobench.detection import CONFIG_DIR
from mocobench.detection.vit import CONFIG_DIR as VIT_CONFIG_DIR
from mocobench.detection.vit import add_vit_config

INIT_DELTAS = {"msra": "init/msra-caffe.yaml", "random": "init/random.yaml"}
# Synchronised BN of the backbone (and FPN): the official MoCo detection configs use naiveSyncBN ("SyncBN
# seems to cause larger variance"), our default; SyncBN (the paper's wording) is the named variant.
# FrozenBN is the other named variant: the MoCo appendix's supervised LVIS baseline fine-tuned with frozen BN
# (better for it on LVIS); the backbone's BN is then frozen and the newly initialised FPN has no norm, as in
# Detectron2's own LVIS baselines; the stem and res2 are frozen too (FREEZE_AT 2, Detectron2's default, used by
# its LVIS baselines and by the LVIS paper's supervised setting). Pretrained weights only (from random init it
# diverges).
# The norm is part of every record's protocol, so tables never average or mix them.
DEFAULT_NORM = "naiveSyncBN"
NORMS = ("naiveSyncBN", "SyncBN", "FrozenBN")
FROZEN_BN_FREEZE_AT = 2
# A user data set's schedule, as fractions of MAX_ITER: lr steps of COCO's 1x (60k and 80k of 90k);
# warmup at most a tenth of the schedule.
STEP_FRACTIONS = (2 / 3, 8 / 9)
MAX_WARMUP_FRACTION = 0.1


def input_settings(cfg) -> dict:
    """What the backbone's weights must have been trained on: input channel order, normalisation, and where
    the bottleneck strides (caffe/MSRA: 1x1; torchvision: 3x3)."""
    return {"format": cfg.INPUT.FORMAT, "pixel_mean": [float(v) for v in cfg.MODEL.PIXEL_MEAN],
            "pixel_std": [float(v) for v in cfg.MODEL.PIXEL_STD],
            "stride_in_1x1": bool(cfg.MODEL.RESNETS.STRIDE_IN_1X1)}


_INPUT_KEYS = {"format": "INPUT.FORMAT", "pixel_mean": "MODEL.PIXEL_MEAN", "pixel_std": "MODEL.PIXEL_STD",
               "stride_in_1x1": "MODEL.RESNETS.STRIDE_IN_1X1"}


def check_input_settings(cfg, expected: dict, msra: bool) -> None:
    """Refuse --opts that give pretrained weights input settings other than those they were trained on."""
    got = input_settings(cfg)
    bad = [f"{_INPUT_KEYS[k]} {got[k]} (the weights expect {expected[k]})" for k in expected if got[k] != expected[k]]
    if bad:
        what = "MSRA caffe weights (BGR, caffe mean, std 1, stride in the 1x1 conv)" if msra else \
            "torchvision-style weights (RGB, torchvision's mean/std, stride in the 3x3 conv)"
        raise ConfigError(f"--opts sets {'; '.join(bad)}: these are {what}, recognised from the file. Drop those "
                          f"--opts (docs/checkpoint-formats.md, \"Input settings\")")


def merge_overlay(cfg, path: str | Path) -> None:
    """Merge an overlay file's own keys into cfg (its `_BASE_` is what it loads against on its own)."""
    from detectron2.config import CfgNode

    with open(path) as f:
        delta = yaml.safe_load(f) or {}
    delta.pop("_BASE_", None)
    cfg.merge_from_other_cfg(CfgNode(delta))


def load_protocol(bench: Benchmark):
    """The benchmark's protocol config (our ROI heads registered)."""
    from detectron2.config import get_cfg

    import mocobench.detection  # noqa: F401  (registers our ROI heads)

    cfg = get_cfg()
    path = CONFIG_DIR / bench.config
    if uses_vit(path):
        add_vit_config(cfg)
    cfg.merge_from_file(str(path))
    return cfg


def uses_vit(path: str | Path) -> bool:
    """A ViTDet config (detection/vit/configs): it needs the MODEL.VIT keys (add_vit_config)."""
    return VIT_CONFIG_DIR in Path(path).resolve().parents


def build_config(bench: Benchmark, *, weights: str | None, msra: bool = False, random_init: bool = False,
                 depth: int | None = None, synthetic: bool = False, opts: list[str] | None = None,
                 norm: str | None = None, dataset: UserDataset | None = None, epochs: float | None = None,
                 vit: dict | None = None):
    """The benchmark's config with the init delta, the synthetic demo delta and --opts merged, in that order,
    and MODEL.WEIGHTS set. NUM_CLASSES, device, seed and scaling are set later by the runner.
    depth: the ResNet depth of the weights when known; a mismatch with the config is refused.
    norm: a NORMS variant for the backbone (and FPN) norm; None keeps the config's (DEFAULT_NORM).
    dataset: a user's data set for a generic benchmark (bench.epochs set): its registered names go into
    DATASETS and, unless --opts set SOLVER.MAX_ITER, the schedule is `epochs` (default bench.epochs)
    converted to iterations from its annotated train images at the batch after --opts.
    vit: the MODEL.VIT keys of converted ViT weights (their width, depth, heads, patch, grid, layer-scale), set
    after the demo delta and before --opts; only for ViTDet benchmarks (detection/vit)."""
    cfg = load_protocol(bench)
    vit_bench = "VIT" in cfg.MODEL and cfg.MODEL.BACKBONE.NAME == "build_vitdet_backbone"
    _check_backbone_family(bench, weights, vit_bench, vit=vit, depth=depth, norm=norm, msra=msra)
    if norm is not None:
        apply_norm(cfg, norm)
    if msra:
        merge_overlay(cfg, CONFIG_DIR / INIT_DELTAS["msra"])
    if random_init:
        merge_overlay(cfg, CONFIG_DIR / INIT_DELTAS["random"])
    if synthetic:
        apply_synthetic_data(cfg, bench)
    _set_user_datasets(cfg, bench, dataset)
    if vit_bench and vit:
        apply_vit_weights(cfg, vit)
    weights_input = input_settings(cfg)  # what the init's weights were trained on (before --opts)
    if opts:
        merge_opts(cfg, opts)
    if dataset is not None:
        _fit_user_dataset(cfg, bench, dataset, opts, epochs)
    cfg.MODEL.WEIGHTS = weights or ""
    if weights and not random_init:
        check_input_settings(cfg, weights_input, msra)
    _check_depth(cfg, weights, depth)
    if cfg.MODEL.RESNETS.NORM == "FrozenBN" and random_init and not vit_bench:
        raise ConfigError("random init with FrozenBN diverges; keep (Sync)BN or GN")
    return cfg


def _check_backbone_family(bench: Benchmark, weights: str | None, vit_bench: bool, *, vit: dict | None,
                           depth: int | None, norm: str | None, msra: bool) -> None:
    """Refuse ViT weights for a ResNet benchmark, ResNet weights for ViTDet, and ResNet-only options for ViTDet."""
    if vit is not None and not vit_bench:
        raise ConfigError(f"the weights {weights} are a Vision Transformer but {bench.name} builds a ResNet; run "
                          f"the ViTDet benchmark (coco-vitdet)")
    if vit_bench and depth is not None:
        raise ConfigError(f"the weights {weights} are a ResNet-{depth} but {bench.name} builds a Vision Transformer "
                          f"(ViTDet); run a ResNet benchmark")
    if vit_bench and (norm is not None or msra):
        raise ConfigError(f"{bench.name} is ViTDet (LayerNorm everywhere): --norm and --msra are for ResNets")


def apply_norm(cfg, norm: str) -> None:
    """The backbone's (and FPN's) norm variant, one of NORMS (FrozenBN also freezes the stem and res2)."""
    if norm not in NORMS:
        raise ConfigError(f"--norm {norm!r}: choose one of {NORMS} (default {DEFAULT_NORM}, as the official "
                          f"MoCo detection configs)")
    cfg.MODEL.RESNETS.NORM = norm
    if norm == "FrozenBN":  # the stem and res2 frozen, as Detectron2's (LVIS) baselines with frozen BN
        cfg.MODEL.BACKBONE.FREEZE_AT = FROZEN_BN_FREEZE_AT
    if "fpn" in cfg.MODEL.BACKBONE.NAME:
        cfg.MODEL.FPN.NORM = "" if norm == "FrozenBN" else norm


def apply_synthetic_data(cfg, bench: Benchmark) -> None:
    """The benchmark's demo delta, and its data sets replaced by their built-in synthetic twins."""
    merge_overlay(cfg, CONFIG_DIR / bench.demo_delta)
    missing = [d for d in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST) if d not in SYNTHETIC_TWINS]
    if missing:
        raise ConfigError(f"no synthetic twin for datasets {missing}")
    cfg.DATASETS.TRAIN = tuple(SYNTHETIC_TWINS[d] for d in cfg.DATASETS.TRAIN)
    cfg.DATASETS.TEST = tuple(SYNTHETIC_TWINS[d] for d in cfg.DATASETS.TEST)


def _set_user_datasets(cfg, bench: Benchmark, dataset: UserDataset | None) -> None:
    """A generic benchmark (bench.epochs set) needs a user's data set, and only it takes one: its names go into
    DATASETS."""
    if (dataset is None) != (bench.epochs is None):
        raise ConfigError(f"benchmark {bench.name}: " + ("it runs on a user's data set: give --dataset NAME"
                                                           if dataset is None else
                                                           "it has its own data sets; --dataset is for the "
                                                           "generic benchmarks (det-fpn, det-c4, mask-fpn, mask-c4, "
                                                           "kp-fpn)"))
    if dataset is not None:
        cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (dataset.dataset_name("train"),), (dataset.dataset_name("test"),)


def merge_opts(cfg, opts: list[str]) -> None:
    """--opts KEY VALUE ...: Detectron2's keys and types; a clear error for an unknown key or a bad value."""
    try:
        cfg.merge_from_list(opts)
    except (KeyError, AssertionError, ValueError) as e:  # unknown key, type change, odd count
        raise ConfigError(f"--opts {' '.join(map(str, opts))}: {e}. Keys and types are Detectron2's "
                          f"(detectron2/config/defaults.py), e.g. --opts SOLVER.MAX_ITER 100") from None


def _fit_user_dataset(cfg, bench: Benchmark, dataset: UserDataset, opts: list[str] | None,
                      epochs: float | None) -> None:
    """After --opts: refuse masks or keypoints the data set lacks, set its keypoints, and its schedule in epochs
    (unless --opts set SOLVER.MAX_ITER)."""
    if cfg.MODEL.MASK_ON and not dataset.has_masks:
        why = "VOC: boxes only" if dataset.format == "voc" else "an annotation without segmentation"
        raise ConfigError(f"{bench.name} is Mask R-CNN but dataset {dataset.name!r} has no masks ({why}); "
                          f"run the box-only variant ({bench.name.replace('mask-', 'det-')})")
    if cfg.MODEL.KEYPOINT_ON:
        apply_keypoints(cfg, bench.name, dataset)
    if "SOLVER.MAX_ITER" not in (opts or [])[::2]:
        apply_epoch_schedule(cfg, bench.epochs if epochs is None else epochs, dataset.train_images)


def _check_depth(cfg, weights: str | None, depth: int | None) -> None:
    """Refuse weights of a ResNet depth other than the config's (Detectron2 would skip the mismatched tensors)."""
    if depth is not None and depth != cfg.MODEL.RESNETS.DEPTH:
        hint = "MODEL.RESNETS.DEPTH {0}".format(depth) + (" MODEL.RESNETS.RES2_OUT_CHANNELS 64" if depth < 50 else "")
        raise ConfigError(f"the weights {weights} are a ResNet-{depth} but the config builds ResNet-"
                          f"{cfg.MODEL.RESNETS.DEPTH}: Detectron2 would skip every mismatched tensor silently. "
                          f"Pass matching weights, or --opts {hint} (not the paper's protocol)")


# ViTDet's per-size recipe values (its configs for B, L, H): layer-wise lr decay and drop path
VIT_SIZE_RECIPE = {768: (0.7, 0.1), 1024: (0.8, 0.4), 1280: (0.9, 0.5)}


def apply_vit_weights(cfg, vit: dict) -> None:
    """MODEL.VIT from converted ViT weights; ViT-L and ViT-H get ViTDet's lr decay and drop path for them."""
    for key, value in vit.items():
        if key.isupper():  # heads_source, arch: the record's protocol (runner/plan.py), not the config
            setattr(cfg.MODEL.VIT, key, value)
    if vit.get("EMBED_DIM") in VIT_SIZE_RECIPE and vit["EMBED_DIM"] != 768:
        cfg.MODEL.VIT.LR_DECAY_RATE, cfg.MODEL.VIT.DROP_PATH_RATE = VIT_SIZE_RECIPE[vit["EMBED_DIM"]]


def apply_keypoints(cfg, bench_name: str, dataset: UserDataset) -> None:
    """A keypoint benchmark on a user's data set: NUM_KEYPOINTS from its keypoint names; the OKS sigmas must
    give one value per keypoint (the config's are COCO's 17)."""
    names = dataset.keypoint_names
    if not names:
        raise ConfigError(f"{bench_name} is Keypoint R-CNN but dataset {dataset.name!r} has no keypoints (its "
                          f"COCO categories list no 'keypoints'); run det-fpn or mask-fpn")
    cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = len(names)
    sigmas = list(cfg.TEST.KEYPOINT_OKS_SIGMAS)
    if len(sigmas) != len(names):
        raise ConfigError(f"dataset {dataset.name!r} has {len(names)} keypoints but TEST.KEYPOINT_OKS_SIGMAS has "
                          f"{len(sigmas)} values (COCO's person sigmas): give one OKS sigma per keypoint, in the "
                          f"order {list(names)}, e.g. --opts TEST.KEYPOINT_OKS_SIGMAS "
                          f"\"[{', '.join(['0.05'] * len(names))}]\"")


def apply_epoch_schedule(cfg, epochs: float, train_images: int) -> None:
    """MAX_ITER = ceil(epochs x train_images / IMS_PER_BATCH); lr steps at STEP_FRACTIONS of it; warmup the
    config's, but at most MAX_WARMUP_FRACTION of it. Run before the scaling rule, which keeps the epochs
    (fewer images per batch -> proportionally more iterations)."""
    if not epochs > 0:
        raise ConfigError(f"--epochs must be > 0, got {epochs}")
    max_iter = max(1, math.ceil(epochs * train_images / cfg.SOLVER.IMS_PER_BATCH))
    steps = tuple(int(max_iter * f) for f in STEP_FRACTIONS)
    if not 0 < steps[0] < steps[1] < max_iter:  # the lr schedule needs distinct steps inside the run
        shortest = math.ceil(4 * cfg.SOLVER.IMS_PER_BATCH / train_images * 100) / 100
        raise ConfigError(f"--epochs {epochs:g} on {train_images} annotated train images at batch "
                          f"{cfg.SOLVER.IMS_PER_BATCH} gives {max_iter} iteration(s), too few for the lr steps at "
                          f"2/3 and 8/9 of the schedule: give --epochs {shortest:g} or more (4+ iterations), or "
                          f"--opts SOLVER.MAX_ITER N SOLVER.STEPS '(A, B)'")
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.STEPS = steps
    cfg.SOLVER.WARMUP_ITERS = min(cfg.SOLVER.WARMUP_ITERS, int(max_iter * MAX_WARMUP_FRACTION))


def num_classes_of(dataset_names) -> int:
    from detectron2.data import MetadataCatalog

    counts = {name: len(MetadataCatalog.get(name).get("thing_classes", []) or []) for name in dataset_names}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise ConfigError(f"datasets disagree on (or lack) thing_classes: {counts}")
    return next(iter(counts.values()))


def num_stuff_classes_of(dataset_names) -> int:
    """The semantic segmentation class count (stuff_classes) the datasets agree on."""
    from detectron2.data import MetadataCatalog

    counts = {name: len(MetadataCatalog.get(name).get("stuff_classes", []) or []) for name in dataset_names}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise ConfigError(f"datasets disagree on (or lack) stuff_classes: {counts}")
    return next(iter(counts.values()))


def config_hash(cfg) -> str:
    """Hash of the resolved config without what differs between trials of one protocol."""
    c = cfg.clone()
    c.defrost()
    c.SEED, c.OUTPUT_DIR, c.MODEL.WEIGHTS = -1, "", ""
    return canonical_hash(c.dump())
