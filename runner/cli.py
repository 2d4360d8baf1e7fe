"""`python -m benchmarks run`: fine-tune and evaluate one detection benchmark for N trials.

    python -m benchmarks run voc0712-det-c4 --weights output/pretrain/moco_v2_demo --trials 5
    python -m benchmarks run voc-det --weights RUN_DIR --weights sup.pth --weights random   # make voc-det
    python -m benchmarks run coco-mask-fpn-1x --weights R-50.pkl --msra --num-gpus 8

Per initialisation (--weights, repeatable) and trial: resolve the config (benchmark YAML + init
delta + synthetic-demo delta + --opts), apply the fewer-GPU scaling rule, launch Detectron2 training
and evaluation through detectron2.engine.launch, and write one result record (benchmarks.records).
A trial with a record is never re-run; an interrupted trial resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mocobench.common import provenance
from mocobench import records

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "detection" / "configs"
logger = logging.getLogger("benchmarks.runner")


@dataclass(frozen=True)
class Benchmark:
    name: str
    config: str            # file under detection/configs
    task: str              # detection | instance_seg (records' "task")
    demo_delta: str        # delta used on the built-in synthetic data
    reference_gpus: int = 8  # the protocol's GPU count (IMS_PER_BATCH is for that many)


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("voc0712-det-c4", "voc0712_faster_rcnn_R50_C4_24k.yaml", "detection", "demo/synthetic-c4.yaml"),
    Benchmark("voc07-det-c4", "voc07_faster_rcnn_R50_C4_9k.yaml", "detection", "demo/synthetic-c4.yaml"),
    Benchmark("coco-mask-fpn-1x", "coco_mask_rcnn_R50_FPN_1x.yaml", "instance_seg", "demo/synthetic-fpn.yaml"),
    Benchmark("coco-mask-fpn-2x", "coco_mask_rcnn_R50_FPN_2x.yaml", "instance_seg", "demo/synthetic-fpn.yaml"),
    Benchmark("coco-mask-c4-1x", "coco_mask_rcnn_R50_C4_1x.yaml", "instance_seg", "demo/synthetic-c4.yaml"),
    Benchmark("coco-mask-c4-2x", "coco_mask_rcnn_R50_C4_2x.yaml", "instance_seg", "demo/synthetic-c4.yaml"),
)}
ALIASES = {"voc-det": "voc0712-det-c4", "coco-mask": "coco-mask-fpn-1x"}
# Real dataset -> its twin in the built-in synthetic data (benchmarks.datasets.register_synthetic).
SYNTHETIC_TWINS = {"voc_2007_trainval": "synth_voc_2007_trainval", "voc_2012_trainval": "synth_voc_2012_trainval",
                   "voc_2007_test": "synth_voc_2007_test", "coco_2017_train": "synth_coco_train",
                   "coco_2017_val": "synth_coco_val"}
INIT_DELTAS = {"msra": "init/msra-caffe.yaml", "random": "init/random.yaml"}
BANNER = """
################################################################################################
#  BUILT-IN SYNTHETIC DATA ({what})
#  No real dataset was found under DETECTRON2_DATASETS, so this run fine-tunes a ResNet-18 on
#  small synthetic scenes with a short schedule. The numbers test the pipeline end to end and
#  compare initialisations on toy data; they are NOT the paper's benchmark and are recorded
#  under "<benchmark>-synthetic". For the real protocol, set DETECTRON2_DATASETS (see README).
################################################################################################"""


class RunnerError(ValueError):
    """Bad input to the runner: a missing checkpoint, an unknown benchmark, an impossible GPU setup."""


# ------------------------------------------------------------------------------------- scaling rule
@dataclass
class Scaling:
    applied: bool
    factor: float          # protocol batch / used batch (1 when not applied)
    num_devices: int
    ims_per_device: int    # the most images one device takes (--ims-per-gpu)
    reference: dict[str, Any]  # the protocol's gpus, IMS_PER_BATCH, BASE_LR, MAX_ITER, STEPS, WARMUP_ITERS
    result: dict[str, Any]     # the same keys after scaling
    rule: str = ("linear scaling (MoCo detection README: fewer GPUs -> e.g. IMS_PER_BATCH 8, BASE_LR 0.01, "
                 "2x STEPS/MAX_ITER): batch / k, lr / k, iterations x k")


