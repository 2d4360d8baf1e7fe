"""The supervised baseline and the initialisation's input settings, on the files users bring (tests/helpers/
ckpt_layouts.py writes them in the layouts users download): an MSRA Caffe2 pickle is recognised from its
content and gets Detectron2's MSRA settings with no flag; --msra and --opts that contradict a file are refused;
a flat hub file without a classifier is `other`, with one `supervised`; two undeclared supervised rows are an
error naming both, a declared one wins; and the suite on an MSRA SUP_WEIGHTS gives a card with its Δ."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mocobench import records
from mocobench.__main__ import main as cli
from mocobench.detection import proof as P
from mocobench.detection.convert.d2_pickles import CAFFE2, TORCHVISION, inspect_pickle
from mocobench.runner import RunnerError
from mocobench.runner.run import RunRequest, prepare
from mocobench.runner.weights import resolve_init
from tests.helpers import ckpt_layouts as L
from tests.helpers.checkpoints import randomised_resnet
from tests.runner.test_runner import TINY

MSRA = {"format": "BGR", "pixel_mean": [103.53, 116.28, 123.675], "pixel_std": [1.0, 1.0, 1.0], "stride": True}
RGB = {"format": "RGB", "pixel_mean": [123.675, 116.28, 103.53], "pixel_std": [58.395, 57.12, 57.375],
       "stride": False}


@pytest.fixture(scope="module")
def r18():
    return randomised_resnet(18, seed=5)


@pytest.fixture(scope="module")
def files(r18, tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    return {"msra": L.write_msra_pkl(r18, d / "R-18.pkl"),
            "msra50": L.write_msra_names_pkl(50, d / "R-50.pkl"),
            "d2tv": L.write_d2_torchvision_pkl(r18, d / "r18-tv.pkl"),
            "d2tv-nofc": L.write_d2_torchvision_pkl({k: v for k, v in r18.items() if not k.startswith("fc.")},
                                                    d / "r18-dino.pkl"),
            "hub": L.write_hub_flat(r18, d / "dino_resnet18_pretrain.pth"),
            "hub-fc": L.write_hub_flat(r18, d / "resnet18-supervised.pth", fc=True)}


def _settings(cfg) -> dict:
    return {"format": cfg.INPUT.FORMAT, "pixel_mean": [round(v, 3) for v in cfg.MODEL.PIXEL_MEAN],
            "pixel_std": [round(v, 3) for v in cfg.MODEL.PIXEL_STD], "stride": cfg.MODEL.RESNETS.STRIDE_IN_1X1}


def _request(layout, tmp_path, weights, **kw):
    """A dry run on the tiny built-in data; conversions are cached beside the fixture files (once per module)."""
    return RunRequest("voc-det", weights=[str(w) for w in weights], data="synthetic", num_gpus=0,
                      synthetic_root=str(layout.root.parent), synthetic_preset="tiny", trials=1, dry_run=True,
                      results=str(tmp_path / "results"), output_dir=str(Path(weights[0]).parent / "out"), **kw)


def test_msra_blobs_are_recognised_from_content(files):
    r18, r50 = inspect_pickle(files["msra"]), inspect_pickle(files["msra50"])
    assert (r18.origin, r18.depth, r18.classifier) == (CAFFE2, 18, [1000, 512])
    assert (r50.origin, r50.depth, r50.classifier) == (CAFFE2, 50, [1000, 2048])
    tv = inspect_pickle(files["d2tv"])
    assert (tv.origin, tv.depth, tv.classifier) == (TORCHVISION, 18, [1000, 512])
    assert inspect_pickle(files["d2tv-nofc"]).classifier is None


def test_the_msra_fixture_is_what_detectron2_reads_as_caffe2(files, r18):
    """Detectron2's own checkpointer reads the fixture as a Caffe2 file and puts each blob where it belongs:
    the folded BN scale is the norm weight, the conv weights land on their convs."""
    from detectron2.checkpoint import DetectionCheckpointer

    backbone = P.build_detectron2_resnet(18)
    DetectionCheckpointer(backbone).load(str(files["msra"]))
    sd = backbone.state_dict()
    with open(files["msra"], "rb") as f:
        blobs = pickle.load(f)["blobs"]  # our own fixture file
    assert np.array_equal(sd["stem.conv1.weight"].numpy(), r18["conv1.weight"].numpy())
    assert np.allclose(sd["stem.conv1.norm.weight"].numpy(), blobs["res_conv1_bn_s"])
    assert np.array_equal(sd["res3.0.shortcut.weight"].numpy(), r18["layer2.0.downsample.0.weight"].numpy())
    assert np.allclose(sd["res5.1.conv2.norm.bias"].numpy(), blobs["res5_1_branch2b_bn_b"])
    # folded BN: s * x + b is the eval-mode BN of the source (an independent computation)
    x = torch.randn(64)
    bn = {k[4:]: v for k, v in r18.items() if k.startswith("bn1.")}
    ref = (x - bn["running_mean"]) / torch.sqrt(bn["running_var"] + 1e-5) * bn["weight"] + bn["bias"]
    assert torch.allclose(torch.from_numpy(blobs["res_conv1_bn_s"]) * x + torch.from_numpy(blobs["res_conv1_bn_b"]),
                          ref, atol=1e-5)


def test_msra_pickle_runs_with_msra_settings_and_no_flag(files, synthetic_layout, tmp_path):
    prep = prepare(_request(synthetic_layout, tmp_path, [files["msra"]]), banner=False)
    init, cfg = prep.inits[0], prep.plans[0].cfg
    assert init.msra and init.kind == "supervised" and init.format == CAFFE2 and not init.declared
    assert "Caffe2/MSRA blob names" in init.kind_reason and "MSRA caffe settings" in init.input_reason
    assert _settings(cfg) == MSRA
    rec = init.record_field()
    assert rec["msra"] is True and rec["kind_reason"] == init.kind_reason and "BGR" in rec["input_reason"]


def test_msra_r50_plans_the_real_protocol_with_msra_settings(files, tmp_path):
    init = resolve_init(str(files["msra50"]), cache_dir=tmp_path)
    assert (init.kind, init.msra, init.depth) == ("supervised", True, 50)
    from mocobench.runner.benchmarks import resolve_benchmark
    from mocobench.runner.plan import init_config
    assert _settings(init_config(resolve_benchmark("voc0712-det-c4"), init, synthetic=False)) == MSRA


def test_detectron2_torchvision_pickle_keeps_rgb(files, synthetic_layout, tmp_path):
    prep = prepare(_request(synthetic_layout, tmp_path, [files["d2tv"]]), banner=False)
    assert not prep.inits[0].msra and _settings(prep.plans[0].cfg) == RGB
    assert prep.inits[0].kind == "supervised" and "1000-way classifier" in prep.inits[0].kind_reason
    assert resolve_init(str(files["d2tv-nofc"]), cache_dir=tmp_path).kind == "other"


@pytest.mark.parametrize("name", ["d2tv", "hub"])
def test_msra_flag_refused_on_files_that_are_not_msra(name, files, tmp_path):
    with pytest.raises(RunnerError, match="--msra with --weights .*Drop --msra"):
        resolve_init(str(files[name]), cache_dir=tmp_path, msra=True)
    assert resolve_init(str(files["msra"]), cache_dir=tmp_path, msra=True).msra  # agrees with the file: accepted


@pytest.mark.parametrize("opts, key", [(["INPUT.FORMAT", "RGB"], "INPUT.FORMAT RGB"),
                                       (["MODEL.RESNETS.STRIDE_IN_1X1", "False"], "MODEL.RESNETS.STRIDE_IN_1X1 False")])
def test_opts_that_contradict_the_file_are_refused(opts, key, files, synthetic_layout, tmp_path):
    with pytest.raises(Exception, match=f"--opts sets {key}.*MSRA caffe weights"):
        prepare(_request(synthetic_layout, tmp_path, [files["msra"]], opts=opts), banner=False)
    with pytest.raises(Exception, match="INPUT.FORMAT BGR .*torchvision-style"):
        prepare(_request(synthetic_layout, tmp_path, [files["d2tv"]], opts=["INPUT.FORMAT", "BGR"]), banner=False)


def test_flat_hub_file_is_other_unless_it_holds_a_classifier(files, tmp_path):
    dino = resolve_init(str(files["hub"]), cache_dir=tmp_path)  # its own cache: converted here, then reused
    assert dino.kind == "other" and dino.format == "torchvision" and "no evidence" in dino.kind_reason
    sup = resolve_init(str(files["hub-fc"]), cache_dir=tmp_path)
    assert sup.kind == "supervised" and "1000-way classifier over the 512 features" in sup.kind_reason
    again = resolve_init(str(files["hub-fc"]), cache_dir=tmp_path)  # from the cached conversion: same evidence
    assert again.kind == "supervised" and again.kind_reason == sup.kind_reason
    assert resolve_init(str(files["hub"]), cache_dir=tmp_path, kind="supervised").declared


def test_two_undeclared_supervised_rows_are_an_error_naming_both(files, synthetic_layout, tmp_path):
    with pytest.raises(RunnerError, match="two rows claim to be the supervised baseline, 'R-18' .* and "
                                          "'resnet18-supervised'"):
        prepare(_request(synthetic_layout, tmp_path, [files["msra"], files["hub-fc"]]), banner=False)


def test_the_declared_supervised_row_wins(files, synthetic_layout, tmp_path, caplog):
    caplog.set_level("INFO")
    req = _request(synthetic_layout, tmp_path, [files["msra"], files["hub-fc"]], supervised=[str(files["hub-fc"])])
    inits = {i.label: i for i in prepare(req).inits}
    assert inits["resnet18-supervised"].kind == "supervised" and inits["resnet18-supervised"].declared
    assert inits["R-18"].kind == "other" and "declared supervised baseline" in inits["R-18"].kind_reason
    assert inits["R-18"].msra  # its input settings still come from the file
    assert "initialisation R-18: kind other" in caplog.text  # the plan says how each row was classified


def test_supervised_option_joins_the_weights_in_order(files, synthetic_layout, tmp_path, capsys):
    argv = ["run", "voc-det", "--weights", "random", "--supervised", str(files["msra"]), "--data", "synthetic",
            "--synthetic-root", str(synthetic_layout.root.parent), "--synthetic-preset", "tiny", "--num-gpus", "0",
            "--trials", "1", "--dry-run", "--results", str(tmp_path / "r"), "--output-dir", str(tmp_path / "o")]
    assert cli(argv) == 0
    out = capsys.readouterr()
    assert "initialisation R-18: kind supervised (declared)" in out.out + out.err
    assert cli([*argv, "--msra"]) == 2  # --msra is for one --weights (and MSRA files need none)


def test_suite_plan_lists_how_each_row_was_classified(files, synthetic_layout, tmp_path, capsys):
    argv = ["run", "suite", "--only", "voc-seg", "--weights", str(files["hub"]), "--supervised", str(files["msra"]),
            "--weights", "random", "--data", "synthetic", "--synthetic-root", str(synthetic_layout.root.parent),
            "--synthetic-preset", "tiny", "--num-gpus", "0", "--dry-run", "--results", str(tmp_path / "r"),
            "--output-dir", str(files["msra"].parent / "out")]
    assert cli(argv) == 0
    plan = capsys.readouterr().out.split("Initialisations:")[1].splitlines()
    assert [line.split(":")[0].strip() for line in plan if line.strip()] == ["dino_resnet18_pretrain", "R-18", "random"]
    assert "kind other (layout 'torchvision'; no evidence" in plan[1] and "torchvision settings" in plan[1]
    assert "kind supervised (declared); input MSRA caffe settings" in plan[2]


@pytest.mark.slow
def test_suite_with_an_msra_sup_weights_gives_a_card_with_its_delta(files, synthetic_layout, tmp_path, capsys):
    """The issue's done-criterion at the smallest scale: the suite (as `make suite` runs it, --supervised
    SUP_WEIGHTS) on one benchmark of the tiny built-in data, one trial each (Δ needs no second trial)."""
    results = tmp_path / "results"
    argv = ["run", "suite", "--only", "voc07-det-c4", "--weights", "random", "--supervised", str(files["msra"]),
            "--data", "synthetic", "--synthetic-root", str(synthetic_layout.root.parent), "--synthetic-preset", "tiny",
            "--num-gpus", "0", "--jobs", "1", "--trials", "1", "--results", str(results), "--output-dir",
            str(tmp_path / "out"), "--opts", *TINY]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "R-18: kind supervised (declared)" in out and "MSRA caffe settings" in out  # the plan's classification
    sup = [r for r in records.load_records(results) if r["init"]["label"] == "R-18"]
    assert len(sup) == 1 and all(r["init"]["msra"] and r["init"]["kind"] == "supervised" for r in sup)
    assert all("FORMAT: BGR" in r["config"] and "STRIDE_IN_1X1: true" in r["config"] for r in sup)
    import pandas as pd
    card = pd.read_csv(results / "card" / "card.csv")
    ours = card[card.source == "ours"] if "ours" in set(card.source) else card[card.init.isin(["R-18", "random"])]
    random_row = ours[(ours.init == "random") & ours["mean"].notna()]
    assert len(random_row) and random_row["delta"].notna().all()
    assert np.allclose(random_row["delta"], random_row["mean"].values
                       - ours[(ours.init == "R-18")].set_index("metric").loc[random_row.metric, "mean"].values)
    assert "no supervised row" not in (results / "card" / "card.md").read_text()
