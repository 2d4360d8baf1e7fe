"""What a record ran differently from the paper: its resolved config diffed, key by key, against the
paper's config of its benchmark (the protocol file, with the MSRA input delta for MSRA weights).

Nothing here is a hand-kept list of fields: every key of the two configs is compared. Left out are
only what differs per trial by nature (SEED, OUTPUT_DIR, MODEL.WEIGHTS, MODEL.DEVICE) and, when the
record says the fewer-GPU scaling rule was applied, the keys that rule changes -- and those only when
they hold exactly the scaled values (batch / k, lr / k, iterations x k): the documented scaling is not
a deviation, anything else is.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import yaml

from mocobench.common.benchmark import Benchmark
from mocobench.common.config import flatten

PER_TRIAL_KEYS = frozenset({"SEED", "OUTPUT_DIR", "MODEL.WEIGHTS", "MODEL.DEVICE"})
# key -> how the scaling rule (runner.scaling, factor k) changes it: "div" (batch, lr) or "mul" (iterations)
SCALED_KEYS = {"SOLVER.IMS_PER_BATCH": "div", "SOLVER.BASE_LR": "div", "SOLVER.MAX_ITER": "mul",
               "SOLVER.STEPS": "mul", "SOLVER.WARMUP_ITERS": "mul", "SOLVER.CHECKPOINT_PERIOD": "mul",
               "TEST.EVAL_PERIOD": "mul", "TEST.PRECISE_BN.NUM_ITER": "mul"}


@dataclass(frozen=True)
class Deviation:
    key: str     # dotted config key, e.g. MODEL.RESNETS.DEPTH
    ours: Any
    paper: Any

    def text(self) -> str:
        return f"{self.key} {_short(self.ours)} (paper {_short(self.paper)})"


def _short(value: Any, limit: int = 40) -> str:
    text = "absent" if value is _ABSENT else (f"({', '.join(map(str, value))})" if isinstance(value, (list, tuple))
                                              else str(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


_ABSENT = object()


# A named norm variant the paper itself reports (the LVIS supervised baseline with frozen BN): its config, not the
# default's, is the paper's config for a record of that variant (detection/config.py: FrozenBN, FREEZE_AT 2).
PAPER_NORM_VARIANTS = ("FrozenBN",)


def paper_config(bench: Benchmark, msra: bool = False, norm: str | None = None) -> dict[str, Any]:
    """The benchmark's protocol config (with a PAPER_NORM_VARIANTS norm: that variant's), flattened as its YAML
    dump reads back (what records hold)."""
    return dict(_paper_config(bench.name, bench.config, msra, norm if norm in PAPER_NORM_VARIANTS else None))


@functools.lru_cache(maxsize=None)
def _paper_config(name: str, config: str, msra: bool, norm: str | None = None) -> tuple[tuple[str, Any], ...]:
    from mocobench.detection.config import build_config

    cfg = build_config(Benchmark(name=name, task="detection", title=name, config=config), weights=None, msra=msra,
                       norm=norm)
    return tuple(flatten(yaml.safe_load(cfg.dump())).items())


def _is_scaled(key: str, ours: Any, paper: Any, k: float) -> bool:
    def one(o, p):
        if not isinstance(o, (int, float)) or not isinstance(p, (int, float)):
            return False
        return math.isclose(o, p / k if SCALED_KEYS[key] == "div" else p * k, rel_tol=1e-9)

    if isinstance(ours, list) and isinstance(paper, list):
        return len(ours) == len(paper) and all(one(o, p) for o, p in zip(ours, paper))
    return one(ours, paper)


def record_msra(record: dict[str, Any]) -> bool:
    """Whether the record's init used the MSRA caffe delta (older records: read from its config)."""
    if "msra" in record["init"]:
        return bool(record["init"]["msra"])
    cfg = _parse(record.get("config"))
    return bool(cfg) and flatten(cfg).get("INPUT.FORMAT") == "BGR"


def _parse(text: Any) -> dict[str, Any] | None:
    try:
        cfg = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError:
        return None
    return cfg if isinstance(cfg, dict) else None


def deviations(record: dict[str, Any], bench: Benchmark) -> list[Deviation] | None:
    """Every key in which the record's resolved config differs from the paper's config of its benchmark
    (None when the record holds no readable config: its deviations are unknown)."""
    if not bench.config:
        return None
    cfg = _parse(record.get("config"))
    if cfg is None:
        return None
    norm = (record.get("protocol") or {}).get("norm")
    ours, paper = flatten(cfg), paper_config(bench, record_msra(record), norm)
    scaling = (record.get("protocol") or {}).get("scaling")
    k = float(scaling.get("factor", 1.0)) if isinstance(scaling, dict) and scaling.get("applied") else None
    found = []
    for key in sorted(set(ours) | set(paper)):
        o, p = ours.get(key, _ABSENT), paper.get(key, _ABSENT)
        if key in PER_TRIAL_KEYS or o == p:
            continue
        if k is not None and key in SCALED_KEYS and _is_scaled(key, o, p, k):
            continue
        found.append(Deviation(key, o, p))
    return found


# Named first when a list is cut short: what a reader of a transfer table most needs to know.
FIRST = ("MODEL.RESNETS.DEPTH", "SOLVER.MAX_ITER", "SOLVER.IMS_PER_BATCH", "SOLVER.BASE_LR", "MODEL.RESNETS.NORM",
         "DATASETS.TRAIN", "DATASETS.TEST", "INPUT.MIN_SIZE_TRAIN", "INPUT.MIN_SIZE_TEST")


def summary(devs: list[Deviation], limit: int = 6) -> str:
    """The deviations in words: all of them when few, else the `limit` most telling (FIRST, then by key)
    and a count of the rest."""
    devs = sorted(devs, key=lambda d: (FIRST.index(d.key) if d.key in FIRST else len(FIRST), d.key))
    shown = ", ".join(d.text() for d in devs[:limit])
    rest = len(devs) - limit
    return shown + (f", and {rest} more (each record's 'config' has them all)" if rest > 0 else "")


def what_ran(devs: list[Deviation]) -> str:
    """A title suffix naming what ran where it is not the paper's network or schedule ('' when it is)."""
    by_key = {d.key: d.ours for d in devs}
    parts = []
    if "MODEL.RESNETS.DEPTH" in by_key:
        parts.append(f"ran R{by_key['MODEL.RESNETS.DEPTH']}")
    if "SOLVER.MAX_ITER" in by_key:
        parts.append(f"{by_key['SOLVER.MAX_ITER']} iterations")
    return ", ".join(parts)