def apply_scaling_rule(cfg, *, num_devices: int, ims_per_device: int, reference_gpus: int) -> Scaling:
    """Fit the protocol's IMS_PER_BATCH onto num_devices devices taking at most ims_per_device images each.

    With fewer devices than the protocol's reference_gpus and a batch that does not fit, the batch is
    divided by the smallest integer k that makes it fit (and divide evenly over the devices); BASE_LR
    is divided by k and MAX_ITER, STEPS, WARMUP_ITERS, CHECKPOINT_PERIOD and EVAL_PERIOD multiplied by k,
    so the number of epochs and the lr per image stay those of the protocol. Edits cfg in place."""
    if num_devices < 1 or ims_per_device < 1:
        raise RunnerError(f"need at least one device and one image per device (got {num_devices}, {ims_per_device})")
    s = cfg.SOLVER
    ref = {"gpus": reference_gpus, "ims_per_batch": s.IMS_PER_BATCH, "base_lr": s.BASE_LR, "max_iter": s.MAX_ITER,
           "steps": list(s.STEPS), "warmup_iters": s.WARMUP_ITERS}
    batch = s.IMS_PER_BATCH
    fits = num_devices * ims_per_device >= batch and batch % num_devices == 0
    if num_devices >= reference_gpus or fits:
        if batch % num_devices:
            raise RunnerError(f"IMS_PER_BATCH {batch} cannot be split evenly over {num_devices} devices")
        return Scaling(False, 1.0, num_devices, ims_per_device, ref, dict(ref))
    k = next((k for k in range(2, batch + 1) if batch % k == 0 and (batch // k) % num_devices == 0
              and batch // k <= num_devices * ims_per_device), None)
    if k is None:
        raise RunnerError(f"IMS_PER_BATCH {batch} cannot be scaled onto {num_devices} devices x {ims_per_device} "
                          f"images; choose a device count that divides {batch}")
    s.IMS_PER_BATCH = batch // k
    s.BASE_LR = s.BASE_LR / k
    s.MAX_ITER = s.MAX_ITER * k
    s.STEPS = tuple(step * k for step in s.STEPS)
    s.WARMUP_ITERS = s.WARMUP_ITERS * k
    s.CHECKPOINT_PERIOD = s.CHECKPOINT_PERIOD * k
    cfg.TEST.EVAL_PERIOD = cfg.TEST.EVAL_PERIOD * k
    res = {"gpus": num_devices, "ims_per_batch": s.IMS_PER_BATCH, "base_lr": s.BASE_LR, "max_iter": s.MAX_ITER,
           "steps": list(s.STEPS), "warmup_iters": s.WARMUP_ITERS}
    return Scaling(True, float(k), num_devices, ims_per_device, ref, res)


# ------------------------------------------------------------------------------------ initialisation
@dataclass
class Init:
    label: str
    kind: str                       # moco | supervised | random | other
    weights: str | None             # what the user gave (checkpoint or .pkl), None for random
    weights_sha256: str | None
    pkl: str | None                 # the Detectron2 file MODEL.WEIGHTS points to
    pretrain: dict[str, Any] = field(default_factory=lambda: {"run": None, "epoch": None})
    msra: bool = False
    depth: int | None = None        # ResNet depth of the weights, when known (checked against the config)

    def record_field(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "pretrain": self.pretrain, "detectron2_weights": self.pkl}


_CKPT = re.compile(r"^checkpoint_(\d+)\.pth\.tar$")


def latest_checkpoint(run_dir: Path) -> Path:
    found = sorted((int(m.group(1)), p) for p in run_dir.iterdir() if (m := _CKPT.match(p.name)))
    if not found:
        raise RunnerError(f"{run_dir} holds no checkpoint_NNNN.pth.tar: pretrain first (make pretrain) or pass "
                          f"a checkpoint file, a .pkl, or 'random' as --weights")
    return found[-1][1]


def _sanitize(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", label).strip(".-") or "init"


def resolve_init(spec: str, *, cache_dir: Path, label: str | None = None, kind: str | None = None,
                 msra: bool = False, log=print) -> Init:
    """--weights SPEC -> Init: 'random', a .pkl, a checkpoint (converted with proof, cached), or a
    pretraining output folder (its latest checkpoint)."""
    from mocobench.detection.convert import ConversionError, convert_file, load_checkpoint, sha256_file

    if kind is not None and kind not in records.INIT_KINDS:
        raise RunnerError(f"--kind must be one of {records.INIT_KINDS}")
    if spec == "random":
        return Init(label or "random", kind or "random", None, None, None)
    path = Path(spec)
    if not path.exists():
        raise RunnerError(f"--weights {spec}: no such file or folder (give a pretraining output folder, a "
                          f"checkpoint, a Detectron2 .pkl, or 'random')")
    run_dir = None
    if path.is_dir():
        run_dir, path = path, latest_checkpoint(path)
        log(f"[run] {run_dir}: latest checkpoint {path.name}")
    sha = sha256_file(path)
    if path.suffix == ".pkl":
        return Init(_sanitize(label or path.stem), kind or ("supervised" if msra else "other"), str(path), sha,
                    str(path), msra=msra, depth=_pkl_depth(path))
    try:
        ckpt = load_checkpoint(path)
    except ConversionError as e:
        raise RunnerError(str(e)) from None
    epoch = ckpt.get("epoch") if isinstance(ckpt.get("epoch"), int) else None
    mode = (ckpt.get("config") or {}).get("mode") if isinstance(ckpt.get("config"), dict) else None
    pkl = cache_dir / f"{_sanitize(path.name.split('.')[0])}-{sha[:12]}.pkl"
    if pkl.exists():
        log(f"[run] using the cached conversion {pkl}")
        fmt, depth = _pkl_format(pkl), _pkl_depth(pkl)
    else:
        try:
            conv = convert_file(path, pkl, log=log)[0]
        except ConversionError as e:
            raise RunnerError(f"--weights {spec}: {e}") from None
        fmt, depth = conv.format, conv.depth
    guessed_kind = "moco" if fmt.startswith("moco") else ("supervised" if mode in (None, "supervised") else "other")
    if label is None:
        label = f"{run_dir.name}-ep{epoch}" if run_dir is not None and epoch is not None else path.name.split(".")[0]
    return Init(_sanitize(label), kind or guessed_kind, str(path), sha, str(pkl),
                {"run": str(run_dir) if run_dir else None, "epoch": epoch}, depth=depth)


def _pkl_source(pkl: Path) -> dict[str, Any]:
    """The "source" entry our converter writes into its pickles ({} for other pickles)."""
    import pickle

    with open(pkl, "rb") as f:
        payload = pickle.load(f, encoding="latin1")
    return payload.get("source") or {} if isinstance(payload, dict) else {}


def _pkl_depth(pkl: Path) -> int | None:
    return _pkl_source(pkl).get("depth")


def _pkl_format(pkl: Path) -> str:
    return _pkl_source(pkl).get("format", "unknown")


# ------------------------------------------------------------------------------------------- config
def resolve_benchmark(name: str) -> Benchmark:
    name = ALIASES.get(name, name)
    if name not in BENCHMARKS:
        raise RunnerError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)} "
                          f"(aliases: {', '.join(f'{a} = {b}' for a, b in ALIASES.items())})")
    return BENCHMARKS[name]


def build_config(bench: Benchmark, init: Init, *, synthetic: bool, opts: list[str] | None = None):
    """The benchmark's config with the init delta, the synthetic demo delta and --opts merged, in that order.
    Datasets, NUM_CLASSES, weights, device, seed and scaling are set later by the runner."""
    import mocobench.detection  # noqa: F401  (registers our ROI heads)
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG_DIR / bench.config))
    if init.msra:
        cfg.merge_from_file(str(CONFIG_DIR / INIT_DELTAS["msra"]))
    if init.kind == "random":
        cfg.merge_from_file(str(CONFIG_DIR / INIT_DELTAS["random"]))
    if synthetic:
        cfg.merge_from_file(str(CONFIG_DIR / bench.demo_delta))
        missing = [d for d in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST) if d not in SYNTHETIC_TWINS]
        if missing:
            raise RunnerError(f"no synthetic twin for datasets {missing}")
        cfg.DATASETS.TRAIN = tuple(SYNTHETIC_TWINS[d] for d in cfg.DATASETS.TRAIN)
        cfg.DATASETS.TEST = tuple(SYNTHETIC_TWINS[d] for d in cfg.DATASETS.TEST)
    if opts:
        cfg.merge_from_list(opts)
    cfg.MODEL.WEIGHTS = init.pkl or ""
    if init.depth is not None and init.depth != cfg.MODEL.RESNETS.DEPTH:
        hint = "MODEL.RESNETS.DEPTH {0}".format(init.depth) + (" MODEL.RESNETS.RES2_OUT_CHANNELS 64" if init.depth < 50 else "")
        raise RunnerError(f"the weights {init.weights} are a ResNet-{init.depth} but the config builds ResNet-"
                          f"{cfg.MODEL.RESNETS.DEPTH}: Detectron2 would skip every mismatched tensor silently. "
                          f"Pass matching weights, or --opts {hint} (not the paper's protocol)")
    if cfg.MODEL.RESNETS.NORM == "FrozenBN" and init.kind == "random":
        raise RunnerError("random init with FrozenBN diverges; keep (Sync)BN or GN")
    return cfg


