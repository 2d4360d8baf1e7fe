"""ViT checkpoints of every layout, written from random tiny timm weights as each project saves them, are
converted, proved against timm's VisionTransformer holding the source tensors, and compared tensor for tensor;
the proof fails for a wrong window, a dropped layer-scale or a wrong head count; bad inputs are refused."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from mocobench.common import safe_pickle
from mocobench.detection.vit.convert import VitConversionError, convert_vit_file
from mocobench.detection.vit.proof import verify_vit
from tests.helpers import vit_layouts as W

DIM, DEPTH, HEADS = 64, 2, 4


def _check_tensors(pkl, model, grid):
    """Every converted tensor equals the source tensor of the same timm name (class position removed), and
    cls_token, norm and heads are absent."""
    saved = safe_pickle.load(pkl)
    assert saved["matching_heuristics"] is False
    state = model.state_dict()
    for key, value in saved["model"].items():
        assert key.startswith("backbone.net.")
        src = state[key[len("backbone.net."):]]
        if key.endswith("pos_embed"):
            src = src[:, 1:] if src.shape[1] == grid * grid + 1 else src
        np.testing.assert_array_equal(value, src.numpy())
    names = {k[len("backbone.net."):] for k in saved["model"]}
    assert not names & {"cls_token", "norm.weight", "norm.bias", "head.weight", "mask_token"}
    expected = {k for k in state if k not in ("cls_token", "norm.weight", "norm.bias", "head.weight", "head.bias")}
    assert names == expected
    return saved


@pytest.mark.parametrize("layout, write, expect_heads, kind", [
    ("dino", lambda p, m: W.write_dino_full(p, m, arch="vit_small"), 6, "other"),
    ("ibot", lambda p, m: W.write_dino_full(p, m, arch="vit_small", ibot=True), 6, "other"),
    ("mae", lambda p, m: W.write_mae(p, m, training=True), 12, "other"),
    ("moco-v3-vit", lambda p, m: W.write_moco_v3(p, m, arch="vit_small"), 12, "moco"),
    ("hub", W.write_flat, None, "other"),
])
def test_layouts_convert_and_prove(tmp_path, layout, write, expect_heads, kind):
    """The head count comes from the file's metadata (DINO 6 for vit_small, MoCo v3 12): with this tiny width
    it cannot divide 64... so the metadata value is checked, then --vit-heads gives the true count."""
    m = W.tiny_vit(DIM, DEPTH, HEADS)
    src = write(tmp_path / "in.pth", m)
    if expect_heads is not None and DIM % expect_heads:
        with pytest.raises(VitConversionError, match=f"{expect_heads} heads"):
            convert_vit_file(src, tmp_path / "out.pkl", list_tensors=False)
    conv, report = convert_vit_file(src, tmp_path / "out.pkl", heads=HEADS, list_tensors=False)
    assert conv.format == layout and conv.kind == kind and report.ok
    assert (conv.spec.embed_dim, conv.spec.depth, conv.spec.patch_size, conv.spec.grid) == (DIM, DEPTH, 16, 4)
    saved = _check_tensors(tmp_path / "out.pkl", m, 4)
    assert saved["source"]["vit"]["NUM_HEADS"] == HEADS and saved["source"]["format"] == layout


def test_dino_metadata_heads_without_override(tmp_path):
    """A DINO ViT-S shaped file (width 384, args.arch vit_small) gets 6 heads from its metadata."""
    m = W.tiny_vit(384, 1, 6, img=32)
    conv, report = convert_vit_file(W.write_dino_full(tmp_path / "d.pth", m, arch="vit_small"), tmp_path / "o.pkl",
                                    list_tensors=False)
    assert conv.spec.num_heads == 6 and "args.arch" in conv.spec.heads_source and report.ok


def test_moco_v3_vit_s_has_12_heads_from_its_arch(tmp_path):
    """MoCo v3's vit_small has 12 heads where DINO's has 6: read from the file's arch."""
    m = W.tiny_vit(384, 1, 12, img=32)
    conv, report = convert_vit_file(W.write_moco_v3(tmp_path / "m.pth", m, arch="vit_small"), tmp_path / "o.pkl",
                                    list_tensors=False)
    assert conv.spec.num_heads == 12 and report.ok


def test_dinov2_layer_scale_patch14_chunks(tmp_path):
    m = W.tiny_vit(DIM, 3, HEADS, patch=14, img=56, layer_scale=True)
    conv, report = convert_vit_file(W.write_dinov2(tmp_path / "v2.pth", m, chunks=2), tmp_path / "o.pkl", heads=HEADS,
                                    list_tensors=False)
    assert conv.format == "dinov2" and conv.spec.layer_scale and conv.spec.patch_size == 14 and report.ok
    assert "mask_token" in conv.dropped
    _check_tensors(tmp_path / "o.pkl", m, 4)


