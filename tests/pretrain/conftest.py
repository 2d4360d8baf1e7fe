"""Fixtures of the pretrain tests: tiny ImageFolders and one finished deterministic run, made once per session."""
from __future__ import annotations

import pytest

from tests.helpers.pretrain import make_imagefolder, tiny_config


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pt_data")
    make_imagefolder(root / "train", per_class=8)
    make_imagefolder(root / "val", per_class=4, seed=1)
    return root


@pytest.fixture(scope="session")
def finished_run(data, tmp_path_factory):
    """One uninterrupted 2-epoch deterministic run (the reference for the resume tests)."""
    from mocobench.pretrain.trainer import Trainer

    out = tmp_path_factory.mktemp("run") / "full"
    cfg = tiny_config(data / "train", out, "train.deterministic=true")
    trainer = Trainer(cfg)
    final = trainer.train()
    return cfg, out, final, trainer
