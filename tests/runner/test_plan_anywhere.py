"""Planning before the allocation: on a machine with no GPU and no data sets (a login node, a laptop),
`--dry-run` plans the real protocol on the GPUs asked for, with the GPU-hour estimate, and says that GPUs
and data sets were not checked; only a real run requires them."""
from __future__ import annotations

import logging

import pytest
import torch

from mocobench.__main__ import main as cli


@pytest.fixture
def login_node(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "no-datasets"))
    return ["--results", str(tmp_path / "results"), "--output-dir", str(tmp_path / "out")]


def test_run_dry_run_plans_the_real_protocol_without_gpus_or_data(login_node, capsys, caplog):
    caplog.set_level(logging.INFO)
    argv = ["run", "voc0712-det-c4", "--weights", "random", "--data", "real", "--num-gpus", "8", *login_node]
    assert cli(argv + ["--dry-run"]) == 0
    text = capsys.readouterr().out + caplog.text
    assert "voc0712-det-c4 / random trial 0" in text and "max_iter 24000, batch 16" in text  # the paper's
    assert "not checked here: GPUs (--num-gpus 8; 0 visible here)" in text and "datasets" in text
    assert "A real run requires them" in text and "SYNTHETIC" not in text
    assert cli(argv) == 2  # the real run: refused before anything is planned or written
    assert "--num-gpus 8 but 0 CUDA devices are visible" in capsys.readouterr().err
    assert cli(argv[:-6] + ["--num-gpus", "0", *login_node]) == 2  # no GPU asked for: the data sets still count
    assert "--data real" in capsys.readouterr().err


def test_suite_dry_run_plans_the_real_protocol_with_its_gpu_hours(login_node, capsys, caplog):
    caplog.set_level(logging.INFO)
    argv = ["run", "suite", "--weights", "random", "--data", "real", "--num-gpus", "8", "--dry-run",
            "--only", "voc0712-det-c4,coco-mask-fpn-1x", *login_node]
    assert cli(argv) == 0
    text = capsys.readouterr().out + caplog.text
    assert "voc0712-det-c4" in text and "coco-mask-fpn-1x" in text and "CANNOT RUN" not in text
    assert "GPU-hours" in text and "planned only: the GPUs and datasets were not checked" in text
    # 8 GPUs x 2 images: the paper's batch; Detectron2's zoo speed gives the estimate (0.537 s/iter x 24k on 8)
    assert f"{0.537 * 24000 * 8 / 3600:.3g}" in text
