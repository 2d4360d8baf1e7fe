"""Trial planning: which data (real or built-in), the resolved config with the scaling rule applied,
the protocol that identifies the trial, and where its output folder and record go."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mocobench.common.benchmark import Benchmark
from mocobench.common.hashing import canonical_hash
from mocobench.data.custom import UserDataset
from mocobench.detection.config import build_config, config_hash, load_protocol, num_classes_of, num_stuff_classes_of
from mocobench.records import record_path
from mocobench.runner import RunnerError
from mocobench.runner.request import RunRequest
from mocobench.runner.scaling import apply_scaling_rule
from mocobench.runner.weights import Init

SYNTHETIC_SUFFIX = "-synthetic"  # record name of a benchmark run on the built-in data


@dataclass
class TrialPlan:
    benchmark: str          # record name (with -synthetic on the built-in data)
    bench: Benchmark
    init: Init
    trial: int
    seed: int
    cfg: Any
    protocol: dict[str, Any]
    output_dir: Path
    record_path: Path


def init_config(bench: Benchmark, init: Init, *, synthetic: bool, opts: list[str] | None = None,
                norm: str | None = None, dataset: UserDataset | None = None, epochs: float | None = None):
    """The benchmark's config for this initialisation (weights, init delta, demo delta or user data set,
    --opts, epoch schedule, norm variant)."""
    return build_config(bench, weights=init.pkl, msra=init.msra, random_init=init.kind == "random",
                        depth=init.depth, synthetic=synthetic, opts=opts, norm=norm, dataset=dataset, epochs=epochs,
                        vit=init.vit)


def plan_trial(bench: Benchmark, init: Init, trial: int, *, request: RunRequest, synthetic: bool, num_devices: int,
               dataset: UserDataset | None = None) -> TrialPlan:
    """request: the resolved request (num_gpus set, opts as KEY VALUE ...).
    dataset: a user's data set (generic benchmarks): the record's benchmark is <bench>-<dataset name> and its
    protocol carries the data set (name, format, hash of the annotation files, classes, sizes) and the
    epochs, so that two versions of one data set never share a table."""
    req = request
    epochs = req.epochs
    cfg = init_config(bench, init, synthetic=synthetic, opts=req.opts, norm=req.norm, dataset=dataset, epochs=epochs)
    datasets = (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST)
    if bench.task == "sem_seg":
        cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes = num_stuff_classes_of(datasets)
    else:
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes = num_classes_of(datasets)
    cfg.MODEL.DEVICE = "cuda" if req.num_gpus > 0 else "cpu"
    if cfg.MODEL.DEVICE == "cpu" and num_devices > 1 and (keys := sync_bn_keys(cfg)):
        raise RunnerError(f"{', '.join(keys)} = SyncBN: torch's SyncBatchNorm trains on GPUs only, so it cannot run "
                          f"in CPU processes (--num-gpus 0 --num-procs {num_devices}); use the default naiveSyncBN "
                          f"(drop --norm SyncBN), which all-reduces over gloo, or give GPUs")
    # --amp, or a recipe that trains in AMP (ViTDet) on GPUs
    cfg.SOLVER.AMP.ENABLED = bool(req.amp) or (cfg.SOLVER.AMP.ENABLED and cfg.MODEL.DEVICE == "cuda")
    reference = 1 if synthetic else bench.reference_gpus  # the demo schedule is written for one device
    scaling = apply_scaling_rule(cfg, num_devices=num_devices, ims_per_device=req.ims_per_gpu,
                                 reference_gpus=reference)
    name = bench.name + (SYNTHETIC_SUFFIX if synthetic else "")
    data_fields: dict[str, Any] = {}  # what identifies the data beyond the dataset names
    if dataset is not None:
        name = f"{bench.name}-{dataset.name}"
        from_epochs = "SOLVER.MAX_ITER" not in req.opts[::2]
        data_fields = {"generic_benchmark": bench.name, "dataset": dataset.record_field(),
                       "epochs": (bench.epochs if epochs is None else epochs) if from_epochs else None}
    if synthetic:  # the built-in data's identity (preset, parameters, seed, generator version): records of
        data_fields["synthetic_data"] = synthetic_data_id(cfg)  # two versions of the demo data never share a table
    protocol = {"benchmark": name, "config_hash": config_hash(cfg), "max_iter": cfg.SOLVER.MAX_ITER,
                "ims_per_batch": cfg.SOLVER.IMS_PER_BATCH, "base_lr": cfg.SOLVER.BASE_LR,
                "scaling": asdict(scaling), "amp": bool(cfg.SOLVER.AMP.ENABLED), "depth": cfg.MODEL.RESNETS.DEPTH,
                "norm": cfg.MODEL.RESNETS.NORM, **vit_protocol(cfg, init),
                "train_datasets": list(cfg.DATASETS.TRAIN), "test_datasets": list(cfg.DATASETS.TEST),
                "num_classes": num_classes, "builtin_synthetic": synthetic,
                "weights_sha256": init.weights_sha256, **data_fields}
    phash = canonical_hash(protocol)
    seed = req.seed + trial
    out = Path(req.output_dir) / name / init.label / phash[:12] / f"trial{trial:02d}"
    cfg.SEED, cfg.OUTPUT_DIR = seed, str(out)
    return TrialPlan(name, bench, init, trial, seed, cfg, protocol, out,
                     record_path(req.results, name, init.label, phash, trial))


def vit_protocol(cfg, init: Init) -> dict[str, Any]:
    """A ViTDet trial's backbone in its protocol (ResNet keys do not describe it): {} for ResNets, so their
    protocol hashes are unchanged."""
    if "VIT" not in cfg.MODEL or cfg.MODEL.BACKBONE.NAME != "build_vitdet_backbone":
        return {}
    v = cfg.MODEL.VIT
    return {"depth": None, "norm": "LN", "backbone": {
        "vit": (init.vit or {}).get("arch") or f"vit_w{v.EMBED_DIM}_d{v.DEPTH}_p{v.PATCH_SIZE}",
        "embed_dim": v.EMBED_DIM, "depth": v.DEPTH, "num_heads": v.NUM_HEADS,
        "heads_source": (init.vit or {}).get("heads_source") or "the config (no weights)", "patch_size": v.PATCH_SIZE,
        "pretrain_img_size": v.PRETRAIN_IMG_SIZE, "layer_scale": v.LAYER_SCALE, "window_size": v.WINDOW_SIZE,
        "lr_decay_rate": v.LR_DECAY_RATE, "drop_path_rate": v.DROP_PATH_RATE}}


def sync_bn_keys(cfg, prefix: str = "") -> list[str]:
    """The config keys (any *.NORM) set to torch's SyncBN."""
    keys = []
    for k, v in cfg.items():
        if hasattr(v, "items"):
            keys += sync_bn_keys(v, f"{prefix}{k}.")
        elif k.endswith("NORM") and v == "SyncBN":
            keys.append(prefix + k)
    return keys


