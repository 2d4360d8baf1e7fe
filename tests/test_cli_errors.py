"""Every command-line entry, fed the bad inputs of docs/reliability.md (truncated, missing or foreign checkpoints, bad
config keys, missing data folders), answers with exit status 2 and one clear message: what is wrong and
what to do, never a traceback. Run in process, through each CLI's main()."""
from __future__ import annotations

import pickle

import pytest
import torch

from mocobench.__main__ import main as mocobench_main
from mocobench.data.synthetic.__main__ import main as synthetic_main
from mocobench.detection.convert import main as convert_main
from mocobench.pretrain.__main__ import main as pretrain_main
from tests.helpers.checkpoints import randomised_resnet, wrap
from tests.helpers.files import CodeRunningPayload
from tests.helpers.pretrain import make_imagefolder, tiny_overrides


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    make_imagefolder(d / "img")
    ckpt = wrap("moco", randomised_resnet(18))
    torch.save(ckpt, d / "odd_arch.pth")  # arch "resnet": not a name this suite builds
    torch.save(dict(ckpt, arch="resnet18"), d / "good.pth")
    data = (d / "good.pth").read_bytes()
    (d / "truncated.pth").write_bytes(data[: len(data) // 2])
    torch.save({"weights": torch.zeros(2)}, d / "foreign.pth")  # a dict without 'state_dict'
    torch.save(torch.zeros(3), d / "tensor.pth")
    with open(d / "detectron2.pkl", "wb") as f:
        pickle.dump({"model": {"stem.conv1.weight": 0}}, f)
    (d / "text.pth").write_text("not a checkpoint")
    return d


CHECKPOINTS = {"missing.pth": "no such file", "truncated.pth": "truncated", "foreign.pth": "no 'state_dict'",
               "tensor.pth": "holds a Tensor", "detectron2.pkl": "refused by weights-only loading",
               "text.pth": "not a torch.save"}


def _check(rc, capsys, expected):
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    assert expected in err, err


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
@pytest.mark.parametrize("command", ["knn", "lincls"])
def test_evaluations_refuse_bad_checkpoints(files, command, name, capsys):
    rc = pretrain_main([command, "--checkpoint", str(files / name), "--train", str(files / "img"),
                        "--val", str(files / "img"), "--workers", "0", "--device", "cpu"])
    _check(rc, capsys, CHECKPOINTS[name])


@pytest.mark.parametrize("name", sorted(set(CHECKPOINTS) - {"foreign.pth", "detectron2.pkl"}))
def test_convert_refuses_bad_checkpoints(files, name, tmp_path, capsys):
    _check(convert_main([str(files / name), str(tmp_path / "out.pkl")]), capsys, CHECKPOINTS[name])
    assert not (tmp_path / "out.pkl").exists()


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_train_resume_refuses_bad_checkpoints(files, name, tmp_path, capsys):
    rc = pretrain_main(["train", "--config", "demo", "--resume", str(files / name),
                        *tiny_overrides(files / "img", tmp_path / "run")])
    expected = "no such file" if name == "missing.pth" else CHECKPOINTS[name]
    if name in ("foreign.pth",):
        expected = "no 'state_dict'"
    _check(rc, capsys, expected)


def test_evaluation_with_a_missing_data_folder_or_unknown_arch(files, capsys):
    argv = ["knn", "--val", str(files / "img"), "--workers", "0", "--device", "cpu"]
    _check(pretrain_main([*argv, "--checkpoint", str(files / "odd_arch.pth"), "--train", str(files / "img")]),
           capsys, "unknown arch 'resnet'")
    _check(pretrain_main([*argv, "--checkpoint", str(files / "good.pth"), "--train", str(files / "nope")]), capsys,
           "is not a folder")


@pytest.mark.parametrize("argv,expected", [
    (["optim.lr_typo=1"], "unknown key 'optim.lr_typo'"),
    (["--config", "no_such_config"], "config 'no_such_config' not found"),
    (["data.source=imagefolder", "data.path=/no/such/folder"], "is not a folder"),
    (["data.image_size=abc"], "data.image_size"),
])
def test_train_bad_config_and_data(argv, expected, tmp_path, capsys):
    _check(pretrain_main(["train", f"train.output_dir={tmp_path}", *argv]), capsys, expected)


def test_train_with_fewer_images_than_one_batch(files, tmp_path, capsys):
    rc = pretrain_main(["train", *tiny_overrides(files / "img", tmp_path / "run", "optim.batch_size=64",
                                                 "moco.queue_size=64")])
    _check(rc, capsys, "fewer than one global batch of 64")


def test_runner_bad_inputs(files, synthetic_layout, tmp_path, capsys):
    base = ["run", "voc-det", "--data", "synthetic", "--dry-run", "--synthetic-preset", "tiny", "--synthetic-root",
            str(synthetic_layout.root.parent), "--output-dir", str(tmp_path / "out")]
    _check(mocobench_main([*base, "--weights", "random", "--opts", "MODEL.NO_SUCH_KEY", "1"]), capsys,
           "Non-existent key: MODEL.NO_SUCH_KEY")
    for name in ("truncated.pth", "text.pth", "tensor.pth"):
        _check(mocobench_main([*base, "--weights", str(files / name)]), capsys, CHECKPOINTS[name])
    _check(mocobench_main([*base, "--weights", str(files / "missing.pth")]), capsys, "no such file or folder")


def test_synthetic_bad_parameter(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        synthetic_main(["--root", str(tmp_path), "--preset", "tiny", "counts.no_such=1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown synthetic parameter 'counts.no_such'" in err and "Traceback" not in err


def test_weight_pickle_that_runs_code_is_refused_before_detectron2_sees_it(synthetic_layout, tmp_path, capsys):
    """`run --weights X.pkl`: Detectron2 reads .pkl files with plain pickle, so the runner reads it first
    without running code (numpy arrays and plain data only) and refuses anything else."""

    import numpy as np

    from mocobench.common import safe_pickle

    marker = tmp_path / "ran"

    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as f:
        pickle.dump({"model": {"stem.conv1.weight": np.zeros(2)}, "x": CodeRunningPayload(marker)}, f)
    base = ["run", "voc-det", "--data", "synthetic", "--dry-run", "--synthetic-preset", "tiny", "--synthetic-root",
            str(synthetic_layout.root.parent), "--output-dir", str(tmp_path / "out")]
    _check(mocobench_main([*base, "--weights", str(evil)]), capsys, "refused: unpickling it would call")
    assert not marker.exists()
    # weight pickles as Detectron2 and our converter write them (numpy arrays, Python 2 or 3 protocols) load
    for protocol in (2, 4):
        ok = tmp_path / f"ok{protocol}.pkl"
        with open(ok, "wb") as f:
            pickle.dump({"model": {"w": np.arange(3.0, dtype=np.float32)}, "__author__": "x",
                         "b": b"bytes"}, f, protocol=protocol)
        assert safe_pickle.load(ok)["model"]["w"].tolist() == [0.0, 1.0, 2.0]
