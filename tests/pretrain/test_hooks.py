"""The pretraining loop as hooks around one step (pretrain/hooks.py): order, schedules, and the model contract."""
from __future__ import annotations

import json

import pytest

from mocobench.pretrain.hooks import Checkpointer, Hook, KnnMonitor, Logging, Schedules, SkippedImages
from mocobench.pretrain.pretext import PretextModel
from mocobench.pretrain.schedules import key_momentum, learning_rate, scaled_lr
from mocobench.pretrain.trainer import Trainer
from tests.helpers.pretrain import make_imagefolder, tiny_config


class Recorder(Hook):
    def __init__(self):
        self.calls, self.steps = [], []

    def before_train(self, trainer):
        self.calls.append("before_train")

    def before_epoch(self, trainer, epoch):
        self.calls.append(f"before_epoch {epoch}")

    def after_step(self, trainer, state):
        self.steps.append((state.epoch, state.step, state.lr, state.momentum, float(state.loss)))

    def after_epoch(self, trainer, state):
        self.calls.append(f"after_epoch {state.epoch}")

    def after_train(self, trainer):
        self.calls.append("after_train")


@pytest.mark.parametrize("mode", ["moco", "supervised"])
def test_hooks_see_every_step_with_the_schedules_values(tmp_path, mode):
    make_imagefolder(tmp_path / "d", per_class=8)
    cfg = tiny_config(tmp_path / "d", tmp_path / "o", f"mode={mode}", "optim.schedule=cosine", "optim.epochs=2",
                      "moco.momentum_schedule=cosine")
    trainer = Trainer(cfg)
    assert isinstance(trainer.model, PretextModel)
    assert [type(h) for h in trainer.hooks] == [Schedules, SkippedImages, KnnMonitor, Logging, Checkpointer]
    recorder = Recorder()
    trainer.hooks.append(recorder)
    trainer.train()
    assert recorder.calls == ["before_train", "before_epoch 0", "after_epoch 0", "before_epoch 1", "after_epoch 1",
                              "after_train"]
    spe, o = trainer.steps_per_epoch, cfg.optim
    assert [s[1] for s in recorder.steps] == list(range(2 * spe))
    base = scaled_lr(o.lr, o.batch_size, o.base_batch)
    for epoch, step, lr, momentum, _ in recorder.steps:  # independent computation of each step's values
        assert epoch == step // spe
        assert lr == pytest.approx(learning_rate(step, steps_per_epoch=spe, epochs=2, base_lr=base, schedule="cosine",
                                                 milestones=o.steps, warmup_epochs=o.warmup_epochs))
        assert momentum == pytest.approx(key_momentum(step, total_steps=2 * spe, base=cfg.moco.momentum,
                                                      schedule="cosine"))
    # the log's per-step lines (log_every=1) carry the same lr and loss the hooks saw
    lines = [json.loads(x) for x in (tmp_path / "o" / "log.jsonl").read_text().splitlines()]
    steps = [x for x in lines if x["kind"] == "step"]
    assert [(x["step"], x["lr"]) for x in steps] == [(s[1] + 1, pytest.approx(s[2])) for s in recorder.steps]
    assert [x["loss"] for x in steps] == pytest.approx([s[4] for s in recorder.steps])
    assert not hasattr(trainer, "_lr")


def test_after_train_runs_when_a_step_fails(tmp_path):
    """A failing step still closes the hooks (TensorBoard writer, progress bar), as Detectron2's trainers do."""
    make_imagefolder(tmp_path / "d", per_class=8)
    trainer = Trainer(tiny_config(tmp_path / "d", tmp_path / "o", "optim.epochs=1"))

    class Boom(Hook):
        def before_step(self, trainer, state):
            if state.step == 1:
                raise RuntimeError("boom")

    recorder = Recorder()
    trainer.hooks[:0] = [Boom()]
    trainer.hooks.append(recorder)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    assert recorder.calls[-1] == "after_train" and len(recorder.steps) == 1
