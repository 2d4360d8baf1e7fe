"""ViTDet's recipe in yacs: the model equals the one Detectron2's own LazyConfig builds (same tensors, same
shapes), the optimizer's per-parameter lr factor equals Detectron2's get_vit_lr_decay_rate, the LSJ
augmentations are Detectron2's with ViTDet's parameters, layer-scale fine-tunes, patch 14 feeds the pyramid
at stride 16, and a few CPU iterations of the ViTDet trainer write one record."""
from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from mocobench.detection.benchmarks import BENCHMARKS, resolve_benchmark
from mocobench.detection.config import build_config
from mocobench.detection.vit import CONFIG_DIR as VIT_CONFIG_DIR
from mocobench.detection.vit import add_vit_config
from mocobench.detection.vit.config import global_blocks, window_blocks
from mocobench.detection.vit.lsj import lsj_augmentations
from mocobench.detection.vit.optimizer import build_vit_optimizer, vit_lr_factor

BENCH = BENCHMARKS["coco-mask-vitdet-100ep"]
TINY_VIT = {"EMBED_DIM": 64, "DEPTH": 3, "NUM_HEADS": 4, "PATCH_SIZE": 16, "PRETRAIN_IMG_SIZE": 64}


def _cfg(vit=None, synthetic=False, **kw):
    cfg = build_config(BENCH, weights=None, synthetic=synthetic, vit=vit, **kw)
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def test_protocol_is_vitdets_coco_recipe():
    cfg = _cfg()
    assert resolve_benchmark("coco-vitdet") is BENCH and BENCH.reference_gpus == 64
    s, v = cfg.SOLVER, cfg.MODEL.VIT
    assert (s.IMS_PER_BATCH, s.MAX_ITER, tuple(s.STEPS)) == (64, 184375, (163889, 177546))
    assert (s.OPTIMIZER, s.BASE_LR, s.WEIGHT_DECAY, s.WEIGHT_DECAY_NORM, tuple(s.BETAS)) == (
        "AdamW", 1e-4, 0.1, 0.0, (0.9, 0.999))
    assert (s.WARMUP_ITERS, s.WARMUP_FACTOR, s.AMP.ENABLED) == (250, 0.001, True)
    assert (v.WINDOW_SIZE, v.USE_REL_POS, v.DROP_PATH_RATE, v.LR_DECAY_RATE, v.SQUARE_PAD) == (14, True, 0.1, 0.7, 1024)
    assert cfg.INPUT.LSJ.ENABLED and (cfg.INPUT.LSJ.IMAGE_SIZE, cfg.INPUT.LSJ.MIN_SCALE, cfg.INPUT.LSJ.MAX_SCALE) == (
        1024, 0.1, 2.0)
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (1024, 1024)
    assert window_blocks(cfg) == [0, 1, 3, 4, 6, 7, 9, 10]  # global 2, 5, 8, 11 (ViT-B)


def test_global_blocks_follow_vitdet_for_each_depth():
    assert global_blocks(12) == [2, 5, 8, 11]
    assert global_blocks(24) == [5, 11, 17, 23]      # ViTDet's ViT-L config
    assert global_blocks(32) == [7, 15, 23, 31]      # ViTDet's ViT-H config
    assert global_blocks(2) == [0, 1]


def test_weights_set_the_vit_and_large_gets_its_recipe():
    cfg = _cfg(vit={**TINY_VIT, "EMBED_DIM": 1024, "DEPTH": 24, "NUM_HEADS": 16})
    assert (cfg.MODEL.VIT.LR_DECAY_RATE, cfg.MODEL.VIT.DROP_PATH_RATE) == (0.8, 0.4)
    assert window_blocks(cfg) == [i for i in range(24) if i not in (5, 11, 17, 23)]


def test_resnet_weights_and_norm_refused_for_vitdet():
    from mocobench.common.config import ConfigError

    with pytest.raises(ConfigError, match="ResNet-50 but"):
        build_config(BENCH, weights="r50.pkl", depth=50)
    with pytest.raises(ConfigError, match="Vision Transformer but"):
        build_config(BENCHMARKS["coco-mask-fpn-1x"], weights="vit.pkl", vit=TINY_VIT)
    with pytest.raises(ConfigError, match="--norm"):
        build_config(BENCH, weights=None, norm="SyncBN")