def test_timm_safetensors_with_head_is_supervised(tmp_path):
    m = W.tiny_vit(DIM, DEPTH, HEADS, num_classes=10)
    conv, report = convert_vit_file(W.write_timm_safetensors(tmp_path / "t.safetensors", m), tmp_path / "o.pkl",
                                    heads=HEADS, list_tensors=False)
    assert conv.format == "timm" and conv.kind == "supervised" and report.ok
    assert "head.weight" in conv.dropped


def test_proof_fails_for_wrong_window_layer_scale_and_heads(tmp_path):
    m = W.tiny_vit(DIM, DEPTH, HEADS, layer_scale=True, img=64)
    conv, report = convert_vit_file(W.write_dinov2(tmp_path / "v2.pth", m), tmp_path / "o.pkl", heads=HEADS,
                                    list_tensors=False)
    assert report.ok
    pkl, src, spec = tmp_path / "o.pkl", conv.source_state, conv.spec
    assert not verify_vit(pkl, src, spec, window=2).ok            # 2x2 windows on the 4x4 grid
    assert not verify_vit(pkl, src, spec, NUM_HEADS=2).ok          # a wrong head count
    pkl2 = tmp_path / "nols.pkl"
    saved = safe_pickle.load(pkl)
    saved["model"] = {k: v for k, v in saved["model"].items() if ".ls" not in k}
    pkl2.write_bytes(pickle.dumps(saved))
    assert not verify_vit(pkl2, src, spec, LAYER_SCALE=False).ok  # the gammas dropped (dinov2#65); timm keeps them


@pytest.mark.parametrize("case, match", [
    ("registers", "register tokens"),
    ("swiglu", "SwiGLU"),
    ("conv_stem", "convolutional stem"),
    ("unknown_heads", "no standard head count"),
    ("truncated", "truncated|cannot|not a"),
    ("distilled", "distillation token"),
])
def test_refusals(tmp_path, case, match):
    out = tmp_path / "o.pkl"
    if case == "registers":
        src = W.write_dinov2(tmp_path / "r.pth", W.tiny_vit(DIM, DEPTH, HEADS, patch=14, img=56, layer_scale=True),
                             registers=4)
    elif case == "swiglu":
        src = W.write_dinov2(tmp_path / "g.pth", W.tiny_vit(DIM, DEPTH, HEADS, patch=14, img=56, layer_scale=True),
                             swiglu=True)
    elif case == "conv_stem":
        src = W.write_moco_v3(tmp_path / "c.pth", W.tiny_vit(DIM, DEPTH, HEADS), arch="vit_conv_small")
    elif case == "distilled":  # timm deit.py VisionTransformerDistilled: dist_token, head_dist
        m = W.tiny_vit(DIM, DEPTH, HEADS, num_classes=10)
        src = W.write_flat(tmp_path / "d.pth", m, {"dist_token": torch.randn(1, 1, DIM),
                                                    "head_dist.weight": torch.randn(10, DIM)})
    elif case == "unknown_heads":
        src = W.write_flat(tmp_path / "u.pth", W.tiny_vit(DIM, DEPTH, HEADS))  # width 64: no standard value
    else:
        full = W.write_flat(tmp_path / "full.pth", W.tiny_vit(DIM, DEPTH, HEADS))
        src = tmp_path / "t.pth"
        src.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(VitConversionError, match=match):
        convert_vit_file(src, out, list_tensors=False)
    assert not out.exists()


def test_partial_state_dict_is_refused(tmp_path):
    m = W.tiny_vit(DIM, 3, HEADS)
    state = {k: v for k, v in W.body_state(m).items() if not k.startswith("blocks.1.mlp")}
    torch.save(state, tmp_path / "p.pth")
    with pytest.raises(VitConversionError, match="incomplete"):
        convert_vit_file(tmp_path / "p.pth", tmp_path / "o.pkl", heads=HEADS, list_tensors=False)


