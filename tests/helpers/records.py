"""Hand-made result records for the tables tests (written through mocobench.records.write_record)."""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

from mocobench.common.hashing import canonical_hash
from mocobench.records import SCHEMA_VERSION, write_record

PAPER_VOC = {"config_hash": "cfg-voc0712", "max_iter": 24000, "ims_per_batch": 16, "base_lr": 0.02,
             "scaling": "none", "amp": False, "train": ["voc_2007_trainval", "voc_2012_trainval"],
             "test": ["voc_2007_test"], "builtin_synthetic": False}


def resolved_config(benchmark: str, protocol: dict[str, Any], opts: list[str] | tuple[str, ...] = (),
                    msra: bool = False) -> str:
    """The resolved config YAML a runner record of this benchmark and protocol holds: the registry's config
    (the demo delta when synthetic), its schedule/batch/lr, the scaling rule when the protocol says it was
    applied, then opts (KEY VALUE ...). A placeholder for benchmarks without a config."""
    from mocobench.detection.config import build_config
    from mocobench.records import SYNTHETIC_SUFFIX
    from mocobench.runner.benchmarks import BENCHMARKS
    from mocobench.runner.scaling import apply_scaling_rule

    synthetic = benchmark.endswith(SYNTHETIC_SUFFIX) or bool(protocol.get("builtin_synthetic"))
    bench = BENCHMARKS.get(benchmark.removesuffix(SYNTHETIC_SUFFIX))
    if bench is None or not bench.config:
        return "# resolved config\n"
    cfg = build_config(bench, weights=None, msra=msra, synthetic=synthetic)
    scaling = protocol.get("scaling")
    if isinstance(scaling, dict) and scaling.get("applied"):
        apply_scaling_rule(cfg, num_devices=scaling["num_devices"], ims_per_device=scaling["ims_per_device"],
                           reference_gpus=8)
    else:
        for key, field in (("MAX_ITER", "max_iter"), ("IMS_PER_BATCH", "ims_per_batch"), ("BASE_LR", "base_lr")):
            if field in protocol:
                setattr(cfg.SOLVER, key, protocol[field])
    cfg.merge_from_list(list(opts))
    return cfg.dump()


def make_record(benchmark: str, label: str, kind: str, trial: int, metrics: dict[str, dict[str, float]],
                protocol: dict[str, Any] | None = None, pretrain: dict[str, Any] | None = None,
                task: str = "detection", weights_sha256: str | None = None, config: str | None = None,
                msra: bool = False, declared: bool | None = None, kind_reason: str | None = None) -> dict[str, Any]:
    """declared / kind_reason: the init's kind_declared / kind_reason (None: left out, as in older records)."""
    protocol = copy.deepcopy(PAPER_VOC if protocol is None else protocol)
    # As the runner does: the init's weights hash is part of the protocol (None for random init).
    if weights_sha256 is None and kind != "random":
        weights_sha256 = hashlib.sha256(label.encode()).hexdigest()
    protocol.setdefault("weights_sha256", weights_sha256)
    init = {"label": label, "kind": kind, "weights": None, "weights_sha256": weights_sha256,
            "pretrain": pretrain or {"run": None, "epoch": None}, "msra": msra}
    init.update({k: v for k, v in (("kind_declared", declared), ("kind_reason", kind_reason)) if v is not None})
    return {"schema": SCHEMA_VERSION, "benchmark": benchmark, "task": task, "init": init,
            "protocol": protocol, "protocol_hash": canonical_hash(protocol), "trial": trial, "seed": 1000 + trial,
            "metrics": metrics,
            "config": resolved_config(benchmark, protocol, msra=msra) if config is None else config,
            "provenance": {"git_sha": "test"}}


def det(ap50: float, ap: float, ap75: float) -> dict[str, dict[str, float]]:
    return {"bbox": {"AP50": ap50, "AP": ap, "AP75": ap75}}


# Three initialisations x trials on the paper's VOC protocol; values chosen by hand.
VOC_TRIALS = {
    ("random", "random"): [det(60.0, 33.5, 33.0), det(60.6, 34.1, 33.4)],
    ("supervised-tv", "supervised"): [det(81.1, 53.3, 58.5), det(81.5, 53.9, 59.0), det(81.2, 53.4, 58.9)],
    ("moco-v2-200ep", "moco"): [det(82.3, 56.9, 63.3), det(82.6, 57.2, 63.9), det(82.2, 56.8, 63.5)],
}


def write_voc(results: Path, benchmark: str = "voc0712-det-c4", protocol: dict | None = None,
              trials: dict | None = None) -> list[Path]:
    paths = []
    for (label, kind), metrics in (VOC_TRIALS if trials is None else trials).items():
        for t, m in enumerate(metrics):
            paths.append(write_record(make_record(benchmark, label, kind, t, m, protocol=protocol), results))
    return paths
