"""The Detectron2 train/eval entry of one trial (every benchmark, detection and segmentation):
`train_and_evaluate(cfg_yaml, data)`, run by detectron2.engine.launch in every process of a trial, with
`Trainer` (Detectron2's DefaultTrainer plus our evaluators, the segmentation recipe's augmentations for
SemanticSegmentor models, DDP built for the trial's device (GPU or CPU/gloo) and PreciseBN over all ranks).
Every rank trains and evaluates once; rank 0 writes OUTPUT_DIR/eval_results.json ({task: {metric: value or
null}}). See docs/multi-gpu-trials.md."""
from __future__ import annotations

import json
import logging
import math
import os
import weakref
from pathlib import Path
from typing import Any

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode, get_cfg
from detectron2.data import DatasetMapper, MetadataCatalog, build_detection_train_loader
from detectron2.engine import DefaultTrainer, create_ddp_model, hooks
from detectron2.engine.train_loop import TrainerBase
from detectron2.evaluation import (
    CityscapesInstanceEvaluator,
    COCOEvaluator,
    DatasetEvaluator,
    PascalVOCDetectionEvaluator,
    SemSegEvaluator,
)
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger
from fvcore.nn.precise_bn import get_bn_modules

from mocobench.common.atomic import atomic_write
from mocobench.common.errors import UsageError
from mocobench.common.shared_folder import check_shared_folder
from mocobench.data.augmentation import sem_seg_train_augmentations
from mocobench.data.datasets import read_label_png, register_builtin
from mocobench.detection.finite_loss import AgreedAMPTrainer, AgreedSimpleTrainer
from mocobench.detection.lvis_eval import NumpyTwoLVISEvaluator
from mocobench.detection.precise_bn import PreciseBNAllRanks
from mocobench.detection.progress import TrialProgress
from mocobench.detection.vit import add_vit_config
from mocobench.detection.vit.lsj import lsj_mapper
from mocobench.detection.vit.optimizer import build_vit_optimizer

METRICS_FILE = "eval_results.json"


class TrainingError(UsageError):
    """A trial cannot train or evaluate as configured (weights not loaded as written, no evaluator)."""


class InFolder(DatasetEvaluator):
    """Runs an evaluator's evaluate() with `folder` as the working directory (cityscapesscripts writes
    files such as matches.json into the current directory): the trial's folder, never the user's."""

    def __init__(self, evaluator: DatasetEvaluator, folder: str):
        self.evaluator, self.folder = evaluator, folder

    def reset(self):
        self.evaluator.reset()

    def process(self, inputs, outputs):
        self.evaluator.process(inputs, outputs)

    def evaluate(self):
        os.makedirs(self.folder, exist_ok=True)
        cwd = os.getcwd()
        os.chdir(self.folder)
        try:
            return self.evaluator.evaluate()
        finally:
            os.chdir(cwd)


def build_evaluator(cfg, dataset_name: str, output_folder: str):
    kind = MetadataCatalog.get(dataset_name).get("evaluator_type")
    if kind == "pascal_voc":
        return PascalVOCDetectionEvaluator(dataset_name)
    if kind == "coco":  # no compiled ops here: pycocotools' scorer (use_fast_impl=False)
        # tasks explicit: also when nothing is predicted; keypoints scored with the config's OKS sigmas
        tasks = ("bbox",) + (("segm",) if cfg.MODEL.MASK_ON else ()) + (("keypoints",) if cfg.MODEL.KEYPOINT_ON else ())
        return COCOEvaluator(dataset_name, tasks=tasks, output_dir=output_folder, use_fast_impl=False,
                             kpt_oks_sigmas=tuple(cfg.TEST.KEYPOINT_OKS_SIGMAS))
    if kind == "lvis":  # the lvis package's LVISEval, at most TEST.DETECTIONS_PER_IMAGE per image (LVIS: 300)
        tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
        return NumpyTwoLVISEvaluator(dataset_name, tasks=tasks, output_dir=output_folder,
                                     max_dets_per_image=cfg.TEST.DETECTIONS_PER_IMAGE)
    if kind == "cityscapes_instance":  # mask AP / AP50 by cityscapesscripts, run in the trial's own folder
        return InFolder(CityscapesInstanceEvaluator(dataset_name), str(Path(output_folder).resolve()))
    if kind in ("sem_seg", "cityscapes_sem_seg"):  # mIoU; numpy 2 needs our label reader
        return SemSegEvaluator(dataset_name, distributed=True, output_dir=None, sem_seg_loading_fn=read_label_png)
    raise TrainingError(f"dataset {dataset_name} has evaluator_type {kind!r}; expected pascal_voc, coco, lvis, "
                        f"cityscapes_instance, sem_seg or cityscapes_sem_seg")


