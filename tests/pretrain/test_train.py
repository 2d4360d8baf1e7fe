"""The trainer end to end on tiny data: checkpoint format, exact resume, bad input, linear evaluation."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision
import yaml
from torch import nn

from mocobench.pretrain import checkpoint as ckpt_lib
from mocobench.pretrain.config import ConfigError, load_config
from mocobench.pretrain.data import DataError, ImageList, scan_imagefolder
from mocobench.pretrain.lincls import LinclsSettings, backbone_changes, linear_eval, model_from_checkpoint
from mocobench.pretrain.trainer import RunError, Trainer
from tests.helpers.pretrain import make_imagefolder, tiny_config

# fixtures `data` and `finished_run`: tests/pretrain/conftest.py


def test_checkpoint_has_official_moco_format(finished_run):
    cfg, out, final, _ = finished_run
    assert final == out / "checkpoint_0001.pth.tar" and (out / "checkpoint_0000.pth.tar").is_file()
    ckpt = torch.load(final, map_location="cpu", weights_only=True)
    assert {"epoch", "arch", "state_dict", "optimizer", "config"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["arch"] == "resnet18"
    assert ckpt["config"]["stem"] == "small" and ckpt["config"]["mode"] == "moco"
    sd = ckpt["state_dict"]
    assert sd["module.queue"].shape == (128, 32) and sd["module.queue_ptr"].tolist() == [0]  # 4 steps x 8 = 32
    prefixes = {k.split(".")[1] for k in sd}
    assert prefixes == {"encoder_q", "encoder_k", "queue", "queue_ptr"}
    # encoder_q / encoder_k are torchvision resnet18s with the official fc.0 / fc.2 MLP head
    for enc in ("encoder_q", "encoder_k"):
        net = torchvision.models.resnet18(num_classes=128)
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), net.fc)
        net.load_state_dict({k[len(f"module.{enc}."):]: v for k, v in sd.items() if k.startswith(f"module.{enc}.")})
    assert not torch.equal(sd["module.encoder_q.conv1.weight"], sd["module.encoder_k.conv1.weight"])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all({"epoch", "step", "loss", "lr"} <= set(e) for e in log)
    assert [e["step"] for e in log if e["kind"] == "epoch"] == [2, 4]
    assert (out / "config.yaml").is_file() and any((out / "tb").iterdir())


def test_interrupted_then_resumed_equals_uninterrupted(finished_run, data, tmp_path):
    cfg, _, final, full = finished_run
    out = tmp_path / "resumed"
    cfg2 = tiny_config(data / "train", out, "train.deterministic=true")
    Trainer(cfg2).train(stop_after_epoch=1)  # "interrupted" after the first checkpoint
    assert ckpt_lib.latest_checkpoint(out).name == "checkpoint_0000.pth.tar"
    resumed = Trainer(cfg2, resume="auto")
    assert resumed.start_epoch == 1 and resumed.step == 2
    final2 = resumed.train()
    a = torch.load(final, weights_only=True)["state_dict"]
    b = torch.load(final2, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    assert [e["loss"] for e in resumed.history] == [e["loss"] for e in full.history[-len(resumed.history):]]
    # finished: resuming again does nothing and overwrites nothing
    mtime = final2.stat().st_mtime_ns
    assert Trainer(cfg2, resume="auto").train() == final2 and final2.stat().st_mtime_ns == mtime


def test_output_dir_of_another_run_is_refused(finished_run, data):
    _, out, _, _ = finished_run
    with pytest.raises(RunError, match="holds another run.*optim.lr"):
        Trainer(tiny_config(data / "train", out, "train.deterministic=true", "optim.lr=0.5"), resume="auto")
    with pytest.raises(RunError, match="pass --resume auto"):
        Trainer(tiny_config(data / "train", out, "train.deterministic=true"))


def test_resume_checkpoint_from_another_config_is_refused(finished_run, data, tmp_path):
    _, _, final, _ = finished_run
    with pytest.raises(RunError, match="another config.*moco.temperature"):
        Trainer(tiny_config(data / "train", tmp_path / "x", "train.deterministic=true", "moco.temperature=0.5"),
                resume=str(final))


def test_bad_config_and_data_are_refused(data, tmp_path):
    with pytest.raises(ConfigError, match="K=36 is not divisible by the global batch size 8"):
        Trainer(tiny_config(data / "train", tmp_path / "a", "moco.queue_size=36"))
    with pytest.raises(ConfigError, match="unknown key 'optim.lr_typo'"):
        tiny_config(data / "train", tmp_path / "a", "optim.lr_typo=1")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        Trainer(tiny_config(tmp_path / "empty", tmp_path / "b"))
    with pytest.raises(DataError, match="not a folder"):
        Trainer(tiny_config(tmp_path / "missing", tmp_path / "c"))


def test_unreadable_images_are_skipped_then_refused(tmp_path, caplog):
    root = make_imagefolder(tmp_path / "d", per_class=3)
    (root / "c0" / "0.png").write_bytes(b"not an image")
    samples, classes = scan_imagefolder(root)
    ds = ImageList(samples, lambda im: im.size, classes=classes, max_bad=1)
    assert ds[0] == ((20, 20), 0)  # the broken first image is replaced by the next one
    assert "c0/0.png" in caplog.text
    (root / "c0" / "1.png").write_bytes(b"")
    with pytest.raises(DataError, match="more than 1 unreadable images"):
        ds[0]


def test_supervised_mode_saves_imagenet_style_checkpoint(data, tmp_path):
    cfg = tiny_config(data / "train", tmp_path / "sup", "mode=supervised", "optim.epochs=1")
    final = Trainer(cfg).train()
    ckpt = torch.load(final, weights_only=True)
    assert {"epoch", "arch", "state_dict", "optimizer", "config"} <= set(ckpt)
    net = torchvision.models.resnet18(num_classes=2)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.load_state_dict({k[len("module."):]: v for k, v in ckpt["state_dict"].items()})


def test_linear_eval_leaves_backbone_untouched(finished_run, data, tmp_path):
    _, _, final, _ = finished_run
    settings = LinclsSettings(epochs=2, lr=1.0, milestones=[1], batch_size=8, workers=0, progress=False)
    result = linear_eval(final, data / "train", data / "val", settings, output=tmp_path / "lincls.json")
    assert result["backbone_unchanged"] and 0.0 <= result["top1"] <= 100.0
    with pytest.raises(FileExistsError):
        linear_eval(final, data / "train", data / "val", settings, output=tmp_path / "lincls.json")
    # the check itself detects a change of BN statistics, and the fc starts as N(0, 0.01)
    ckpt = ckpt_lib.load(final)
    model = model_from_checkpoint(ckpt, num_classes=2)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    assert backbone_changes(model, reference) == []
    model.train()
    model(torch.randn(4, 3, 16, 16))
    assert "bn1.running_mean" in backbone_changes(model, reference)
    assert model.fc.weight.std().item() == pytest.approx(0.01, rel=0.2)


def test_wrong_arch_for_checkpoint_is_refused(finished_run):
    ckpt = ckpt_lib.load(finished_run[2])
    with pytest.raises(ckpt_lib.CheckpointError, match="holds a resnet18, not a resnet50"):
        model_from_checkpoint(ckpt, num_classes=2, arch="resnet50")
    ckpt["config"] = dict(ckpt["config"], stem="standard")  # wrong stem -> shape mismatch, named
    with pytest.raises(ckpt_lib.CheckpointError, match="does not fit this model.*conv1.weight"):
        model_from_checkpoint(ckpt, num_classes=2)


def test_bundled_configs_load():
    """Every bundled config resolves, and every key its own file sets (not only its _BASE_ chain) is applied."""
    from mocobench.pretrain.config import CONFIG_DIR, flatten

    for name in ("demo", "supervised_demo", "moco_v1", "cifar10_moco_v2_r18", "cifar10_cpu_short"):
        overrides = [] if name in ("demo", "supervised_demo") else ["data.path=/x"]
        cfg = flatten(load_config(name, overrides).to_dict())
        own = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
        own.pop("_BASE_")
        for key, value in flatten(own).items():
            assert cfg[key] == value, (name, key)
    v1 = load_config("moco_v1", ["data.path=/x"])
    assert (v1.moco.temperature, v1.moco.mlp, v1.optim.schedule, v1.data.aug) == \
        (0.07, False, "step", "v1")


def test_cli_reports_bad_input_without_traceback(data, tmp_path, capsys):
    from mocobench.pretrain.__main__ import main
    from tests.helpers.pretrain import tiny_overrides

    rc = main(["train", "--config", "demo", *tiny_overrides(data / "train", tmp_path / "o", "moco.queue_size=36")])
    assert rc == 2 and "K=36 is not divisible by the global batch size 8" in capsys.readouterr().err
    # the same through --opts KEY VALUE pairs, and the batch semantics are in the user's help
    rc = main(["train", "--config", "demo", *tiny_overrides(data / "train", tmp_path / "o"),
               "--opts", "moco.queue_size", "36"])
    assert rc == 2 and "K=36 is not divisible" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "optim.batch_size is the GLOBAL batch" in " ".join(capsys.readouterr().out.split())


def test_flat_folder_source_reads_nested_images(tmp_path):
    from mocobench.pretrain.data import training_samples

    make_imagefolder(tmp_path / "flat" / "a" / "b", per_class=2)
    cfg = load_config("demo", ["data.source=flat", f"data.path={tmp_path / 'flat'}"])
    samples, classes = training_samples(cfg)
    assert len(samples) == 4 and classes == [] and {label for _, label in samples} == {-1}


def test_unreadable_training_image_reported_once_per_run_and_listed_in_log(tmp_path, capfd):
    """One broken image, 3 epochs, 2 loader workers (each meets it in its own process), then a resumed
    run: one warning and one "skipped" line in log.jsonl, not one per epoch, worker or attempt."""
    import logging

    from mocobench.pretrain.log import read_log, skipped_images

    root = make_imagefolder(tmp_path / "d", per_class=8)
    broken = root / "c1" / "3.png"
    broken.write_bytes(b"not an image")
    handler = logging.StreamHandler()  # to fd 2, inherited by the forked loader workers
    logging.getLogger("mocobench").addHandler(handler)
    try:
        out = tmp_path / "run"
        cfg = tiny_config(root, out, "optim.epochs=3", "data.workers=2")
        Trainer(cfg).train(stop_after_epoch=2)
        Trainer(cfg, resume="auto").train()
    finally:
        logging.getLogger("mocobench").removeHandler(handler)
    err = capfd.readouterr().err
    assert err.count("skipping unreadable image") == 1 and str(broken) in err, err
    assert skipped_images(out) == [str(broken)]
    entry = next(json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines() if "skipped" in ln)
    assert entry["kind"] == "skipped" and "UnidentifiedImageError" in entry["reason"]
    assert len(read_log(out)) > 0  # the reporting's reader takes the log with its skipped line


def test_too_many_unreadable_training_images_stop_the_run(tmp_path):
    root = make_imagefolder(tmp_path / "d", per_class=8)
    for i in range(3):
        (root / "c0" / f"{i}.png").write_bytes(b"")
    with pytest.raises(DataError, match="more than 2 unreadable images.*log.jsonl"):
        Trainer(tiny_config(root, tmp_path / "run", "data.max_bad_images=2", "optim.epochs=1")).train()


def test_loader_workers_augment_with_the_current_epoch(tmp_path):
    """Each epoch's crops come from that epoch's seeds, in loader workers too (what exact resume relies on):
    the batch a worker returns equals the dataset's samples drawn in this process for the same epoch."""
    from mocobench.pretrain.trainer import Trainer
    from tests.helpers.pretrain import make_imagefolder, tiny_config

    make_imagefolder(tmp_path / "d", per_class=8)
    trainer = Trainer(tiny_config(tmp_path / "d", tmp_path / "o", "data.workers=1", "optim.epochs=2"))
    firsts = []
    for epoch in (0, 1):
        trainer.sampler.set_epoch(epoch)
        trainer.dataset.epoch = epoch
        images = next(iter(trainer.loader))[0]
        indices = next(iter(trainer.sampler))
        expected = torch.stack([trainer.dataset[i][0] for i in indices])
        assert torch.equal(images, expected), f"epoch {epoch}: the worker augmented with another epoch's seeds"
        firsts.append(images)
    assert not torch.equal(firsts[0], firsts[1])
