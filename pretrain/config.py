"""Pretraining configs: configs/base.yaml (every key, with defaults) <- a config file (`_BASE_` chain)
<- `key.sub=value` overrides, in the suite's one config dialect (mocobench.common.config).

Every key must exist in configs/base.yaml, so a typo is an error, not a silently ignored setting.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mocobench.common.config import ConfigError, flatten, load_yaml, merge, overrides_to_delta, split_overrides

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
BASE_CONFIG = CONFIG_DIR / "base.yaml"

# keys that may differ between a run and its resume (they do not change what is trained)
RESUME_FREE_KEYS = ("data.workers", "train.output_dir", "train.progress", "train.log_every",
                    "train.checkpoint_every", "knn.every", "knn.batch_size", "data.path", "knn.train_path",
                    "knn.val_path", "knn.limit", "train.device", "train.threads", "data.prefetch", "optim.impl",
                    "train.compile")
# keys added after runs were already saved, with the value that reproduces what those runs did
# (a config saved before a key existed compares as if it had this value)
# (data.decode: torchvision's JPEG decoder gives PIL's pixels, tests/pretrain/test_decode.py, so runs saved
# before the key, which decoded with PIL, resume under the default)
ADDED_KEYS = {"data.aug_device": "cpu", "data.decode": "torchvision"}

__all__ = ["BASE_CONFIG", "CONFIG_DIR", "ConfigError", "RESUME_FREE_KEYS", "config_diff", "dump", "flatten",
           "load_config", "resolve_config_path", "validate"]


def resolve_config_path(name: str | Path) -> Path:
    """A path, or the name of a bundled config ("demo" or "demo.yaml" -> pretrain/configs/demo.yaml)."""
    p = Path(name)
    if p.is_file():
        return p
    for candidate in (CONFIG_DIR / p.name, CONFIG_DIR / f"{p.name}.yaml"):
        if candidate.is_file():
            return candidate
    bundled = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"config {str(name)!r} not found (neither a file nor a bundled config: {bundled})")


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Resolved config: base.yaml <- path's _BASE_ chain <- path <- overrides (key.sub=value or KEY VALUE)."""
    cfg = merge(load_yaml(BASE_CONFIG), load_yaml(resolve_config_path(path)), where=str(path))
    for key, text in split_overrides(overrides):
        cfg = merge(cfg, overrides_to_delta(key, text), where=f"override {key}={text}")
    validate(cfg)
    return cfg


def validate(cfg: dict) -> None:
    from mocobench.pretrain.decode import DECODES
    from mocobench.pretrain.encoders import ARCHS, STEMS
    from mocobench.pretrain.optimizer import IMPLS, OPTIMIZERS

    def choice(key: str, value: Any, options: tuple) -> None:
        if value not in options:
            raise ConfigError(f"{key}={value!r}: choose one of {options}")

    choice("mode", cfg["mode"], ("moco", "supervised"))
    choice("arch", cfg["arch"], tuple(ARCHS))
    choice("stem", cfg["stem"], STEMS)
    choice("moco.momentum_schedule", cfg["moco"]["momentum_schedule"], ("constant", "cosine"))
    choice("data.source", cfg["data"]["source"], ("synthetic", "imagefolder", "flat"))
    choice("data.aug", cfg["data"]["aug"], ("v1", "v2"))
    choice("data.aug_device", cfg["data"]["aug_device"], ("cpu", "gpu"))
    choice("data.decode", cfg["data"]["decode"], DECODES)
    if cfg["data"]["decode"] == "gpu" and cfg["data"]["aug_device"] != "gpu":
        raise ConfigError("data.decode=gpu decodes the batch on the training device, where it is augmented too: "
                          "set data.aug_device=gpu as well (or data.decode=torchvision)")
    choice("optim.impl", cfg["optim"]["impl"], IMPLS)
    choice("optim.schedule", cfg["optim"]["schedule"], ("cosine", "step"))
    choice("optim.optimizer", cfg["optim"]["optimizer"], OPTIMIZERS)
    choice("train.amp", cfg["train"]["amp"], ("none", "bf16", "fp16"))
    if cfg["data"]["source"] != "synthetic" and not cfg["data"]["path"]:
        raise ConfigError(f"data.source={cfg['data']['source']} needs data.path (a folder of images)")
    if cfg["mode"] == "supervised" and cfg["data"]["source"] == "flat":
        raise ConfigError("mode=supervised needs labels: use data.source=imagefolder or synthetic")
    for key in ("batch_size", "epochs", "base_batch"):
        if not isinstance(cfg["optim"][key], int) or cfg["optim"][key] <= 0:
            raise ConfigError(f"optim.{key} must be a positive integer, got {cfg['optim'][key]!r}")


def config_diff(a: dict, b: dict, ignore: tuple[str, ...] = RESUME_FREE_KEYS) -> list[str]:
    """Keys whose values differ between two resolved configs, as 'key: a != b' lines."""
    fa, fb = ADDED_KEYS | flatten(a), ADDED_KEYS | flatten(b)
    return [f"{k}: {fa.get(k)!r} != {fb.get(k)!r}" for k in sorted(set(fa) | set(fb))
            if k not in ignore and fa.get(k) != fb.get(k)]


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
