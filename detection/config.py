"""A benchmark's resolved Detectron2 config: the protocol file, the init delta (MSRA caffe weights or
random init), the built-in data's demo delta, then --opts, merged in that order.

Every file in configs/ loads on its own in Detectron2's tools (`train_net.py --config-file`): the
overlays (init/, demo/) name through `_BASE_` the protocol they were written against. The runner
applies only an overlay's own keys (`merge_overlay`), so one overlay serves every benchmark it fits.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from mocobench.common.benchmark import Benchmark
from mocobench.common.config import ConfigError
from mocobench.common.hashing import canonical_hash
from mocobench.data.datasets import SYNTHETIC_TWINS
from mocobench.detection import CONFIG_DIR

INIT_DELTAS = {"msra": "init/msra-caffe.yaml", "random": "init/random.yaml"}


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
    cfg.merge_from_file(str(CONFIG_DIR / bench.config))
    return cfg


def build_config(bench: Benchmark, *, weights: str | None, msra: bool = False, random_init: bool = False,
                 depth: int | None = None, synthetic: bool = False, opts: list[str] | None = None):
    """The benchmark's config with the init delta, the synthetic demo delta and --opts merged, in that order,
    and MODEL.WEIGHTS set. Datasets, NUM_CLASSES, device, seed and scaling are set later by the runner.
    depth: the ResNet depth of the weights when known; a mismatch with the config is refused."""
    cfg = load_protocol(bench)
    if msra:
        merge_overlay(cfg, CONFIG_DIR / INIT_DELTAS["msra"])
    if random_init:
        merge_overlay(cfg, CONFIG_DIR / INIT_DELTAS["random"])
    if synthetic:
        merge_overlay(cfg, CONFIG_DIR / bench.demo_delta)
        missing = [d for d in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST) if d not in SYNTHETIC_TWINS]
        if missing:
            raise ConfigError(f"no synthetic twin for datasets {missing}")
        cfg.DATASETS.TRAIN = tuple(SYNTHETIC_TWINS[d] for d in cfg.DATASETS.TRAIN)
        cfg.DATASETS.TEST = tuple(SYNTHETIC_TWINS[d] for d in cfg.DATASETS.TEST)
    if opts:
        cfg.merge_from_list(opts)
    cfg.MODEL.WEIGHTS = weights or ""
    if depth is not None and depth != cfg.MODEL.RESNETS.DEPTH:
        hint = "MODEL.RESNETS.DEPTH {0}".format(depth) + (" MODEL.RESNETS.RES2_OUT_CHANNELS 64" if depth < 50 else "")
        raise ConfigError(f"the weights {weights} are a ResNet-{depth} but the config builds ResNet-"
                          f"{cfg.MODEL.RESNETS.DEPTH}: Detectron2 would skip every mismatched tensor silently. "
                          f"Pass matching weights, or --opts {hint} (not the paper's protocol)")
    if cfg.MODEL.RESNETS.NORM == "FrozenBN" and random_init:
        raise ConfigError("random init with FrozenBN diverges; keep (Sync)BN or GN")
    return cfg


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
