"""Checkpoints are read with torch.load(weights_only=True) and nothing more: ours load that way with plain
torch, a pickle that would run code is refused before it runs, and an old checkpoint of ours (numpy RNG
state) gets a clear error and an upgrade path that resumes exactly."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mocobench.pretrain import checkpoint as ckpt_lib
from mocobench.pretrain.__main__ import main
from mocobench.pretrain.trainer import Trainer
from tests.helpers.files import CodeRunningPayload
from tests.helpers.pretrain import tiny_config, tiny_overrides

PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size)


def _leaves(obj, where="ckpt"):
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert isinstance(k, (str, int)), f"{where}: key {k!r}"
            yield from _leaves(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{where}[{i}]")
    else:
        yield where, obj


def test_our_checkpoints_load_with_plain_weights_only(finished_run):
    _, out, _, _ = finished_run
    for path in sorted(out.glob("checkpoint_*.pth.tar")):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # torch's own default set, no allowlist
        odd = [(w, type(v).__name__) for w, v in _leaves(ckpt) if type(v) not in PLAIN]
        assert odd == [], odd
        assert set(ckpt["rng"]) == {"torch", "numpy", "python", "cuda"}
        assert ckpt["rng"]["numpy"]["key"].dtype == torch.int64 and ckpt["rng"]["numpy"]["key"].numel() == 624


def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path, capsys):
    marker = tmp_path / "ran"

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"module.conv1.weight": torch.zeros(1)}, "x": CodeRunningPayload(marker)}, evil)
    with pytest.raises(ckpt_lib.CheckpointError, match=r"refused: loading it would need (posix|os)\.system.*"
                                                        r"weights_only=True"):
        ckpt_lib.read_checkpoint(evil)
    rc = main(["knn", "--checkpoint", str(evil), "--train", str(tmp_path), "--val", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "refused" in err and "Traceback" not in err
    assert not marker.exists()
    with pytest.raises(ckpt_lib.CheckpointError, match="more than an old mocobench checkpoint"):
        ckpt_lib.upgrade_legacy(evil, tmp_path / "up.pth")
    assert not marker.exists() and not (tmp_path / "up.pth").exists()


def _legacy_copy(path, dst):
    """The checkpoint as the suite wrote it before: numpy's RNG state tuple and torch's version type."""
    ckpt = torch.load(path, weights_only=True)
    n = ckpt["rng"]["numpy"]
    ckpt["rng"]["numpy"] = (n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                            n["cached_gaussian"])
    ckpt["provenance"]["versions"]["torch"] = torch.__version__  # a TorchVersion object
    torch.save(ckpt, dst)
    return dst


def test_old_checkpoint_gets_a_clear_error_and_upgrades_to_an_exact_resume(finished_run, data, tmp_path, capsys):
    _, _, final, _ = finished_run
    out = tmp_path / "resumed"
    cfg = tiny_config(data / "train", out, "train.deterministic=true")
    legacy = _legacy_copy(finished_run[1] / "checkpoint_0000.pth.tar", tmp_path / "old.pth.tar")
    with pytest.raises(ckpt_lib.CheckpointError, match="holds numpy objects.*mocobench.pretrain upgrade OLD NEW"):
        ckpt_lib.read_checkpoint(legacy)
    rc = main(["train", "--config", "demo", "--resume", str(legacy),
               *tiny_overrides(data / "train", out, "train.deterministic=true")])
    err = capsys.readouterr().err
    assert rc == 2 and "upgrade OLD NEW" in err and "Traceback" not in err
    new = tmp_path / "new.pth.tar"
    assert main(["upgrade", str(legacy), str(new)]) == 0
    assert main(["upgrade", str(legacy), str(new)]) == 2  # never replaces a file
    restored = torch.load(new, weights_only=True)
    np.random.seed(123)
    random.seed(5)
    trainer = Trainer(cfg, resume=str(new))  # restores numpy's generator from the upgraded state
    assert np.random.get_state()[2] == restored["rng"]["numpy"]["pos"]
    resumed = trainer.train()
    a, b = torch.load(final, weights_only=True), torch.load(resumed, weights_only=True)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
