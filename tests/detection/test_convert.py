"""mocobench.detection.convert: every input format, the forward-pass proof, and every strict failure."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torchvision

from mocobench.detection import convert as C
from mocobench.detection import proof as P
from tests.helpers.checkpoints import randomised_resnet, wrap


@pytest.fixture(scope="module", params=[18, 50])
def resnet(request):
    return request.param, randomised_resnet(request.param)


FORMAT_CASES = [("moco", "moco"), ("moco-v3", "moco-v3"), ("torchvision", "torchvision"),
                ("ddp-supervised", "torchvision"), ("dataparallel-in-ddp", "torchvision")]


@pytest.mark.parametrize("layout,expected_format", FORMAT_CASES)
def test_every_format_converts_to_exactly_the_backbone(resnet, layout, expected_format, tmp_path):
    depth, state = resnet
    src = tmp_path / "in.pth.tar"
    torch.save(wrap(layout, state), src)
    out = tmp_path / "out.pkl"
    conv, report = C.convert_file(src, out, check=(layout == "moco"))
    assert conv.format == expected_format and conv.depth == depth
    with open(out, "rb") as f:
        payload = pickle.load(f)
    assert payload["matching_heuristics"] is True and payload["__author__"]
    model = payload["model"]
    # exactly the tensors of Detectron2's ResNet of that depth (independent source of truth), same shapes
    d2_state = {k: tuple(v.shape) for k, v in P.build_detectron2_resnet(depth).state_dict().items()
                if not k.endswith("num_batches_tracked")}
    assert {k: v.shape for k, v in model.items()} == d2_state
    assert not any(".fc." in k or k.startswith("fc") for k in model)
    assert sum(k.endswith("running_var") for k in model) == sum(k.endswith("running_var") for k in state)
    # values are the source tensors, moved by name only
    assert np.array_equal(model["stem.conv1.norm.running_var"], state["bn1.running_var"].numpy())
    assert np.array_equal(model["res3.0.shortcut.norm.running_mean"],
                          state["layer2.0.downsample.1.running_mean"].numpy())
    assert np.array_equal(model["res5.1.conv2.norm.weight"], state["layer4.1.bn2.weight"].numpy())
    if report is not None:
        assert report.ok and set(report.max_rel_diff) == {"res2", "res3", "res4", "res5"}


def test_proof_matches_torchvision_outputs(resnet, tmp_path):
    """The proof's numbers: Detectron2's backbone from the pickle vs torchvision on the same image."""
    depth, state = resnet
    src = tmp_path / "tv.pth"
    torch.save(state, src)
    conv, report = C.convert_file(src, tmp_path / "tv.pkl")
    assert report.ok
    assert max(report.max_rel_diff.values()) < 1e-5  # float32 round-off, not a near miss
    stride = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
    width = {"res2": 64, "res3": 128, "res4": 256, "res5": 512}
    mult = 1 if depth < 50 else 4
    for stage, shape in report.shapes.items():
        assert shape == (1, width[stage] * mult, 160 // stride[stage], 224 // stride[stage])


def test_proof_catches_a_wrong_key_map(tmp_path):
    """Swap two BN layers in the written pickle: the forward-pass proof must fail on it."""
    state = randomised_resnet(18)
    conv = C.convert(state)
    d2 = conv.detectron2_state
    a, b = "res3.1.conv1.norm.running_var", "res3.1.conv2.norm.running_var"
    d2[a], d2[b] = d2[b], d2[a]
    path = C.save_detectron2(conv, tmp_path / "bad.pkl")
    report = P.verify(path, conv.torchvision_state, 18)
    assert not report.ok and report.largest()[1] > 1e-2


def test_convert_cli_prints_key_map_and_difference(tmp_path, capsys):
    src = tmp_path / "r18.pth"
    torch.save(wrap("moco", randomised_resnet(18)), src)
    assert C.main([str(src), str(tmp_path / "r18.pkl")]) == 0
    out = capsys.readouterr().out
    assert "encoder_q.layer1.0.bn2.running_var" in out and "-> res2.0.conv2.norm.running_var" in out
    assert "largest relative difference" in out and "format moco, ResNet-18" in out
    assert C.main(["--list-formats"]) == 0 and "moco-v3" in capsys.readouterr().out


def _fail(obj, tmp_path, match, *, name="x.pth"):
    src = tmp_path / name
    if obj is not None:
        torch.save(obj, src)
    with pytest.raises(C.ConversionError, match=match):
        C.convert_file(src, tmp_path / "o.pkl")
    assert not (tmp_path / "o.pkl").exists()


def test_refuses_missing_tensors(tmp_path):
    state = randomised_resnet(18)
    del state["layer3.1.bn2.running_mean"]
    _fail(state, tmp_path, r"missing.*layer3\.1\.bn2\.running_mean")


def test_refuses_truncated_resnet(tmp_path):
    state = {k: v for k, v in randomised_resnet(50).items() if not k.startswith("layer4.")}
    _fail(state, tmp_path, r"incomplete ResNet.*ResNet-50")


def test_refuses_non_resnet(tmp_path):
    _fail(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path, r"not a ResNet|unknown checkpoint format")


def test_refuses_unknown_extra_tensors(tmp_path):
    state = randomised_resnet(18)
    state["layer2.0.se.fc1.weight"] = torch.zeros(4, 4)
    _fail(state, tmp_path, r"unexpected tensors.*layer2\.0\.se\.fc1\.weight")


def test_refuses_wrong_shapes(tmp_path):
    state = randomised_resnet(18)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    _fail(state, tmp_path, r"wrong shapes.*layer1\.0\.conv1\.weight")


def test_refuses_small_stem(tmp_path):
    state = randomised_resnet(18)
    ck = wrap("moco", state)
    ck["config"]["stem"] = "small"
    _fail(ck, tmp_path, r"stem 'small'")
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    _fail(state, tmp_path, r"small-image stem", name="y.pth")


def test_refuses_truncated_file_and_nonfinite(tmp_path):
    src = tmp_path / "full.pth"
    torch.save(randomised_resnet(18), src)
    (tmp_path / "cut.pth").write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    _fail(None, tmp_path, r"truncated", name="cut.pth")
    state = randomised_resnet(18)
    state["layer4.0.bn1.weight"][3] = float("nan")
    _fail(state, tmp_path, r"non-finite.*layer4\.0\.bn1\.weight")


def test_never_overwrites_output(tmp_path):
    src = tmp_path / "a.pth"
    torch.save(randomised_resnet(18), src)
    out = tmp_path / "a.pkl"
    out.write_bytes(b"precious")
    with pytest.raises(C.ConversionError, match="already exists"):
        C.convert_file(src, out)
    assert out.read_bytes() == b"precious"
    assert C.main([str(src), str(out)]) == 2 and out.read_bytes() == b"precious"
