"""The optimizer choice and the size-scaled blur of the MoCo augmentation."""
from __future__ import annotations

import pytest
import torch
from torchvision import transforms as T

from mocobench.pretrain.config import ConfigError, validate
from mocobench.pretrain.cpu_aug import moco_augmentation
from mocobench.pretrain.optimizer import build_optimizer
from tests.helpers.pretrain import tiny_config


def test_sgd_and_adamw_take_the_config_values():
    net = torch.nn.Linear(3, 2)
    sgd = build_optimizer(net.parameters(), name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
    adamw = build_optimizer(net.parameters(), name="adamw", lr=0.002, momentum=0.8, weight_decay=0.05)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9 and sgd.defaults["lr"] == 0.1
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.999)
    assert adamw.defaults["weight_decay"] == 0.05
    # one AdamW step moves every weight by about lr (the sign of its gradient), unlike SGD
    before = net.weight.detach().clone()
    net(torch.randn(4, 3)).sum().backward()
    adamw.step()
    assert torch.allclose((net.weight.detach() - before).abs(), torch.full_like(before, 0.002), rtol=0.05)


def test_unknown_optimizer_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="optim.optimizer"):
        validate(tiny_config(tmp_path, tmp_path / "out", "optim.optimizer=lamb"))


@pytest.mark.parametrize("size", [32, 64, 224, 256])
def test_v2_blur_sigma_scales_with_image_size(size):
    blur = [op for ra in moco_augmentation("v2", size).transforms if isinstance(ra, T.RandomApply)
            for op in ra.transforms if isinstance(op, T.GaussianBlur)]
    assert len(blur) == 1
    scale = min(1.0, size / 224)
    assert blur[0].sigma == pytest.approx((0.1 * scale, 2.0 * scale))
