"""The pretraining config, typed: one dataclass per section, every key declared once (type, default, comment).

    cfg = load_config("demo", ["optim.epochs=10"])     # PretrainConfig; cfg.optim.epochs == 10
    cfg.to_dict()                                      # plain nested dict (config.yaml, checkpoints)

Loading: these defaults <- a config file (its `_BASE_` chain, configs/*.yaml) <- `key.sub=value` overrides,
merged in the suite's one config dialect (mocobench.common.config: an unknown key or a changed type is an
error, not a silently ignored setting), then checked once by `validate`: `Literal` fields against their
choices, `positive` fields, and the rules that join keys. World-size checks (batch, queue, BN groups) are in
pretrain/world.py. To add an option: add one field here (with `resume=False` if a run may change it when it
resumes, and `added=` the value that reproduces runs saved before it existed).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mocobench.common.config import ConfigError, flatten, load_yaml, merge, overrides_to_delta, split_overrides

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

__all__ = ["CONFIG_DIR", "ConfigError", "PretrainConfig", "added_keys", "config_diff", "dump", "flatten",
           "load_config", "resolve_config_path", "resume_free_keys", "validate"]


def option(default: Any, *, resume: bool = True, added: Any = dataclasses.MISSING, positive: bool = False) -> Any:
    """A config key. resume=False: may differ between a run and its resume (does not change what is trained).
    added: the value that reproduces runs saved before the key existed. positive: a positive integer."""
    meta = {"resume": resume, "positive": positive}
    if added is not dataclasses.MISSING:
        meta["added"] = added
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


Arch = Literal["resnet18", "resnet34", "resnet50", "resnet101", "wide_resnet50_2", "wide_resnet101_2"]


@dataclass
class MocoConfig:
    dim: int = option(128)                  # feature dimension of the keys
    queue_size: int = option(65536)         # K; must be divisible by the global batch
    momentum: float = option(0.999)         # m of the key-encoder update
    momentum_schedule: Literal["constant", "cosine"] = option("constant")  # cosine: m -> 1 over training
    temperature: float = option(0.2)        # T: 0.07 for v1, 0.2 for v2
    mlp: bool = option(True)                # v2 MLP head (fc.0 / fc.2)
    shuffle_bn: bool = option(True)         # Shuffle BN across processes; BN over sub-batches within a process
    bn_groups: int = option(8)              # BN groups in the global batch (the paper's 8 GPUs); see world.py


@dataclass
class DataConfig:
    source: Literal["synthetic", "imagefolder", "flat"] = option("synthetic")  # labelled class folders | images
    path: str | None = option(None, resume=False)  # folder of images; synthetic: where to build it
    synthetic_preset: str = option("demo")  # preset of mocobench.data.synthetic
    image_size: int = option(224)
    aug: Literal["v1", "v2"] = option("v2")  # v2 = aug+ (blur, jitter p=0.8); supervised mode: crop + flip
    min_scale: float = option(0.2)           # RandomResizedCrop scale lower bound (ImageNet supervised: 0.08)
    workers: int = option(4, resume=False)   # data-loader processes per training process
    # cpu: torchvision per image in the workers | gpu: workers only decode, batched on the training device
    aug_device: Literal["cpu", "gpu"] = option("cpu", added="cpu")
    # torchvision (JPEGs; PIL for the rest) | pil | gpu (needs aug_device=gpu: nvJPEG decodes the batch);
    # torchvision's JPEG decoder gives PIL's pixels (tests/pretrain/test_decode.py), so runs saved before the
    # key, which decoded with PIL, resume under the default
    decode: Literal["torchvision", "pil", "gpu"] = option("torchvision", added="torchvision")
    prefetch: int = option(4, resume=False)  # batches each worker loads ahead
    max_bad_images: int = option(20)         # unreadable images skipped (and reported) before the run stops
    limit: int | None = option(None)         # use at most N training images, evenly spread (short runs)


@dataclass
class OptimConfig:
    optimizer: Literal["sgd", "adamw"] = option("sgd")  # adamw: betas (momentum, 0.999); the CPU demos
    batch_size: int = option(256, positive=True)  # GLOBAL batch (all processes); per process: batch_size / world
    lr: float = option(0.03)                 # lr for base_batch; lr used = lr * batch_size / base_batch
    base_batch: int = option(256, positive=True)
    momentum: float = option(0.9)            # SGD momentum (AdamW: beta1)
    weight_decay: float = option(1.0e-4)
    schedule: Literal["cosine", "step"] = option("cosine")
    steps: list[int] = option([120, 160])    # epochs of the x0.1 steps (schedule: step)
    warmup_epochs: int = option(0)           # linear warmup from 0
    # auto (fused on CUDA, foreach on CPU) | fused | foreach | loop: same numerics, different kernels
    impl: Literal["auto", "fused", "foreach", "loop"] = option("auto", resume=False)
    epochs: int = option(200, positive=True)


@dataclass
class TrainConfig:
    device: str = option("auto", resume=False)  # auto | cpu | cuda[:N]
    threads: int | None = option(None, resume=False)  # CPU threads of torch (null: its default)
    amp: Literal["none", "bf16", "fp16"] = option("none")  # autocast; fp16 with a grad scaler
    channels_last: bool = option(False)
    compile: bool = option(False, resume=False)  # torch.compile the encoders (first steps slower)
    seed: int = option(0)
    deterministic: bool = option(False)       # deterministic algorithms (exact resume); slower
    output_dir: str = option("output/pretrain/run", resume=False)
    checkpoint_every: int = option(10, resume=False)  # epochs; the last epoch is always saved
    log_every: int = option(10, resume=False)  # steps between log.jsonl / TensorBoard entries
    progress: bool = option(True, resume=False)  # tqdm progress bar (rank 0)


@dataclass
class KnnConfig:
    every: int = option(0, resume=False)     # epochs between kNN monitors (0: off)
    train_path: str | None = option(None, resume=False)  # labelled ImageFolder: memory bank (synthetic: its split)
    val_path: str | None = option(None, resume=False)  # labelled ImageFolder: queries
    k: int = option(200)
    temperature: float = option(0.1)
    batch_size: int = option(256, resume=False)
    limit: int | None = option(None, resume=False)  # at most N bank and N query images (short CPU runs)


@dataclass
class PretrainConfig:
    """Every key the pretrainer knows, with the MoCo v2 ImageNet recipe's values (ResNet-50, 200 epochs)."""
    mode: Literal["moco", "supervised"] = option("moco")
    arch: Arch = option("resnet50")          # torchvision names
    stem: Literal["standard", "small"] = option("standard")  # small: 3x3/1 conv, no max-pool (32-64 px)
    moco: MocoConfig = field(default_factory=MocoConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)

    def to_dict(self) -> dict:
        """Plain nested dict, in declaration order (what config.yaml and checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PretrainConfig:
        """A resolved config as stored (config.yaml, a checkpoint's "config"); keys added since it was saved
        take their `added` value, and it is validated."""
        base = cls().to_dict()
        nested = _nest({**added_keys(), **{k: v for k, v in flatten(data).items() if k in flatten(base)}})
        cfg = _build(cls, merge(base, nested))
        validate(cfg)
        return cfg


def _nest(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _build(cls: type, data: dict) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _build(hints[f.name], data[f.name]) if dataclasses.is_dataclass(hints[f.name])
                  else data[f.name] for f in dataclasses.fields(cls)})


def _leaves(cls: type = PretrainConfig, prefix: str = ""):
    """(dotted key, field, its type) of every key, in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _leaves(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, hints[f.name]


def resume_free_keys() -> tuple[str, ...]:
    """Keys that may differ between a run and its resume (they do not change what is trained)."""
    return tuple(key for key, f, _ in _leaves() if not f.metadata["resume"])


def added_keys() -> dict[str, Any]:
    """Keys added after runs were already saved, with the value that reproduces what those runs did."""
    return {key: f.metadata["added"] for key, f, _ in _leaves() if "added" in f.metadata}


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


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PretrainConfig:
    """Resolved config: the defaults <- path's _BASE_ chain <- path <- overrides (key.sub=value or KEY VALUE)."""
    data = merge(PretrainConfig().to_dict(), load_yaml(resolve_config_path(path)), where=str(path))
    for key, text in split_overrides(overrides):
        data = merge(data, overrides_to_delta(key, text), where=f"override {key}={text}")
    cfg = _build(PretrainConfig, data)
    validate(cfg)
    return cfg


def validate(cfg: PretrainConfig) -> None:
    """Every check of single values and of keys together (world-size checks: pretrain/world.py)."""
    values = flatten(cfg.to_dict())
    for key, f, kind in _leaves():
        value = values[key]
        if typing.get_origin(kind) is Literal and value not in typing.get_args(kind):
            raise ConfigError(f"{key}={value!r}: choose one of {typing.get_args(kind)}")
        if f.metadata["positive"] and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    d = cfg.data
    if d.decode == "gpu" and d.aug_device != "gpu":
        raise ConfigError("data.decode=gpu decodes the batch on the training device, where it is augmented too: "
                          "set data.aug_device=gpu as well (or data.decode=torchvision)")
    if d.source != "synthetic" and not d.path:
        raise ConfigError(f"data.source={d.source} needs data.path (a folder of images)")
    if cfg.mode == "supervised" and d.source == "flat":
        raise ConfigError("mode=supervised needs labels: use data.source=imagefolder or synthetic")


def config_diff(a: dict | PretrainConfig, b: dict | PretrainConfig,
                ignore: tuple[str, ...] | None = None) -> list[str]:
    """Keys whose values differ between two resolved configs (typed, or as stored), as 'key: a != b' lines;
    by default only the keys that matter on resume."""
    ignore = resume_free_keys() if ignore is None else ignore
    fa, fb = (added_keys() | flatten(c.to_dict() if isinstance(c, PretrainConfig) else c) for c in (a, b))
    return [f"{k}: {fa.get(k)!r} != {fb.get(k)!r}" for k in sorted(set(fa) | set(fb))
            if k not in ignore and fa.get(k) != fb.get(k)]


def dump(cfg: PretrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
