"""The speed ladder runs end to end through the real trainer and loader (its figures live in RESULTS.md)."""
from __future__ import annotations

from mocobench.benchmarks.perf.pretrain_speed import LADDER, ladder


def test_ladder_measures_each_cumulative_stage_through_the_trainer():
    stages = ladder(arch="resnet18", stem="small", size=32, batch=8, queue=64, steps=1, warmup=1, device="cpu",
                    workers=0, threads=None, stages=4)  # compile out: ~25 s to build; threads: leave torch's
    assert [s["stage"] for s in stages] == [name for name, _ in LADDER[:4]]
    assert stages[0]["ratio"] == 1.0
    for s in stages:
        assert s["pairs_per_s"] > 0 and s["loss"] > 0  # a real InfoNCE loss, ln(1 + K) at chance
        assert abs(s["ratio"] - s["pairs_per_s"] / stages[0]["pairs_per_s"]) < 0.01