def test_the_converter_command_sends_vits_to_the_vit_family(tmp_path, capsys):
    """`python -m mocobench.detection.convert IN OUT --vit-heads N`: detected as a ViT, converted and proved;
    --list-formats names the ViT layouts; --vit-heads on a ResNet and --format on a ViT are refused."""
    import torch

    from mocobench.detection.convert import main
    from tests.helpers.checkpoints import randomised_resnet, wrap

    src = W.write_moco_v3(tmp_path / "m.pth.tar", W.tiny_vit(DIM, DEPTH, HEADS), arch="vit_small")
    assert main([str(src), str(tmp_path / "o.pkl")]) == 2  # MoCo v3 vit_small: 12 heads do not divide 64
    assert "12 heads" in capsys.readouterr().err
    assert main([str(src), str(tmp_path / "o.pkl"), "--vit-heads", str(HEADS)]) == 0
    assert safe_pickle.load(tmp_path / "o.pkl")["source"]["format"] == "moco-v3-vit"
    assert main([str(src), str(tmp_path / "o2.pkl"), "--format", "moco-v3"]) == 2
    r18 = tmp_path / "r.pth.tar"
    torch.save(wrap("moco", randomised_resnet(18)), r18)
    assert main([str(r18), str(tmp_path / "r.pkl"), "--vit-heads", "4"]) == 2
    assert "--vit-heads is for Vision Transformer" in capsys.readouterr().err
    assert main(["--list-formats"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("dinov2", "moco-v3-vit", "mae", "ibot"))


@pytest.mark.parametrize("layer_scale", [False, True])
def test_mmpretrain_vit_converts_and_proves(tmp_path, layer_scale):
    m = W.tiny_vit(DIM, DEPTH, HEADS, layer_scale=layer_scale)
    conv, report = convert_vit_file(W.write_mmpretrain(tmp_path / "mm.pth", m), tmp_path / "o.pkl", heads=HEADS,
                                    list_tensors=False)
    assert conv.format == "mmpretrain-vit" and conv.spec.layer_scale is layer_scale and report.ok
    assert "head.layers.head.weight" in conv.dropped
    _check_tensors(tmp_path / "o.pkl", m, 4)


# Layouts re-read against each project's own source (docs/vit.md, "Checked against the projects' own source").

def test_mae_finetuned_file_has_fc_norm_and_no_final_norm(tmp_path):
    """main_finetune.py's file (models_vit, global_pool): no `norm`, `fc_norm` + `head` instead, args.model
    vit_base_patch16 (12 heads, from the metadata)."""
    m = W.tiny_vit(DIM, DEPTH, HEADS)
    src = W.write_mae(tmp_path / "ft.pth", m, arch="vit_base_patch16", finetuned=True)
    with pytest.raises(VitConversionError, match="12 heads"):  # the metadata's count is read (and 64 % 12 != 0)
        convert_vit_file(src, tmp_path / "o.pkl", list_tensors=False)
    conv, report = convert_vit_file(src, tmp_path / "o.pkl", heads=HEADS, list_tensors=False)
    assert conv.format == "mae" and report.ok
    assert {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"} <= set(conv.dropped)
    _check_tensors(tmp_path / "o.pkl", m, 4)


def test_dinov2_teacher_checkpoint_with_chunked_blocks(tmp_path):
    """train/train.py's {'teacher': {backbone.blocks.<chunk>.<i>.*, dino_head.*, ibot_head.*}}."""
    m = W.tiny_vit(DIM, 4, HEADS, patch=14, img=56, layer_scale=True)
    src = W.write_dinov2(tmp_path / "teacher_checkpoint.pth", m, chunks=2, teacher=True)
    assert "backbone.blocks.1.3.attn.qkv.weight" in torch.load(src)["teacher"]
    conv, report = convert_vit_file(src, tmp_path / "o.pkl", heads=HEADS, list_tensors=False)
    assert conv.format == "dinov2" and conv.spec.layer_scale and conv.spec.depth == 4 and report.ok
    assert "mask_token" in conv.dropped and any(d.startswith("teacher.dino_head.") for d in conv.dropped)
    _check_tensors(tmp_path / "o.pkl", m, 4)


def test_deit3_timm_file_layer_scale_and_patch_only_positions(tmp_path):
    """timm's deit3_* (no_embed_class: positions for the patches only; init_values: ls1/ls2.gamma; a head)."""
    m = W.tiny_vit(DIM, DEPTH, HEADS, layer_scale=True, num_classes=10, no_embed_class=True)
    assert m.pos_embed.shape[1] == 16
    conv, report = convert_vit_file(W.write_timm_safetensors(tmp_path / "d3.safetensors", m), tmp_path / "o.pkl",
                                    heads=HEADS, list_tensors=False)
    assert conv.format == "timm" and conv.kind == "supervised" and conv.spec.layer_scale and report.ok
    assert conv.spec.grid == 4
    _check_tensors(tmp_path / "o.pkl", m, 4)


def test_ibot_vit_large_heads_from_its_arch(tmp_path):
    """iBOT adds vit_large (16 heads) to DINO's archs; its full checkpoint saves ibot_loss."""
    m = W.tiny_vit(DIM, DEPTH, 16)
    conv, report = convert_vit_file(W.write_dino_full(tmp_path / "i.pth", m, arch="vit_large", ibot=True),
                                    tmp_path / "o.pkl", list_tensors=False)
    assert conv.format == "ibot" and conv.spec.num_heads == 16 and "args.arch" in conv.spec.heads_source
    assert report.ok