def _lazy_model(cfg):
    """Detectron2's own ViTDet Mask R-CNN (model_zoo common/models/mask_rcnn_vitdet.py) at the same size."""
    from detectron2 import model_zoo
    from detectron2.config import instantiate

    model = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
    net, v = model.backbone.net, cfg.MODEL.VIT
    net.embed_dim, net.depth, net.num_heads, net.patch_size = v.EMBED_DIM, v.DEPTH, v.NUM_HEADS, v.PATCH_SIZE
    net.img_size, net.window_size, net.window_block_indexes = v.IMG_SIZE, v.WINDOW_SIZE, window_blocks(cfg)
    net.pretrain_use_cls_token, net.pretrain_img_size = False, v.PRETRAIN_IMG_SIZE
    model.backbone.square_pad = v.SQUARE_PAD
    model.roi_heads.num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    return instantiate(model)


def test_yacs_model_equals_detectron2_lazyconfig_model():
    """Every tensor name and shape (ViT, pyramid with LN, RPN with 2 convs, 4conv1fc box head with LN, mask
    head with LN) of the yacs-built ViTDet is that of Detectron2's LazyConfig ViTDet."""
    from detectron2.modeling import build_model

    cfg = _cfg(vit=TINY_VIT)
    cfg.MODEL.VIT.IMG_SIZE, cfg.MODEL.VIT.SQUARE_PAD = 256, 256
    ours = {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in _lazy_model(cfg).state_dict().items()}
    assert ours == theirs


def test_layer_decay_equals_detectron2_and_groups():
    from detectron2.modeling import build_model
    from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate

    cfg = _cfg(vit={**TINY_VIT, "LAYER_SCALE": True})
    model = build_model(cfg)
    names = [n for n, p in model.named_parameters()]
    for decay in (0.7, 0.8):
        for n in names:
            assert vit_lr_factor(n, decay=decay, depth=3) == pytest.approx(
                get_vit_lr_decay_rate(n, lr_decay_rate=decay, num_layers=3)), n
    opt = build_vit_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.999)
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    # what ViTDet's LazyConfig optimizer (common/optim.py AdamW + mask_rcnn_vitdet_b_100ep.py) gives each tensor
    from detectron2.solver.build import get_default_optimizer_params

    lazy = get_default_optimizer_params(model, base_lr=1e-4, weight_decay=0.1, weight_decay_norm=0.0,
                                        lr_factor_func=partial(get_vit_lr_decay_rate, num_layers=3, lr_decay_rate=0.7),
                                        overrides={"pos_embed": {"weight_decay": 0.0}})
    expected = {id(p): (g["lr"], g["weight_decay"]) for g in lazy for p in g["params"]}
    for n, p in params.items():
        g = group_of[id(p)]
        assert (g["lr"], g["weight_decay"]) == pytest.approx(expected[id(p)]), n
    assert group_of[id(params["backbone.net.pos_embed"])]["weight_decay"] == 0.0
    assert group_of[id(params["backbone.net.blocks.1.norm1.weight"])]["weight_decay"] == 0.0
    assert group_of[id(params["backbone.net.blocks.0.ls1.gamma"])]["lr"] == pytest.approx(1e-4 * 0.7 ** 3)
    assert params["backbone.net.blocks.0.ls1.gamma"].requires_grad  # layer-scale fine-tunes, never folded
    assert group_of[id(params["backbone.net.blocks.2.attn.qkv.weight"])]["weight_decay"] == 0.1


def test_lsj_is_detectron2s_with_vitdets_parameters():
    """The same transforms as Detectron2's LazyConfig LSJ (new_baselines), with ViTDet's order (flip first)."""
    from detectron2 import model_zoo
    from detectron2.config import instantiate

    cfg = _cfg()
    ours = lsj_augmentations(cfg)
    lazy = model_zoo.get_config("new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py").dataloader.train.mapper.augmentations
    theirs = {type(a).__name__: a for a in (instantiate(x) for x in lazy)}
    assert [type(a).__name__ for a in ours] == ["RandomFlip", "ResizeScale", "FixedSizeCrop"]
    for a in ours:
        b = theirs[type(a).__name__]
        keys = [k for k in vars(b) if not k.startswith("_")]
        assert {k: getattr(a, k) for k in keys} == {k: getattr(b, k) for k in keys}, type(a).__name__


