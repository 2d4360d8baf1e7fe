"""What `python -m mocobench run` takes, as one typed value: `RunRequest`, built from the command line
(runner/cli.py, whose options take their defaults from here) or by a caller, and passed as it is to
`prepare`, `plan_trial` and `run_trial`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunRequest:
    """What `python -m mocobench run` takes, as data (runner/cli.py documents each option). None means
    "the default for this run": num_gpus all visible, trials 1 on real data and DEMO_TRIALS on the built-in
    data, jobs 2 on the built-in data on >= 2 cores. argv: the command line after `run`, needed by --submit
    (the job runs the same command on each node)."""
    benchmark: str
    weights: list[str] = field(default_factory=list)
    label: str | None = None
    kind: str | None = None
    supervised: list[str] = field(default_factory=list)  # --supervised: specs (also in weights) declared supervised
    format: str = "auto"
    msra: bool = False
    skip_missing: bool = False
    trials: int | None = None
    first_trial: int = 0
    seed: int = 1000
    dataset: str | None = None
    train: str | None = None
    test: str | None = None
    epochs: float | None = None
    data: str = "auto"
    synthetic_root: str = "output/synthetic"
    synthetic_preset: str = "demo"
    num_gpus: int | None = None
    num_procs: int | None = None
    num_machines: int = 1
    machine_rank: int = 0
    dist_url: str = "auto"
    ims_per_gpu: int | None = None
    norm: str | None = None
    amp: bool = False
    vit_heads: int | None = None         # --vit-heads: a Vision Transformer's head count (docs/vit.md)
    results: str = "results"
    output_dir: str = "output/benchmarks"
    keep_checkpoints: bool = False
    verbose: bool = False
    jobs: int | None = None
    dry_run: bool = False
    submit: bool = False
    opts: list[str] = field(default_factory=list)
    argv: list[str] | None = None

    @classmethod
    def from_namespace(cls, ns: Any, **changes: Any) -> RunRequest:
        """The request an argparse namespace describes (attributes that are not fields are ignored)."""
        values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
        values.update(changes)
        if values.get("opts") is None:
            values["opts"] = []
        return cls(**values)


def request_defaults() -> dict[str, Any]:
    """Each RunRequest field's default (a fresh list for list fields): the command line's option defaults."""
    out = {}
    for f in dataclasses.fields(RunRequest):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out
