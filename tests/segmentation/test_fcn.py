"""The paper appendix's FCN: res5 with stride 1 and dilation 2 (output stride 16), two 3x3 convs of 256
channels with norm, ReLU and dilation 6, a 1x1 classifier. Checked against torchvision's ResNet dilated
by hand and against parameter counts computed from the recipe, on small inputs."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import mocobench.segmentation  # noqa: F401  (registers the dilated ResNet and FCNHead)
from mocobench.detection import convert as C
from mocobench.detection.config import build_config
from mocobench.segmentation.benchmarks import BENCHMARKS
from tests.helpers.checkpoints import randomised_resnet

RES5_CHANNELS = {18: 512, 50: 2048}


def _model(depth: int, num_classes: int = 21):
    from detectron2.modeling import build_model

    cfg = build_config(BENCHMARKS["voc-seg-fcn"], weights=None)
    cfg.MODEL.DEVICE, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = "cpu", num_classes
    cfg.MODEL.RESNETS.NORM = "BN"  # one process, no process group (SyncBN behaves as BN here anyway)
    if depth < 50:
        cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = depth, 64
    return build_model(cfg).eval()


def _torchvision_dilated(depth: int, state) -> nn.Module:
    """torchvision's ResNet with layer4 turned into the recipe's conv5 by hand: no stride, every 3x3 conv
    dilated by 2 (padding 2): an independent implementation of the dilated backbone."""
    tv = getattr(torchvision.models, f"resnet{depth}")()
    tv.load_state_dict(state)
    for block in tv.layer4:
        for conv in (block.conv1, block.conv2) if depth < 50 else (block.conv2,):
            if conv.kernel_size == (3, 3):
                conv.stride, conv.dilation, conv.padding = (1, 1), (2, 2), (2, 2)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    return tv.eval()


@pytest.mark.parametrize("depth", [18, 50])
def test_dilated_backbone_matches_torchvision_dilated_by_hand(depth, tmp_path):
    """Converted weights load into the dilated backbone by Detectron2's own checkpointer (every tensor
    placed) and it computes what torchvision's ResNet dilated by hand computes."""
    from detectron2.checkpoint import DetectionCheckpointer

    from mocobench.detection.engine import check_weights_loaded

    state = randomised_resnet(depth)
    model = _model(depth)
    pkl = C.save_detectron2(C.convert(state), tmp_path / "w.pkl")
    DetectionCheckpointer(model).load(str(pkl))
    check_weights_loaded(model, str(pkl))
    tv = _torchvision_dilated(depth, state)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ours = model.backbone(x)["res5"]
        t = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        ref = tv.layer4(tv.layer3(tv.layer2(tv.layer1(t))))
    assert ours.shape == (1, RES5_CHANNELS[depth], 64 // 16, 96 // 16)  # output stride 16
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    # the same parameters as the undilated network: dilation changes no shape
    n_tv = sum(v.numel() for k, v in tv.named_parameters() if not k.startswith("fc."))
    assert sum(v.numel() for v in model.backbone.parameters()) == n_tv
    assert model.backbone.output_shape()["res5"].stride == 16 and model.backbone.size_divisibility == 16


@pytest.mark.parametrize("depth", [18, 50])
def test_fcn_head_is_the_recipe(depth):
    model = _model(depth, num_classes=21)
    head = model.sem_seg_head
    convs = list(head.convs)
    assert len(convs) == 2
    for k, c in enumerate(convs):
        assert (c.in_channels, c.out_channels) == ((RES5_CHANNELS[depth] if k == 0 else 256), 256)
        assert c.kernel_size == (3, 3) and c.dilation == (6, 6) and c.padding == (6, 6) and c.stride == (1, 1)
        assert isinstance(c.norm, nn.modules.batchnorm._BatchNorm) and c.activation is not None and c.bias is None
    p = head.predictor
    assert p.kernel_size == (1, 1) and (p.in_channels, p.out_channels) == (256, 21)
    res5 = model.backbone.res5
    convs3 = [m for m in res5.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs3 and all(m.dilation == (2, 2) and m.stride == (1, 1) for m in convs3)
    assert all(m.stride == (1, 1) for m in res5.modules() if isinstance(m, nn.Conv2d))
    # parameters, counted from the recipe: 3x3 convs without bias + BN (weight, bias) + 1x1 with bias
    c5 = RES5_CHANNELS[depth]
    expected = (c5 * 256 * 9 + 2 * 256) + (256 * 256 * 9 + 2 * 256) + (256 * 21 + 21)
    assert sum(p.numel() for p in head.parameters()) == expected
    # logits come back at the (padded) input size, one map per class; inference at the original size
    with torch.no_grad():
        out = model([{"image": torch.randint(0, 255, (3, 50, 70)).float(), "height": 50, "width": 70}])
    assert out[0]["sem_seg"].shape == (21, 50, 70)


def test_fcn_loss_ignores_void_and_trains():
    """Cross-entropy over the labelled pixels only: the loss equals an independent computation on the
    logits, and pixels set to the ignore value change nothing."""
    from detectron2.utils.events import EventStorage

    model = _model(18, num_classes=3).train()
    torch.manual_seed(0)
    image = torch.randint(0, 255, (3, 48, 64)).float()
    target = torch.randint(0, 3, (48, 64))
    target[:10] = 255
    with EventStorage(0):
        loss = model([{"image": image, "sem_seg": target}])["loss_sem_seg"]
    feats = model.backbone(((image - model.pixel_mean) / model.pixel_std)[None])
    logits = model.sem_seg_head.layers(feats)[0]           # (K, H, W) for the 48x64 input (multiple of 16)
    valid = target != 255
    logp = torch.log_softmax(logits, 0)
    ref = -logp.gather(0, target.clamp(max=2)[None])[0][valid].mean()
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-4)
    loss.backward()
    assert model.backbone.res5[0].conv1.weight.grad.abs().sum() > 0


def test_head_and_backbone_registered_on_import_in_a_fresh_process():
    code = ("import mocobench.segmentation; from detectron2.modeling import BACKBONE_REGISTRY, SEM_SEG_HEADS_REGISTRY; "
            "print(SEM_SEG_HEADS_REGISTRY.get('FCNHead').__name__, "
            "BACKBONE_REGISTRY.get('build_dilated_resnet_backbone').__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "FCNHead build_dilated_resnet_backbone" in out.stdout, out.stderr[-2000:]


def test_random_scale_scales_the_original_image():
    from detectron2.data import transforms as T

    from mocobench.data.augmentation import RandomScale

    np.random.seed(0)
    image = np.zeros((100, 60, 3), np.uint8)
    sizes = [T.apply_augmentations([RandomScale(0.5, 2.0)], image.copy())[0].shape[:2] for _ in range(200)]
    ratios = np.array([h / 100 for h, _ in sizes])
    assert ratios.min() >= 0.5 and ratios.max() <= 2.0 and ratios.min() < 0.6 and ratios.max() > 1.9
    assert all(abs(w / h - 0.6) < 0.03 for h, w in sizes)  # aspect ratio kept