class Trainer(DefaultTrainer):
    """DefaultTrainer with our evaluators, the DDP wrapper built for the trial's device, PreciseBN over all
    ranks (detection.precise_bn); `train()` returns the final evaluation's results (on ranks > 0: {})."""

    def __init__(self, cfg):
        # DefaultTrainer.__init__'s construction, in its order, with two changes: the DDP wrapper comes from
        # build_ddp_model (DefaultTrainer passes device_ids=[local rank], which DDP refuses for a CPU model),
        # and a non-finite loss stops every rank at the same iteration (not rank 0 alone).
        TrainerBase.__init__(self)
        cfg = self.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = self.build_ddp_model(cfg, model)
        # Detectron2's SimpleTrainer/AMPTrainer, with a non-finite loss agreed across ranks (detection/finite_loss.py)
        self._trainer = (AgreedAMPTrainer if cfg.SOLVER.AMP.ENABLED else AgreedSimpleTrainer)(model, data_loader,
                                                                                            optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter, self.max_iter, self.cfg = 0, cfg.SOLVER.MAX_ITER, cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_ddp_model(cls, cfg, model):
        """DistributedDataParallel for the device the model is on: device_ids [local rank] on CUDA (as
        Detectron2), none on a CPU (gloo). broadcast_buffers=False as Detectron2: each rank keeps its BN
        buffers between PreciseBN runs. One process: the model itself."""
        device = next(model.parameters()).device
        if device.type == "cuda":
            return create_ddp_model(model, broadcast_buffers=False)
        return create_ddp_model(model, broadcast_buffers=False, device_ids=None)

    def build_hooks(self):
        """Detectron2's hooks with PreciseBN replaced by PreciseBNAllRanks, at the same place (before the
        checkpointer and the evaluation, which must see the updated statistics)."""
        full = self.cfg
        cfg = full.clone()
        cfg.defrost()
        cfg.TEST.PRECISE_BN.ENABLED = False  # Detectron2's own PreciseBN hook is not built
        self.cfg = cfg
        try:
            ret = super().build_hooks()
        finally:
            self.cfg = full
        ret = [h for h in ret if h is not None]
        if full.TEST.PRECISE_BN.ENABLED and get_bn_modules(self.model):
            loader_cfg = full.clone()
            loader_cfg.defrost()
            loader_cfg.DATALOADER.NUM_WORKERS = 0  # as Detectron2: a light loader of its own, apart from training
            hook = PreciseBNAllRanks(full.TEST.EVAL_PERIOD, self.model, self.build_train_loader(loader_cfg),
                                     full.TEST.PRECISE_BN.NUM_ITER)
            at = next(i for i, h in enumerate(ret) if isinstance(h, (hooks.PeriodicCheckpointer, hooks.EvalHook)))
            ret.insert(at, hook)
        return ret

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_evaluator(cfg, dataset_name, output_folder or str(Path(cfg.OUTPUT_DIR) / "inference"))

    @classmethod
    def build_optimizer(cls, cfg, model):
        if cfg.SOLVER.get("OPTIMIZER", "SGD") == "AdamW":  # ViTDet: AdamW with layer-wise lr decay (detection/vit)
            return build_vit_optimizer(cfg, model)
        return super().build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        if "LSJ" in cfg.INPUT and cfg.INPUT.LSJ.ENABLED:  # ViTDet's large-scale jitter (detection/vit/lsj.py)
            return build_detection_train_loader(cfg, mapper=lsj_mapper(cfg))
        if cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor":  # random scale, crop, flip (data.augmentation)
            mapper = DatasetMapper(cfg, is_train=True, augmentations=sem_seg_train_augmentations(cfg))
            return build_detection_train_loader(cfg, mapper=mapper)
        return super().build_train_loader(cfg)

    def train(self) -> dict[str, dict[str, Any]]:
        super().train()
        # DefaultTrainer's EvalHook evaluates after the last iteration (also when resumed at the end), on
        # every rank, and keeps the result in _last_eval_results: the metrics on rank 0, {} on the others.
        # Whether it ran is the same on every rank; whether the result is empty is not (evaluating again on
        # ranks > 0 alone would wait in the evaluator's gather for a rank 0 that has left).
        if not hasattr(self, "_last_eval_results"):
            self._last_eval_results = self.test(self.cfg, self.model)
        return self._last_eval_results


def check_weights_loaded(model, pkl: str) -> None:
    """Every tensor of one of our converted pickles must sit, unchanged, in exactly one model tensor
    (Detectron2's name-matching heuristics would otherwise skip it with a log line only)."""
    import numpy as np

    from mocobench.common import safe_pickle

    payload = safe_pickle.load(pkl)
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
        raise TrainingError(f"{pkl}: {len(bad)} tensors were not loaded into the model as written: {bad[:6]}")


def _has_console(logger_name: str) -> bool:
    return any(type(h) is logging.StreamHandler for h in logging.getLogger(logger_name).handlers)


def train_and_evaluate(cfg_yaml: str, data: dict[str, Any], *, verbose: bool = False) -> None:
    """One process of one trial: train (or resume) and evaluate; rank 0 writes eval_results.json.

    Detectron2's log goes to OUTPUT_DIR/log.txt; the terminal shows a progress bar (rank 0), or with
    `verbose` the full log instead."""
    cfg = get_cfg()
    loaded = CfgNode.load_cfg(cfg_yaml)
    if "VIT" in loaded.MODEL:  # a ViTDet config (detection/vit/config.py)
        add_vit_config(cfg)
    cfg.merge_from_other_cfg(loaded)
    cfg.freeze()
    rank = comm.get_rank()
    # one console handler per process (trials in one process add only their log file), one log file per trial
    # fvcore's too (its checkpointer's "not found in the checkpoint" lists), else Python's last-resort handler
    # prints its warnings to the terminal
    for name in ("detectron2", "fvcore"):
        setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank, name=name,
                     configure_stdout=verbose and not _has_console(name))
    seed_all_rng(cfg.SEED + rank)
    check_shared_folder(cfg.OUTPUT_DIR, what="trial folder")  # every rank (every machine) sees rank 0's files
    register_builtin(data)
    trainer = Trainer(cfg)
    if not verbose and comm.is_main_process():
        parts = Path(cfg.OUTPUT_DIR).parts  # .../<benchmark>/<init>/<protocol>/trialNN
        trainer.register_hooks([TrialProgress(" ".join(parts[-4:-2] + parts[-1:]))])
    resuming = trainer.checkpointer.has_checkpoint()
    trainer.resume_or_load(resume=True)  # last checkpoint of OUTPUT_DIR if any, else MODEL.WEIGHTS
    if not resuming and cfg.MODEL.WEIGHTS:
        check_weights_loaded(trainer.model, cfg.MODEL.WEIGHTS)
    results = trainer.train()
    if comm.is_main_process():
        metrics = {task: {k: (float(v) if v is not None and math.isfinite(float(v)) else None)
                          for k, v in values.items()} for task, values in results.items()}
        with atomic_write(Path(cfg.OUTPUT_DIR) / METRICS_FILE, overwrite=True, mode="w") as f:
            f.write(json.dumps(metrics, indent=2, sort_keys=True))