def num_classes_of(dataset_names) -> int:
    from detectron2.data import MetadataCatalog

    counts = {name: len(MetadataCatalog.get(name).get("thing_classes", []) or []) for name in dataset_names}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise RunnerError(f"datasets disagree on (or lack) thing_classes: {counts}")
    return next(iter(counts.values()))


def config_hash(cfg) -> str:
    """Hash of the resolved config without what differs between trials of one protocol."""
    c = cfg.clone()
    c.defrost()
    c.SEED, c.OUTPUT_DIR, c.MODEL.WEIGHTS = -1, "", ""
    return records.canonical_hash(c.dump())


# ------------------------------------------------------------------------------------------- worker
def _register_data(data: dict[str, Any]) -> None:
    """Register the built-in synthetic datasets in this process (spawned workers start bare)."""
    if not data.get("synthetic"):
        return
    from mocobench.data.datasets import register_synthetic
    from mocobench.data.synthetic import ensure_synthetic

    register_synthetic(ensure_synthetic(data["root"], preset=data["preset"]))


def _build_evaluator(cfg, dataset_name: str, output_folder: str):
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator

    kind = MetadataCatalog.get(dataset_name).get("evaluator_type")
    if kind == "pascal_voc":
        return PascalVOCDetectionEvaluator(dataset_name)
    if kind == "coco":  # no compiled ops here: pycocotools' scorer (use_fast_impl=False)
        tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)  # explicit: also when nothing is predicted
        return COCOEvaluator(dataset_name, tasks=tasks, output_dir=output_folder, use_fast_impl=False)
    raise RunnerError(f"dataset {dataset_name} has evaluator_type {kind!r}; expected pascal_voc or coco")


