"""The suite's one config dialect: YAML data with `_BASE_` inheritance, merged by fvcore's CfgNode
(the system Detectron2's configs use), plus `key.sub=value` / `--opts KEY VALUE` overrides.

    cfg = merge(load_yaml("base.yaml"), load_yaml("demo.yaml"))          # strict: keys and types of the base
    for key, text in split_overrides(["optim.epochs=10"]):                # or ["optim.epochs", "10"]
        cfg = merge(cfg, overrides_to_delta(key, text))

Every key of a delta must exist in the base, so a typo is an error rather than a silently ignored
setting, and a value must keep its key's type (an int may stand for a float; null is allowed).
Results are plain nested dicts (what checkpoints and manifests store); pretrain/config.py types its own.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from fvcore.common.config import CfgNode

from mocobench.common.errors import UsageError

_KEY_VALUE = re.compile(r"^([A-Za-z_][\w.]*)=(.*)$", re.DOTALL)


class ConfigError(UsageError):
    """A config file or override is malformed or names an unknown key."""


def load_yaml(path: str | Path) -> dict:
    """A YAML mapping with its `_BASE_` chain resolved (paths relative to the file), as fvcore does."""
    try:
        data = CfgNode.load_yaml_with_base(str(path))
    except RecursionError:
        raise ConfigError(f"{path}: _BASE_ cycle") from None
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping")
    return data


def to_dict(node: Mapping) -> dict:
    return {k: to_dict(v) if isinstance(v, Mapping) else v for k, v in node.items()}


def _coerce(delta: Mapping, base: Mapping) -> dict:
    """ints where the base holds floats become floats (CfgNode would refuse them)."""
    out = {}
    for k, v in delta.items():
        b = base.get(k) if isinstance(base, Mapping) else None
        if isinstance(v, Mapping) and isinstance(b, Mapping):
            v = _coerce(v, b)
        elif isinstance(b, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        out[k] = v
    return out


def merge(base: Mapping, delta: Mapping, *, what: str = "key", where: str = "") -> dict:
    """base <- delta, strictly (unknown keys and type changes raise ConfigError); returns a new dict."""
    node = CfgNode(copy.deepcopy(to_dict(base)))  # the result shares nothing with base
    prefix = f"{where}: " if where else ""
    try:
        node.merge_from_other_cfg(CfgNode(_coerce(delta, base)))
    except KeyError as e:
        name = str(e.args[0]).split(": ", 1)[-1]
        raise ConfigError(f"{prefix}unknown {what} {name!r}") from None
    except (ValueError, AssertionError) as e:
        raise ConfigError(f"{prefix}{e}") from None
    return to_dict(node)


def merge_nested(a: Mapping, b: Mapping) -> dict:
    """a and b merged key by key (b wins), without checking against a schema: collects overrides."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge_nested(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def split_overrides(tokens: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """(key, value text) pairs from `key.sub=value` tokens and/or `KEY VALUE` pairs, in order."""
    pairs, rest = [], list(tokens)
    while rest:
        token = rest.pop(0)
        m = _KEY_VALUE.match(token)
        if m:
            pairs.append((m.group(1), m.group(2)))
        elif any(c.isspace() for c in token):  # "KEY VALUE" quoted as one word would shift every later pair
            raise ConfigError(f"override {token!r} holds a space: give the key and its value as two words "
                              f"(KEY VALUE) or as one KEY=VALUE word")
        elif rest:
            pairs.append((token, rest.pop(0)))
        else:
            raise ConfigError(f"override {token!r} has no value: give key.sub=value or KEY VALUE")
    return pairs


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as {"a.b.c": value}; tuples become lists, as a YAML dump reads back."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def overrides_delta(tokens: list[str] | tuple[str, ...]) -> dict:
    """All overrides (key.sub=value words and/or KEY VALUE pairs) as one nested delta."""
    delta: dict = {}
    for key, text in split_overrides(tokens):
        delta = merge_nested(delta, overrides_to_delta(key, text))
    return delta


def overrides_to_delta(key: str, text: str) -> dict:
    """One override as a nested delta; the value is read as YAML (10 -> int, true -> bool, null -> None)."""
    try:
        value: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {key}={text!r}: not a YAML value ({e})") from None
    for part in reversed(key.split(".")):
        value = {part: value}
    return value
