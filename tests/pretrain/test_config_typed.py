"""The typed pretraining config: choices, the one validation, resume keys declared on the fields, stored forms."""
from __future__ import annotations

import typing

import pytest
import yaml

from mocobench.pretrain.config import (
    ConfigError,
    PretrainConfig,
    added_keys,
    config_diff,
    dump,
    flatten,
    load_config,
    resume_free_keys,
)


def _choices(section: type, name: str) -> tuple:
    return typing.get_args(typing.get_type_hints(section)[name])


def test_literal_choices_are_the_registries_the_code_builds_from():
    from mocobench.pretrain.config import DataConfig, OptimConfig
    from mocobench.pretrain.decode import DECODES
    from mocobench.pretrain.encoders import ARCHS, STEMS
    from mocobench.pretrain.optimizer import IMPLS, OPTIMIZERS

    assert _choices(PretrainConfig, "arch") == tuple(ARCHS)
    assert _choices(PretrainConfig, "stem") == STEMS
    assert _choices(DataConfig, "decode") == DECODES
    assert (_choices(OptimConfig, "impl"), _choices(OptimConfig, "optimizer")) == (IMPLS, OPTIMIZERS)


@pytest.mark.parametrize("override, message", [
    ("data.aug_device=tpu", "data.aug_device='tpu': choose one of ('cpu', 'gpu')"),
    ("train.amp=fp8", "train.amp='fp8': choose one of ('none', 'bf16', 'fp16')"),
    ("arch=vit_b", "arch='vit_b': choose one of ('resnet18',"),
    ("optim.epochs=0", "optim.epochs must be a positive integer, got 0"),
    ("optim.batch_size=-8", "optim.batch_size must be a positive integer, got -8"),
    ("moco.dim=1.5", "Type mismatch"),
    ("moco.dimm=8", "unknown key 'moco.dimm'"),
])
def test_a_bad_value_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config("demo", [override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_resume_keys_and_added_keys_are_read_off_the_fields():
    free = set(resume_free_keys())
    assert {"train.output_dir", "data.workers", "data.path", "optim.impl", "knn.every"} <= free
    assert not free & {"optim.batch_size", "optim.lr", "moco.queue_size", "train.seed", "arch", "data.decode"}
    assert added_keys() == {"data.aug_device": "cpu", "data.decode": "torchvision"}
    cfg = load_config("demo")
    other = load_config("demo", ["train.output_dir=/elsewhere", "data.workers=3", "optim.lr=0.5"])
    assert config_diff(cfg, other) == ["optim.lr: 0.001 != 0.5"]


def test_the_stored_form_is_plain_yaml_and_reads_back_to_the_same_config():
    cfg = load_config("cifar10_moco_v2_r18", ["data.path=/x", "optim.steps=[3, 5]"])
    text = dump(cfg)
    stored = yaml.safe_load(text)
    assert list(stored) == ["mode", "arch", "stem", "moco", "data", "optim", "train", "knn"]
    assert flatten(stored) == flatten(cfg.to_dict()) and stored["optim"]["steps"] == [3, 5]
    assert PretrainConfig.from_dict(stored) == cfg


def test_a_config_stored_before_keys_were_added_reads_with_their_added_values():
    stored = load_config("demo", ["data.aug_device=cpu"]).to_dict()
    del stored["data"]["decode"], stored["data"]["aug_device"]
    stored["data"]["retired_key"] = 1  # a key this version no longer knows is dropped, not an error
    cfg = PretrainConfig.from_dict(stored)
    assert (cfg.data.decode, cfg.data.aug_device) == ("torchvision", "cpu")
    assert config_diff(stored, cfg, ignore=("data.retired_key",)) == []