_CONSOLE_LOGGING = False


def check_weights_loaded(model, pkl: str) -> None:
    """Every tensor of one of our converted pickles must sit, unchanged, in exactly one model tensor
    (Detectron2's name-matching heuristics would otherwise skip it with a log line only)."""
    import pickle

    import numpy as np

    with open(pkl, "rb") as f:
        payload = pickle.load(f, encoding="latin1")
    if not str(payload.get("__author__", "")).startswith("moco-transfer-bench"):
        return  # someone else's pickle (e.g. MSRA caffe names): Detectron2's own checks only
    if hasattr(model, "module"):
        model = model.module
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    bad = []
    for key, value in payload["model"].items():
        hits = [k for k in state if k == key or k.endswith("." + key)]
        if len(hits) != 1 or state[hits[0]].shape != value.shape or not np.array_equal(state[hits[0]], value):
            bad.append(f"{key} -> {hits or 'nothing'}")
    if bad:
        raise RunnerError(f"{pkl}: {len(bad)} tensors were not loaded into the model as written: {bad[:6]}")


def trial_worker(cfg_yaml: str, data: dict[str, Any]) -> None:
    """One process of one trial: train (or resume) and evaluate; rank 0 writes eval_results.json."""
    import mocobench.detection  # noqa: F401  (registers our ROI heads in spawned processes too)
    from detectron2.config import CfgNode, get_cfg
    from detectron2.engine import DefaultTrainer
    from detectron2.utils import comm
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    class Trainer(DefaultTrainer):
        @classmethod
        def build_evaluator(cls, cfg, dataset_name, output_folder=None):
            return _build_evaluator(cfg, dataset_name, output_folder or str(Path(cfg.OUTPUT_DIR) / "inference"))

    cfg = get_cfg()
    cfg.merge_from_other_cfg(CfgNode.load_cfg(cfg_yaml))
    cfg.freeze()
    rank = comm.get_rank()
    global _CONSOLE_LOGGING  # one console handler per process, one log file per trial
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank, name="detectron2", configure_stdout=not _CONSOLE_LOGGING)
    _CONSOLE_LOGGING = True
    seed_all_rng(cfg.SEED + rank)
    _register_data(data)
    trainer = Trainer(cfg)
    resuming = trainer.checkpointer.has_checkpoint()
    trainer.resume_or_load(resume=True)  # last checkpoint of OUTPUT_DIR if any, else MODEL.WEIGHTS
    if not resuming and cfg.MODEL.WEIGHTS:
        check_weights_loaded(trainer.model, cfg.MODEL.WEIGHTS)
    trainer.train()
    results = getattr(trainer, "_last_eval_results", None) or Trainer.test(cfg, trainer.model)
    if comm.is_main_process():
        metrics = {task: {k: (float(v) if v is not None and math.isfinite(float(v)) else None)
                          for k, v in values.items()} for task, values in results.items()}
        (Path(cfg.OUTPUT_DIR) / "eval_results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))


# ------------------------------------------------------------------------------------------- driver
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


def plan_trial(bench: Benchmark, init: Init, trial: int, *, args, synthetic: bool, num_devices: int) -> TrialPlan:
    cfg = build_config(bench, init, synthetic=synthetic, opts=args.opts)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes_of((*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST))
    cfg.MODEL.DEVICE = "cuda" if args.num_gpus > 0 else "cpu"
    cfg.SOLVER.AMP.ENABLED = bool(args.amp)
    reference = 1 if synthetic else bench.reference_gpus  # the demo schedule is written for one device
    scaling = apply_scaling_rule(cfg, num_devices=num_devices, ims_per_device=args.ims_per_gpu,
                                 reference_gpus=reference)
    name = bench.name + ("-synthetic" if synthetic else "")
    protocol = {"benchmark": name, "config_hash": config_hash(cfg), "max_iter": cfg.SOLVER.MAX_ITER,
                "ims_per_batch": cfg.SOLVER.IMS_PER_BATCH, "base_lr": cfg.SOLVER.BASE_LR,
                "scaling": asdict(scaling), "amp": bool(args.amp), "depth": cfg.MODEL.RESNETS.DEPTH,
                "train_datasets": list(cfg.DATASETS.TRAIN), "test_datasets": list(cfg.DATASETS.TEST),
                "num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES, "builtin_synthetic": synthetic,
                "weights_sha256": init.weights_sha256}
    phash = records.canonical_hash(protocol)
    seed = args.seed + trial
    out = Path(args.output_dir) / name / init.label / phash[:12] / f"trial{trial:02d}"
    cfg.SEED, cfg.OUTPUT_DIR = seed, str(out)
    return TrialPlan(name, bench, init, trial, seed, cfg, protocol, out,
                     records.record_path(args.results, name, init.label, phash, trial))


def run_trial(plan: TrialPlan, *, args, data: dict[str, Any], log=print) -> Path | None:
    """Run (or resume) one trial and write its record; None when it was finished already."""
    from detectron2.engine import launch

    if plan.record_path.exists():
        log(f"[run] {plan.benchmark} / {plan.init.label} trial {plan.trial}: finished already ({plan.record_path}); "
            f"not re-run. Use --first-trial to add trials.")
        return None
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    resuming = (plan.output_dir / "last_checkpoint").exists()
    log(f"[run] {plan.benchmark} / {plan.init.label} trial {plan.trial} (seed {plan.seed}): "
        f"{'resuming from ' + (plan.output_dir / 'last_checkpoint').read_text().strip() if resuming else 'starting'}"
        f" in {plan.output_dir}")
    cfg_yaml = plan.cfg.dump()
    (plan.output_dir / "config.yaml").write_text(cfg_yaml)
    metrics_file = plan.output_dir / "eval_results.json"
    if metrics_file.exists():
        metrics_file.unlink()  # left by an attempt whose record was not written: evaluate again
    attempts_file = plan.output_dir / "attempts.jsonl"
    started = provenance.now_iso()
    t0 = time.perf_counter()
    ok = False
    try:
        launch(trial_worker, max(args.num_gpus, 1), num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(cfg_yaml, data))
        ok = True
    finally:  # interrupted attempts count too: wall time is the sum over attempts
        with open(attempts_file, "a") as f:
            f.write(json.dumps({"started": started, "seconds": time.perf_counter() - t0, "resumed": resuming,
                                "completed": ok}) + "\n")
    if args.machine_rank != 0:
        return None  # the record is written on the first machine
    if not metrics_file.exists():
        raise RunnerError(f"training ended without metrics ({metrics_file}); see {plan.output_dir}/log.txt")
    attempts = [json.loads(line) for line in attempts_file.read_text().splitlines() if line.strip()]
    prov = provenance.collect()
    record = {
        "schema": records.SCHEMA_VERSION, "benchmark": plan.benchmark, "task": plan.bench.task,
        "init": plan.init.record_field(), "protocol": plan.protocol,
        "protocol_hash": records.canonical_hash(plan.protocol), "trial": plan.trial, "seed": plan.seed,
        "metrics": json.loads(metrics_file.read_text()), "config": cfg_yaml,
        "provenance": {"git_sha": prov["git_sha"], "versions": prov["versions"], "device": prov["device"],
                       "num_gpus": args.num_gpus, "num_machines": args.num_machines,
                       "wall_time_s": round(sum(a["seconds"] for a in attempts), 1),
                       "attempts": len(attempts), "started": attempts[0]["started"],
                       "finished": provenance.now_iso(), "output_dir": str(plan.output_dir)},
    }
    path = records.write_record(record, args.results)
    if not args.keep_checkpoints:  # the intermediate resume checkpoints; model_final.pth stays
        for ckpt in plan.output_dir.glob("model_[0-9]*.pth"):
            ckpt.unlink()
    log(f"[run] wrote {path}: {_summary(record['metrics'])} ({record['provenance']['wall_time_s']} s)")
    return path


def _summary(metrics: dict[str, dict[str, float | None]]) -> str:
    return "; ".join(f"{task} " + " ".join(f"{k} {v:.1f}" for k in ("AP", "AP50", "AP75")
                                             if (v := values.get(k)) is not None)
                     for task, values in metrics.items())


def data_mode(bench: Benchmark, requested: str) -> bool:
    """True when the run uses the built-in synthetic data."""
    if requested == "synthetic":
        return True
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG_DIR / bench.config))
    names = [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]
    from mocobench.data.datasets import real_dataset_available

    missing = [n for n in names if not real_dataset_available(n)]
    if requested == "real" and missing:
        raise RunnerError(f"--data real: datasets {missing} not found under DETECTRON2_DATASETS; see README "
                          f"'Real datasets', or use --data synthetic")
    return bool(missing)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", help=f"one of {', '.join(BENCHMARKS)}; aliases "
                                          f"{', '.join(f'{a}={b}' for a, b in ALIASES.items())}")
    parser.add_argument("--weights", action="append", required=True, metavar="SPEC",
                        help="repeatable, one initialisation each: a pretraining output folder (latest checkpoint), "
                             "a checkpoint (.pth/.pth.tar; converted and proven, cached in OUTPUT_DIR/converted), "
                             "a Detectron2 .pkl, or 'random'")
    parser.add_argument("--label", help="table row name (one --weights only); default from the folder/file and epoch")
    parser.add_argument("--kind", choices=records.INIT_KINDS, help="init kind (one --weights only); default detected")
    parser.add_argument("--msra", action="store_true",
                        help="the .pkl is MSRA caffe-format supervised (BGR, std 1, stride in 1x1)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="skip (loudly) --weights that do not exist instead of failing (make targets use it "
                             "for optional baselines)")
    parser.add_argument("--trials", type=int, default=1, help="number of trials (paper: 5), seeds SEED+trial")
    parser.add_argument("--first-trial", type=int, default=0, help="index of the first trial (to add trials)")
    parser.add_argument("--seed", type=int, default=1000, help="seed of trial 0")
    parser.add_argument("--data", choices=["auto", "real", "synthetic"], default="auto",
                        help="auto: the real datasets when present under DETECTRON2_DATASETS, else built-in data")
    parser.add_argument("--synthetic-root", default="output/synthetic")
    parser.add_argument("--synthetic-preset", default="demo", help="built-in data preset (demo | small | tiny)")
    parser.add_argument("--num-gpus", type=int, default=None, help="GPUs per machine (default: all visible; 0 = CPU)")
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0)
    parser.add_argument("--dist-url", default="auto", help="tcp://HOST:PORT of machine 0 for multi-machine runs")
    parser.add_argument("--ims-per-gpu", type=int, default=2,
                        help="most images one GPU takes (protocol: 8 GPUs x 2). With fewer GPUs the batch, lr and "
                             "schedule are scaled (recorded); e.g. 1 GPU with --ims-per-gpu 8 gives the official "
                             "advice (batch 8, lr 0.01, 2x iterations)")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only); recorded in the protocol")
    parser.add_argument("--results", default="results", help="folder of the result records")
    parser.add_argument("--output-dir", default="output/benchmarks",
                        help="trial folders (checkpoints, logs) and converted weights")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep intermediate model_NNNN.pth files")
    parser.add_argument("--dry-run", action="store_true", help="resolve and print the plan, train nothing")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="config overrides KEY VALUE ... (last on the command line), e.g. --opts SOLVER.MAX_ITER 50")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _main(args)
    except RunnerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    import torch

    args.opts = list(args.opts or [])
    if len(args.opts) % 2:
        raise RunnerError(f"config overrides come in KEY VALUE pairs, got {args.opts}")
    if args.num_gpus is None:
        args.num_gpus = torch.cuda.device_count()
    if args.num_gpus > torch.cuda.device_count():
        raise RunnerError(f"--num-gpus {args.num_gpus} but {torch.cuda.device_count()} CUDA devices are visible "
                          f"(use --num-gpus 0 for CPU)")
    if args.amp and args.num_gpus == 0:
        raise RunnerError("--amp needs CUDA (Detectron2's AMPTrainer); drop --amp on CPU")
    if args.num_gpus == 0 and args.num_machines > 1:
        raise RunnerError("multi-machine runs need GPUs")
    if (args.label or args.kind) and len(args.weights) > 1:
        raise RunnerError("--label/--kind apply to a single --weights; run once per initialisation")
    if args.trials < 1 or args.first_trial < 0:
        raise RunnerError("--trials must be >= 1 and --first-trial >= 0")
    bench = resolve_benchmark(args.benchmark)
    synthetic = data_mode(bench, args.data)
    data = {"synthetic": synthetic, "root": args.synthetic_root, "preset": args.synthetic_preset}
    if synthetic:
        print(BANNER.format(what=f"preset {args.synthetic_preset!r} in {args.synthetic_root}"), flush=True)
    _register_data(data)
    num_devices = max(args.num_gpus, 1) * args.num_machines
    cache = Path(args.output_dir) / "converted"
    inits = []
    for spec in args.weights:
        p = Path(spec)
        absent = not p.exists() or (p.is_dir() and not any(_CKPT.match(c.name) for c in p.iterdir()))
        if spec != "random" and absent and args.skip_missing:
            print(f"\n!!! [run] --weights {spec}: no such file or no checkpoint in it: SKIPPED (baseline not "
                  f"available) !!!\n", flush=True)
            continue
        inits.append(resolve_init(spec, cache_dir=cache, label=args.label, kind=args.kind, msra=args.msra))
    labels = [i.label for i in inits]
    if len(set(labels)) != len(labels):
        raise RunnerError(f"two initialisations share a label: {labels}; pass them in separate runs with --label")
    written = []
    for init in inits:
        for trial in range(args.first_trial, args.first_trial + args.trials):
            plan = plan_trial(bench, init, trial, args=args, synthetic=synthetic, num_devices=num_devices)
            sc = plan.protocol["scaling"]
            if sc["applied"]:
                print(f"[run] scaling rule applied ({num_devices} devices < {sc['reference']['gpus']}): "
                      f"{sc['reference']} -> {sc['result']}", flush=True)
            if args.dry_run:
                print(f"[run] dry run: {plan.benchmark} / {init.label} trial {trial} seed {plan.seed} -> "
                      f"{plan.record_path} (max_iter {plan.cfg.SOLVER.MAX_ITER}, batch {plan.cfg.SOLVER.IMS_PER_BATCH})")
                continue
            path = run_trial(plan, args=args, data=data)
            if path:
                written.append(path)
    if synthetic:
        print(BANNER.format(what="the numbers above come from it"), flush=True)
    print(f"[run] {len(written)} record(s) written under {args.results}")
    return 0
