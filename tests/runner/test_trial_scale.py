"""Where users run trials: the protocol's batch kept on fewer GPUs, --ims-per-gpu and the scaling rule, and a
CUDA out-of-memory error ending in one line that names --ims-per-gpu."""
from __future__ import annotations

import pytest
import torch

from mocobench.runner import trial
from tests.runner.test_runner import _run, _scaled


def test_four_gpus_keep_the_protocols_batch_at_four_images_each():
    """No --ims-per-gpu: 16 images over 4 GPUs, 4 each, nothing scaled (moco issue 11: with synchronised BN the
    same computation as 8 x 2); the record says 4 images per device."""
    cfg, s = _scaled(4, None)
    assert not s.applied and s.factor == 1.0 and s.ims_per_device == 4
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER) == (16, 0.02, 24000)
    cfg, s = _scaled(8, None)
    assert not s.applied and s.ims_per_device == 2
    cfg, s = _scaled(1, None)  # one GPU: all 16 (an out-of-memory error then names --ims-per-gpu)
    assert not s.applied and s.ims_per_device == 16


def test_fewer_images_per_gpu_apply_the_scaling_rule():
    """--ims-per-gpu 2 on 4 GPUs: Kaiming He's recipe, batch 8, lr 0.01, 2x iterations, 2 images per device."""
    cfg, s = _scaled(4, 2)
    assert s.applied and s.factor == 2 and s.ims_per_device == 2
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER) == (8, 0.01, 48000)
    assert "moco issue 11" in s.rule


def test_cli_default_ims_per_gpu_is_unset():
    from argparse import ArgumentParser

    from mocobench.runner.cli import add_arguments

    p = ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["voc-det", "--weights", "random"]).ims_per_gpu is None


def test_out_of_memory_ends_in_one_line_naming_ims_per_gpu(synthetic_layout, tmp_path, monkeypatch, capsys):
    def oom(cfg_yaml, data, verbose=False):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trial, "train_and_evaluate", oom)
    rc = _run(synthetic_layout, tmp_path, "voc07-det-c4", "random", extra=["--trials", "1", "--jobs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert "CUDA out of memory" in err[-1] and "--ims-per-gpu" in err[-1] and "images per GPU" in err[-1]
    assert not list((tmp_path / "results").rglob("*.json"))  # no record


def test_other_errors_pass_through(synthetic_layout, tmp_path, monkeypatch):
    def boom(cfg_yaml, data, verbose=False):
        raise ValueError("something else")

    monkeypatch.setattr(trial, "train_and_evaluate", boom)
    with pytest.raises(ValueError, match="something else"):
        _run(synthetic_layout, tmp_path, "voc07-det-c4", "random", extra=["--trials", "1", "--jobs", "1"])
