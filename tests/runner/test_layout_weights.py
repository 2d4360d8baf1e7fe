"""`run --weights FILE` takes every checkpoint layout: a released SwAV file (swav_800ep_pretrain.pth.tar) is
converted with its proof, planned against the paper's R50 protocol, dry-run and run like any other checkpoint;
the record carries the detected format and tables can label rows with it."""
from __future__ import annotations

import pytest
import torch

from mocobench import records
from mocobench.__main__ import main as cli
from mocobench.common.logs import cli_logging
from mocobench.detection.benchmarks import BENCHMARKS
from mocobench.reporting import aggregate
from mocobench.runner.plan import init_config
from mocobench.runner.weights import resolve_init
from tests.helpers.checkpoints import randomised_resnet
from tests.helpers.ckpt_layouts import write_dino, write_swav
from tests.runner.test_runner import TINY

SWAV = "swav_800ep_pretrain.pth.tar"


def test_released_swav_resnet50_resolves_and_plans_the_paper_protocol(tmp_path, capsys):
    """The one ResNet-50 proof of the layout tests: the SwAV release is a ResNet-50."""
    cli_logging()
    src = write_swav(randomised_resnet(50, seed=5), tmp_path / SWAV)
    init = resolve_init(str(src), cache_dir=tmp_path / "cache")
    assert (init.format, init.depth, init.kind, init.label) == ("swav", 50, "other", "swav_800ep_pretrain")
    assert init.record_field()["format"] == "swav"
    assert "proof OK" in capsys.readouterr().out
    cfg = init_config(BENCHMARKS["voc0712-det-c4"], init, synthetic=False)  # the paper's VOC R50-C4 protocol
    assert cfg.MODEL.WEIGHTS == init.pkl and cfg.MODEL.RESNETS.DEPTH == 50
    again = resolve_init(str(src), cache_dir=tmp_path / "cache")  # the cached conversion keeps the format
    assert again.format == "swav" and again.pkl == init.pkl


def test_a_dino_checkpoint_with_argparse_args_resolves(tmp_path):
    init = resolve_init(str(write_dino(randomised_resnet(18), tmp_path / "checkpoint.pth")), cache_dir=tmp_path)
    assert init.format == "dino" and init.pretrain["epoch"] == 800 and init.kind == "other"


def _argv(layout, tmp_path, weights, *extra):
    return ["run", "voc-det", "--data", "synthetic", "--synthetic-root", str(layout.root.parent),
            "--synthetic-preset", "tiny", "--num-gpus", "0", "--results", str(tmp_path / "results"),
            "--output-dir", str(tmp_path / "out"), "--weights", str(weights), *extra, "--opts", *TINY]


def test_run_voc_det_with_a_swav_file_dry_run(synthetic_layout, tmp_path, capsys):
    src = write_swav(randomised_resnet(18), tmp_path / SWAV)  # the built-in data's demo is ResNet-18
    assert cli(_argv(synthetic_layout, tmp_path, src, "--dry-run", "--trials", "1")) == 0
    out = capsys.readouterr().out
    assert "format swav, ResNet-18" in out and "proof OK" in out
    assert "dry run: voc0712-det-c4-synthetic / swav_800ep_pretrain trial 0" in out
    assert not records.find_records(tmp_path / "results")


@pytest.mark.slow
def test_run_voc_det_with_a_swav_file_records_its_format(synthetic_layout, tmp_path, capsys):
    src = write_swav(randomised_resnet(18), tmp_path / SWAV)
    assert cli(_argv(synthetic_layout, tmp_path, src, "--trials", "1")) == 0
    (rec,) = records.load_records(tmp_path / "results")
    assert rec["init"]["format"] == "swav" and rec["init"]["label"] == "swav_800ep_pretrain"
    assert rec["init"]["kind"] == "other" and rec["benchmark"] == "voc0712-det-c4-synthetic"
    labels = [r.label for t in aggregate.build_tables([rec], label_format=True) for r in t.rows if r.source == "ours"]
    assert labels == ["swav_800ep_pretrain (swav)"]
    plain = [r.label for t in aggregate.build_tables([rec]) for r in t.rows if r.source == "ours"]
    assert plain == ["swav_800ep_pretrain"]


def test_run_format_decides_a_file_that_fits_two_layouts(synthetic_layout, tmp_path, capsys):
    from tests.helpers.ckpt_layouts import _lightning

    sd = {f"backbone.{k}": v for k, v in randomised_resnet(18).items() if not k.startswith("fc.")}
    sd["prototypes.weight"] = torch.zeros(6, 4)
    src = tmp_path / "swav.ckpt"
    torch.save(_lightning(sd, {}), src)
    assert cli(_argv(synthetic_layout, tmp_path, src, "--dry-run", "--trials", "1")) == 2
    err = capsys.readouterr().err
    assert "fits 2 layouts, 'solo-learn' and 'lightly'" in err and "Traceback" not in err
    assert cli(_argv(synthetic_layout, tmp_path, src, "--dry-run", "--trials", "1", "--format", "lightly")) == 0
    assert "format lightly, ResNet-18" in capsys.readouterr().out