def synthetic_data_id(cfg) -> str:
    """The registered built-in data set's folder name, '<preset>-<cache key>' (data/synthetic/layout.py): the
    key hashes the preset's parameters, the seed and the generator version."""
    from detectron2.data import MetadataCatalog

    root = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).get("synthetic_root", None)
    if root is None:
        raise RunnerError(f"{cfg.DATASETS.TRAIN[0]} is not registered as built-in synthetic data")
    return Path(root).name


def data_mode(bench: Benchmark, requested: str) -> bool:
    """True when the run uses the built-in synthetic data."""
    if requested == "synthetic":
        return True
    from mocobench.data.datasets import datasets_root, real_dataset_available, real_dataset_files

    cfg = load_protocol(bench)
    names = [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]
    missing = [n for n in names if not real_dataset_available(n)]
    parts = [p for n in names for p in real_dataset_files(n)]
    absent = [str(p) for p in parts if not p.exists()]
    if missing and (requested == "real" or len(absent) < len(parts)):  # asked for, or half there: say what is missing
        how = ("--data real" if requested == "real" else
               f"some files of {bench.name}'s real datasets are under {datasets_root()} but not all")
        what = absent or ("files inside those folders (Cityscapes semantic segmentation needs the "
                          "*_gtFine_labelTrainIds.png of cityscapesscripts' createTrainIdLabelImgs)")
        raise RunnerError(f"{how}: datasets {missing} are incomplete; missing: {what}. See docs/benchmarks.md "
                          f"'Real datasets' for the layout, or use --data synthetic")
    return bool(missing)
