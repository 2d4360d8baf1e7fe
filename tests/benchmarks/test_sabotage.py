"""The sabotage check's checkpoint surgery and verdict (the fine-tuning it drives is the runner's, tested there)."""
from __future__ import annotations

import torch

from mocobench.benchmarks.perf import sabotage
from mocobench.pretrain.checkpoint import load
from mocobench.records import write_record
from tests.helpers.checkpoints import randomised_resnet, wrap
from tests.helpers.records import det, make_record


def test_every_backbone_tensor_is_a_permutation_of_itself(tmp_path):
    ckpt = wrap("moco", randomised_resnet(18, seed=3))
    ckpt["epoch"] = 1
    source = tmp_path / "checkpoint_0000.pth.tar"
    torch.save(ckpt, source)
    target, n, kind = sabotage.shuffled_checkpoint(source, tmp_path / "out", seed=0)
    assert kind == "moco"
    before, after = ckpt["state_dict"], load(target)["state_dict"]
    backbone = [k for k in before if k.startswith("module.encoder_q.") and ".fc." not in k]
    assert n == len(backbone) > 100
    changed = 0
    for k in backbone:
        assert after[k].shape == before[k].shape and after[k].dtype == before[k].dtype
        assert torch.equal(after[k].reshape(-1).sort().values, before[k].reshape(-1).sort().values)  # same values
        changed += not torch.equal(after[k], before[k])
    # every tensor with more than one distinct value is moved (only num_batches_tracked scalars stay)
    assert changed == sum(before[k].unique().numel() > 1 for k in backbone)
    untouched = [k for k in before if k not in backbone]
    assert all(torch.equal(after[k], before[k]) for k in untouched)  # head, key encoder, queue
    # a second call reuses the file rather than writing another one
    assert sabotage.shuffled_checkpoint(source, tmp_path / "out", seed=0)[0] == target
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_supervised_checkpoints_are_shuffled_too(tmp_path):
    ckpt = {"epoch": 1, "state_dict": {f"module.{k}": v for k, v in randomised_resnet(18, seed=4).items()}}
    ckpt["state_dict"]["module.fc.weight"] = torch.ones(6, 512)
    torch.save(ckpt, tmp_path / "checkpoint_0000.pth.tar")
    target, n, kind = sabotage.shuffled_checkpoint(tmp_path / "checkpoint_0000.pth.tar", tmp_path / "out", seed=1)
    after = load(target)["state_dict"]
    assert kind == "supervised" and n == sum(not k.startswith("module.fc.") for k in ckpt["state_dict"])
    assert torch.equal(after["module.fc.weight"], ckpt["state_dict"]["module.fc.weight"])
    assert not torch.equal(after["module.conv1.weight"], ckpt["state_dict"]["module.conv1.weight"])


def _records(results, label, kind, values, sha=None, protocol=None):
    for bench in sabotage.RECORD_NAMES.values():
        for t, v in enumerate(values):
            write_record(make_record(bench, label, kind, t, det(v, v / 2, v / 3), weights_sha256=sha,
                                     protocol=protocol), results)


def test_verdict_needs_the_shuffled_row_at_random_level(tmp_path):
    _records(tmp_path / "demo", "random", "random", [4.0, 5.0])
    _records(tmp_path / "demo", "moco_v2_demo-ep8", "moco", [14.0, 15.0], sha="a" * 64)
    _records(tmp_path / "demo", "moco_v2_demo-ep4", "moco", [30.0, 31.0], sha="b" * 64)  # another checkpoint
    _records(tmp_path / "low", sabotage.LABEL, "moco", [4.5, 5.5], sha="c" * 64)
    _records(tmp_path / "high", sabotage.LABEL, "moco", [10.5, 11.5], sha="c" * 64)
    low = sabotage.summarise(tmp_path / "demo", tmp_path / "low", "a" * 64)
    for s in low.values():
        assert s["rows"]["intact"]["mean"] == 14.5 and s["rows"]["random"]["n"] == 2  # only the given checkpoint
        assert s["decisive"] and s["falls_to_random"] is True
    high = sabotage.summarise(tmp_path / "demo", tmp_path / "high", "a" * 64)
    assert all(s["falls_to_random"] is False for s in high.values())   # closer to MoCo than to random
    assert "**no**" in sabotage.markdown(high) and "yes" in sabotage.markdown(low)
    none = sabotage.summarise(tmp_path / "nothing", tmp_path / "low", "a" * 64)
    assert all(s["falls_to_random"] is None for s in none.values())
    # an intact checkpoint at the random level (7.0 vs 4.5) has no transfer to break: inconclusive, not a pass
    _records(tmp_path / "flat", "random", "random", [4.0, 5.0])
    _records(tmp_path / "flat", "moco_v2_demo-ep4", "moco", [6.5, 7.5], sha="d" * 64)
    flat = sabotage.summarise(tmp_path / "flat", tmp_path / "high", "d" * 64)
    assert all(not s["decisive"] and s["falls_to_random"] is None for s in flat.values())
    assert "inconclusive" in sabotage.markdown(flat)


def test_verdict_uses_only_trials_of_the_intact_checkpoints_protocol(tmp_path):
    """Random-init records of an older demo (another data version) in the same results folder are left out."""
    from tests.helpers.records import PAPER_VOC

    old_data = {**PAPER_VOC, "synthetic_data": "demo-0123456789"}
    _records(tmp_path / "demo", "random", "random", [4.0, 5.0])
    _records(tmp_path / "demo", "random", "random", [40.0, 41.0], protocol=old_data)
    _records(tmp_path / "demo", "moco_v2_demo-ep8", "moco", [14.0, 15.0], sha="a" * 64)
    _records(tmp_path / "low", sabotage.LABEL, "moco", [4.5, 5.5], sha="c" * 64)
    for s in sabotage.summarise(tmp_path / "demo", tmp_path / "low", "a" * 64).values():
        assert s["values"]["random"] == [4.0, 5.0] and s["falls_to_random"] is True