def test_lsj_mapper_crops_to_the_square(synthetic_layout):
    from detectron2.data import DatasetCatalog

    from mocobench.detection.vit.lsj import lsj_mapper

    cfg = _cfg(synthetic=True)
    mapper = lsj_mapper(cfg)
    size = cfg.INPUT.LSJ.IMAGE_SIZE
    d = DatasetCatalog.get("synth_coco_train")[0]
    torch.manual_seed(0)
    for _ in range(3):
        out = mapper(d)
        assert tuple(out["image"].shape[-2:]) == (size, size)
        boxes = out["instances"].gt_boxes.tensor
        assert (boxes >= 0).all() and (boxes <= size).all()


def test_patch14_feeds_the_pyramid_at_stride_16():
    """The stride-14 map is resampled to 1/16 of the input; the pyramid keeps strides 4..64."""
    from detectron2.modeling import build_backbone

    cfg = _cfg(vit={**TINY_VIT, "PATCH_SIZE": 14, "PRETRAIN_IMG_SIZE": 56, "LAYER_SCALE": True})
    cfg.MODEL.VIT.IMG_SIZE, cfg.MODEL.VIT.SQUARE_PAD, cfg.MODEL.VIT.WINDOW_SIZE = 128, 128, 4
    bb = build_backbone(cfg).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        out = bb(x)
        raw = super(type(bb.net), bb.net).forward(x)["last_feat"]  # Detectron2's ViT itself: 128 // 14 = 9
    assert raw.shape[-1] == 9
    assert {k: v.shape[-1] for k, v in out.items()} == {"p2": 32, "p3": 16, "p4": 8, "p5": 4, "p6": 2}
    expected = F.interpolate(raw, size=(8, 8), mode="bilinear", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(bb.net(x)["last_feat"], expected)


@pytest.mark.slow
def test_vitdet_trainer_writes_one_record(synthetic_layout, tmp_path, capsys):
    """A converted DINO ViT (tiny) through `run coco-vitdet`: proof, a few AdamW/LSJ iterations, one record."""
    from mocobench import records
    from mocobench.__main__ import main as cli
    from tests.helpers import vit_layouts as W

    src = W.write_dino_full(tmp_path / "dino.pth", W.tiny_vit(64, 2, 4), arch="vit_small")
    argv = ["run", "coco-vitdet", "--weights", str(src), "--vit-heads", "4", "--data", "synthetic",
            "--synthetic-root", str(synthetic_layout.root.parent), "--synthetic-preset", "tiny", "--num-gpus", "0",
            "--trials", "1", "--results", str(tmp_path / "results"), "--output-dir", str(tmp_path / "out"),
            "--opts", "SOLVER.MAX_ITER", "3", "SOLVER.STEPS", "(1, 2)", "SOLVER.WARMUP_ITERS", "1",
            "SOLVER.IMS_PER_BATCH", "2", "MODEL.RPN.POST_NMS_TOPK_TEST", "20", "TEST.DETECTIONS_PER_IMAGE", "5"]
    assert cli(argv) == 0
    assert "proof OK" in capsys.readouterr().out
    (rec,) = records.load_records(tmp_path / "results")
    assert rec["benchmark"] == "coco-mask-vitdet-100ep-synthetic" and rec["init"]["format"] == "dino"
    assert rec["protocol"]["backbone"]["num_heads"] == 4 and rec["protocol"]["backbone"]["heads_source"]
    assert {"bbox", "segm"} <= set(rec["metrics"])
    assert rec["init"]["kind"] == "other" and rec["protocol"]["backbone"]["layer_scale"] is False
    assert cli(["tables", "--results", str(tmp_path / "results")]) == 0  # the record reaches the tables
    text = (tmp_path / "results" / "tables" / "tables.md").read_text()
    assert BENCH.title in text and "coco-mask-vitdet-100ep-synthetic" in text


@pytest.mark.parametrize("path", sorted(p.name if p.parent.name == "configs" else f"demo/{p.name}"
                                        for p in VIT_CONFIG_DIR.rglob("*.yaml")))
def test_every_vit_config_loads_on_its_own(path):
    """As a Detectron2 tool loads them, after add_vit_config (overlays carry their _BASE_)."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_vit_config(cfg)
    cfg.merge_from_file(str(VIT_CONFIG_DIR / path))
    assert cfg.MODEL.BACKBONE.NAME == "build_vitdet_backbone" and cfg.SOLVER.OPTIMIZER == "AdamW"
    assert path.startswith("Base-") or (cfg.DATASETS.TRAIN and cfg.DATASETS.TEST)
