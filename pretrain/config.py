"""Configs as data: a YAML file (with `_BASE_` inheritance) plus `key.sub=value` overrides.

Every key must exist in configs/base.yaml, so a typo is an error, not a silently ignored setting.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
BASE_CONFIG = CONFIG_DIR / "base.yaml"

# keys that may differ between a run and its resume (they do not change what is trained)
RESUME_FREE_KEYS = ("data.workers", "train.output_dir", "train.progress", "train.log_every",
                    "train.checkpoint_every", "knn.every", "knn.batch_size", "data.path", "knn.train_path",
                    "knn.val_path", "knn.limit", "train.device", "train.threads")


class ConfigError(ValueError):
    """A config file or override is malformed or names an unknown key."""


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


def _merge(base: dict, delta: dict, where: str, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in delta.items():
        name = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"{where}: unknown key {name!r} (known here: {sorted(base)})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {name!r} is a section; give it as a mapping")
            out[key] = _merge(base[key], value, where, name + ".")
        else:
            out[key] = value
    return out


def _load_file(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"_BASE_ cycle: {' -> '.join(map(str, seen + (path,)))}")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping")
    base_name = data.pop("_BASE_", None)
    if base_name is None:
        return data
    base = _load_file((path.parent / base_name), seen + (path,))
    return _merge(base, data, str(path))


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value (e.g. optim.epochs=10)")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Resolved config: base.yaml <- path's _BASE_ chain <- path <- overrides."""
    with open(BASE_CONFIG) as f:
        base = yaml.safe_load(f)
    cfg = _merge(base, _load_file(resolve_config_path(path)), str(path))
    for text in overrides:
        keys, value = parse_override(text)
        delta: dict = value
        for k in reversed(keys):
            delta = {k: delta}
        cfg = _merge(cfg, delta, f"override {text!r}")
    validate(cfg)
    return cfg


def validate(cfg: dict) -> None:
    from mocobench.pretrain.encoders import ARCHS, STEMS

    def choice(key: str, value: Any, options: tuple) -> None:
        if value not in options:
            raise ConfigError(f"{key}={value!r}: choose one of {options}")

    choice("mode", cfg["mode"], ("moco", "supervised"))
    choice("arch", cfg["arch"], tuple(ARCHS))
    choice("stem", cfg["stem"], STEMS)
    choice("moco.momentum_schedule", cfg["moco"]["momentum_schedule"], ("constant", "cosine"))
    choice("data.source", cfg["data"]["source"], ("synthetic", "imagefolder", "flat"))
    choice("data.aug", cfg["data"]["aug"], ("v1", "v2"))
    choice("optim.schedule", cfg["optim"]["schedule"], ("cosine", "step"))
    choice("train.amp", cfg["train"]["amp"], ("none", "bf16", "fp16"))
    if cfg["data"]["source"] != "synthetic" and not cfg["data"]["path"]:
        raise ConfigError(f"data.source={cfg['data']['source']} needs data.path (a folder of images)")
    if cfg["mode"] == "supervised" and cfg["data"]["source"] == "flat":
        raise ConfigError("mode=supervised needs labels: use data.source=imagefolder or synthetic")
    for key in ("batch_size", "epochs", "base_batch"):
        if not isinstance(cfg["optim"][key], int) or cfg["optim"][key] <= 0:
            raise ConfigError(f"optim.{key} must be a positive integer, got {cfg['optim'][key]!r}")


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(a: dict, b: dict, ignore: tuple[str, ...] = RESUME_FREE_KEYS) -> list[str]:
    """Keys whose values differ between two resolved configs, as 'key: a != b' lines."""
    fa, fb = flatten(a), flatten(b)
    return [f"{k}: {fa.get(k)!r} != {fb.get(k)!r}" for k in sorted(set(fa) | set(fb))
            if k not in ignore and fa.get(k) != fb.get(k)]


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
