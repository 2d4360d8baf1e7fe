"""The input-pipeline benchmark (benchmarks/perf/input_pipeline.py) at tiny size: every stage runs on real JPEG
files (built-in scenes written by PIL), the derived figures follow from the measured cost, and the official
pipeline is the published MoCo v2 recipe. No timing is asserted."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from mocobench.benchmarks.perf import input_pipeline as IP
from tests.helpers.jpeg import jpeg, scene


@pytest.fixture
def jpeg_folder(tmp_path):
    root = tmp_path / "photos" / "cls"
    root.mkdir(parents=True)
    for k in range(5):
        (root / f"{k}.jpg").write_bytes(jpeg(scene(k, (40 + 4 * k, 30))))
    (root / "ignored.png").write_bytes(b"not a jpeg")
    return tmp_path / "photos"


def test_the_official_stage_makes_two_views_of_the_published_recipe(jpeg_folder):
    ops = IP.official_augmentation(224).transforms
    crop, jitter, gray, blur, flip = ops[:5]
    assert crop.size == (224, 224) and crop.scale == (0.2, 1.0)
    assert jitter.p == 0.8 and jitter.transforms[0].brightness == (0.6, 1.4)
    assert jitter.transforms[0].hue == (-0.1, 0.1) and gray.p == 0.2
    assert blur.p == 0.5 and blur.transforms[0].sigma == (0.1, 2.0) and isinstance(flip, T.RandomHorizontalFlip)
    files = IP.find_jpegs(jpeg_folder, 3)
    pair = IP.official_pair(IP.official_augmentation(16))(files[0])
    assert pair.shape == (2, 3, 16, 16) and not torch.equal(pair[0], pair[1])


def test_the_benchmark_runs_every_stage_at_tiny_size(jpeg_folder, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert IP.main([str(jpeg_folder), "--images", "4", "--rounds", "1", "--size", "16", "--batch", "3",
                    "--upscale", "50x40", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["data"]["images"] == 4 and doc["data"]["median_size_wh"] == [50, 40]
    assert doc["decode_pixels"]["max_abs_diff"] == 0  # torchvision decodes PIL's pixels
    stages = doc["stages"]
    assert list(stages) == ["official", "cpu_aug", "gpu_aug_pil", "gpu_aug_torchvision", "gpu_decode"]
    for row in stages.values():
        per_pair = row["cpu_ms_per_pair"] / 1000
        assert per_pair > 0 and row["cores_per_gpu_at_3000"] == pytest.approx(3000 * per_pair)
        assert row["cores_per_gpu_at_4500"] == pytest.approx(4500 * per_pair)
        assert row["official_cost_ratio"] == pytest.approx(stages["official"]["cpu_ms_per_pair"] / 1000 / per_pair)
    printed = capsys.readouterr().out
    assert "upscaled to 50x40" in printed and "gpu_decode" in printed
    with pytest.raises(SystemExit):  # results are never overwritten
        IP.main([str(jpeg_folder), "--images", "2", "--out", str(out)])


def test_a_folder_without_jpegs_is_a_clear_error(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(SystemExit, match=r"no JPEG files \(\*\.jpg, \*\.jpeg\) under"):
        IP.find_jpegs(tmp_path, 4)
