"""The speed benchmark runs through the real trainer and loader (its figures live in RESULTS.md and
benchmarks/perf/results/): every preset's first steps on a tiny CPU shape, and the ladder's stages, each on the
augmentation pipeline its name says."""
from __future__ import annotations

import json

import pytest

from mocobench.benchmarks.perf.pretrain_speed import LADDER, PRESETS, ladder, main

TINY = ["--device", "cpu", "--batch", "8", "--queue", "16", "--steps", "1", "--warmup", "1", "--threads", "1"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_runs_its_first_steps_on_a_tiny_cpu_shape(preset, capsys):
    """Each preset's architecture and stem (gpu-r50: ResNet-50, standard stem; the demo config underneath batches
    the augmentation and uses AdamW) through `main`, batch 8, K 16 on the CPU, at 32 px (the standard stem: 64 px,
    so that each of the 8 BN groups keeps more than one value per channel at the last stage)."""
    size = 32 if PRESETS[preset]["stem"] == "small" else 64
    assert main(["--preset", preset, *TINY, "--size", str(size)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["arch"], result["stem"]) == (PRESETS[preset]["arch"], PRESETS[preset]["stem"])
    assert (result["size"], result["batch"], result["queue"], result["device"]) == (size, 8, 16, "cpu")
    assert result["pairs_per_s"] > 0 and 0 < result["loss"] < 20  # a real InfoNCE loss: ln(1 + K) at chance


def test_ladder_measures_each_cumulative_stage_through_the_trainer():
    stages = ladder(arch="resnet18", stem="small", size=32, batch=8, queue=64, steps=1, warmup=1, device="cpu",
                    workers=0, threads=None, stages=4)  # compile out: ~25 s to build; threads: leave torch's
    assert [s["stage"] for s in stages] == [name for name, _ in LADDER[:4]]
    assert stages[0]["ratio"] == 1.0
    for s in stages:
        assert s["pairs_per_s"] > 0 and s["loss"] > 0  # a real InfoNCE loss, ln(1 + K) at chance
        # both rounded to 2 decimals: at a few pairs/s the rates' rounding alone moves the ratio by ~0.005
        assert s["ratio"] == pytest.approx(s["pairs_per_s"] / stages[0]["pairs_per_s"], abs=0.02)
    # the first three stages augment per image in the loader (float views come out of it); "+ GPU aug" is the
    # first on the batched path (the loader only decodes: uint8 images)
    assert [(s["aug_device"], s["loaded"]) for s in stages] == [("cpu", "float32")] * 3 + [("gpu", "uint8")]
