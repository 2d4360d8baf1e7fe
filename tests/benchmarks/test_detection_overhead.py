"""The detection-overhead benchmark's plumbing (benchmarks/perf/detection_overhead.py): the trial config is the
runner's own plan, the plain trainer is DefaultTrainer with only train_net.py's evaluator. Training both takes
longer than a unit test should; the script's recorded run is in benchmarks/perf/RESULTS.md."""
from __future__ import annotations

import pytest
from detectron2.engine import DefaultTrainer

from mocobench.benchmarks.perf import detection_overhead as DO


def test_the_trial_config_is_the_runners_plan(synthetic_tiny, tmp_path):
    from mocobench.runner.run import RunRequest, prepare

    root = str(synthetic_tiny.root.parent)
    cfg, data, ran = DO.trial_config("voc0712-det-c4", device="cpu", iters=7, output_dir=tmp_path,
                                     synthetic_root=root, preset="tiny")
    assert cfg.SOLVER.MAX_ITER == 7 and cfg.MODEL.DEVICE == "cpu" and cfg.DATASETS.TEST == ()
    assert data["synthetic"] and ran == "voc0712-det-c4"
    plan = prepare(RunRequest(benchmark="voc0712-det-c4", weights=["random"], data="synthetic", synthetic_root=root,
                              synthetic_preset="tiny", num_gpus=0, trials=1, output_dir=str(tmp_path / "t"),
                              results=str(tmp_path / "r"), opts=["SOLVER.MAX_ITER", "7"]), banner=False).plans[0]
    expected = plan.cfg.clone()
    expected.defrost()
    expected.DATASETS.TEST, expected.OUTPUT_DIR = (), cfg.OUTPUT_DIR
    assert cfg.dump() == expected.dump()  # nothing else changed
    fpn, _, _ = DO.trial_config("coco-mask-fpn-1x", device="cpu", iters=7, output_dir=tmp_path, synthetic_root=root,
                                preset="tiny", evaluate=True)
    assert fpn.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone" and fpn.DATASETS.TEST  # --eval: test sets kept


def test_the_plain_trainer_adds_only_an_evaluator():
    plain = DO.plain_trainer_class()
    assert plain.__mro__[1] is DefaultTrainer
    assert {k for k in vars(plain) if not k.startswith("__")} == {"build_evaluator"}


def test_bad_options_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        DO.main(["--iters", "5", "--warmup", "5"])
    assert e.value.code == 2 and "--iters must exceed --warmup" in capsys.readouterr().err


def test_each_hooks_own_time_is_measured_and_named():
    import time
    from types import SimpleNamespace

    from detectron2.engine import HookBase

    class Slow(HookBase):
        def after_step(self):
            time.sleep(0.02 if self.trainer.iter == 3 else 0.002)

    class Quick(HookBase):
        pass

    trainer = SimpleNamespace(_hooks=[Slow(), Quick()], iter=0)
    for hook in trainer._hooks:
        hook.trainer = trainer
    costs = DO.time_hooks(trainer)
    for trainer.iter in range(4):
        for hook in trainer._hooks:
            hook.before_step()
            hook.after_step()
    for hook in trainer._hooks:
        hook.after_train()
    summary = DO.hook_summary(costs)
    assert set(summary) == {"Slow", "Quick"}
    assert 2 <= summary["Slow"]["ms_per_iter"] < 15 and summary["Slow"]["last_iter_s"] >= 0.02
    assert summary["Quick"]["ms_per_iter"] < 1 and summary["Quick"]["after_train_s"] < 0.01
