"""Every checkpoint layout of detection/formats.py, written as its framework writes it (tests/helpers/
ckpt_layouts.py) from one random torchvision ResNet-18: detected, converted, proven by the forward pass and
equal tensor for tensor to the source backbone, every other tensor listed as dropped; and the refusals
(CIFAR stem, deep stem, ViT, a missing block, raw duplicates that differ, a file that fits two layouts)."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from mocobench.common import safe_pickle
from mocobench.common.logs import cli_logging
from mocobench.detection import convert as C
from mocobench.detection import proof as P
from mocobench.detection.formats import LAYOUTS
from tests.helpers import ckpt_layouts as L
from tests.helpers.checkpoints import randomised_resnet

# where each writer puts model tensors (read back below with plain torch.load, trusted test files only),
# a tensor each layout must list as dropped, and the foreign objects each file carries
CASES = {
    "moco": ([("state_dict",)], "encoder_k.layer1.0.conv1.weight", set()),
    "moco-v3": ([("state_dict",)], "momentum_encoder.conv1.weight", set()),
    "torchvision-legacy": ([()], "fc.weight", set()),
    "timm-safetensors": ([()], "fc.weight", set()),
    "swav": ([()], "prototypes.prototypes1.weight", set()),
    "dino": ([("teacher",), ("student",)], "student/module.backbone.conv1.weight", {"argparse.Namespace"}),
    "barlow-vicreg": ([("model",)], "bn.running_var", set()),
    "vicreg": ([("model",)], "projector.3.weight", set()),
    "densecl-raw": ([("state_dict",)], "encoder_q.0.conv1.weight", set()),
    "pixpro": ([("model",)], "value_transform.weight", {"argparse.Namespace"}),
    "pycontrast": ([("model",), ("model_ema",)], "head_jig.fc1.weight", set()),
    "solo-learn": ([("state_dict",)], "momentum_backbone.layer4.1.bn2.running_var",
                   {"omegaconf.dictconfig.DictConfig"}),
    "mmselfsup": ([("state_dict",)], "encoder_k.module.0.conv1.weight", {"tests.helpers.ckpt_layouts.HistoryBuffer"}),
    "mmselfsup-byol": ([("state_dict",)], "target_net.module.0.conv1.weight",
                       {"tests.helpers.ckpt_layouts.HistoryBuffer"}),
    "mmselfsup-rc": ([("state_dict",)], "encoder_q.0.conv1.weight", {"tests.helpers.ckpt_layouts.HistoryBuffer"}),
    "mmpretrain-published": ([("state_dict",)], "encoder_k.module.0.conv1.weight", set()),
    "mmpretrain-classifier": ([("state_dict",)], "head.fc.weight", set()),
    "densecl-released": ([("state_dict",)], None, set()),  # nothing to drop but the BN counters
    "hub-flat": ([()], None, set()),
    "vissl": ([("classy_state_dict", "base_model", "model", "trunk"),
               ("classy_state_dict", "base_model", "model", "heads")],
              "classy_state_dict/base_model/model/heads/0.clf.0.weight", set()),
    "lightly": ([("state_dict",)], "backbone_momentum.4.0.conv1.weight", set()),
    "lightly-dino": ([("state_dict",)], "student_backbone.4.0.conv1.weight", set()),
    "lightly-models": ([()], "momentum_backbone.4.0.conv1.weight", set()),
}


@pytest.fixture(scope="module")
def r18():
    return randomised_resnet(18, seed=3)


@pytest.fixture(scope="module")
def d2_keys():
    return {k: tuple(v.shape) for k, v in P.build_detectron2_resnet(18).state_dict().items()
            if not k.endswith("num_batches_tracked")}


def _count_tensors(path, containers):
    """How many model tensors the file holds in the given containers (an independent reading of it)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return len(load_file(str(path)))
    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # our own fixture files only
    n = 0
    for where in containers:
        node = ckpt
        for key in where:
            node = node[key]
        n += sum(isinstance(v, (torch.Tensor, np.ndarray)) for v in node.values())
    return n


def test_every_layout_has_a_writer():
    assert {fmt for fmt, _, _ in L.WRITERS.values()} == set(LAYOUTS)


@pytest.mark.parametrize("case", sorted(L.WRITERS))
def test_layout_converts_proves_and_equals_the_source(case, r18, d2_keys, tmp_path, capsys):
    cli_logging()
    fmt, writer, name = L.WRITERS[case]
    src = writer(r18, tmp_path / name)
    conv, report = C.convert_file(src, tmp_path / "out.pkl")
    assert conv.format == fmt and conv.depth == 18
    assert report.ok and max(report.max_rel_diff.values()) < 1e-5
    # the kept tensors are the source backbone's, value for value (fc and BN counters excluded)
    source = {k: v for k, v in r18.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    assert list(conv.torchvision_state) == list(source)
    assert all(torch.equal(conv.torchvision_state[k], v.float()) for k, v in source.items())
    with open(tmp_path / "out.pkl", "rb") as f:
        written = pickle.load(f)
    assert {k: v.shape for k, v in written["model"].items()} == d2_keys
    assert written["source"]["format"] == fmt
    assert np.array_equal(written["model"]["res4.1.conv2.norm.running_var"], r18["layer3.1.bn2.running_var"].numpy())
    # every other model tensor is listed as dropped, and each is one the layout names
    containers, marker, foreign = CASES[case]
    assert len(conv.key_map) + len(conv.dropped) == _count_tensors(src, containers)
    assert (marker is None or marker in conv.dropped) and conv.unknown_dropped == []
    assert foreign <= set(conv.ignored_objects)
    out = capsys.readouterr().out
    assert (marker is None or f"dropped {marker}" in out) and f"format {fmt}, ResNet-18" in out


def test_objects_in_a_checkpoint_never_run(r18, tmp_path):
    """A checkpoint whose extra entry would run a command when unpickled: the backbone converts, the command
    does not run, and the report names what was read as a placeholder."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    src = L.write_swav(r18, tmp_path / "swav.pth.tar")
    sd = torch.load(src, weights_only=True)
    torch.save({"state_dict": sd, "epoch": 800, "amp": Payload()}, src)
    conv, report = C.convert_file(src, tmp_path / "o.pkl")
    assert conv.format == "swav" and report.ok and conv.meta["epoch"] == 800
    assert not marker.exists() and any(name.endswith(".system") for name in conv.ignored_objects)


class Loud:
    """A class whose unpickling leaves a trace (__setstate__ writes a file) if it is ever called."""
    trace = None

    def __init__(self):
        self.x = torch.ones(2)

    def __setstate__(self, state):
        open(state["trace"], "w").write("called")


def test_inert_placeholder_calls_nothing_of_the_class(tmp_path):
    loud = Loud()
    loud.trace = str(tmp_path / "called")
    torch.save({"obj": loud, "w": torch.arange(3)}, tmp_path / "f.pth")
    obj, ignored = safe_pickle.load_inert(tmp_path / "f.pth")
    assert torch.equal(obj["w"], torch.arange(3)) and isinstance(obj["obj"], safe_pickle.Inert)
    assert torch.equal(obj["obj"].state["x"], torch.ones(2)) and not (tmp_path / "called").exists()
    assert ignored == [f"{__name__}.Loud"]


def _refused(obj_or_path, tmp_path, match, fmt="auto"):
    src = obj_or_path
    if not isinstance(obj_or_path, os.PathLike):
        src = tmp_path / "in.pth"
        torch.save(obj_or_path, src)
    with pytest.raises(C.ConversionError, match=match):
        C.convert_file(src, tmp_path / "o.pkl", fmt=fmt)
    assert not (tmp_path / "o.pkl").exists()


def test_refuses_cifar_stem(r18, tmp_path):
    _refused(L.write_solo_learn(r18, tmp_path / "cifar.ckpt", cifar=True), tmp_path, r"small-image stem.*CIFAR")


def _timm_resnet18d(r18):
    """timm resnet18d's names (timm/models/resnet.py): conv1 = Sequential(conv 0, bn 1, act, conv 3, bn 4, act,
    conv 6) with stem_width 32, then bn1; avg_down shortcuts downsample = (AvgPool2d, conv 1, bn 2)."""
    def bn(prefix, n):
        return {f"{prefix}weight": torch.ones(n), f"{prefix}bias": torch.zeros(n), f"{prefix}running_mean":
                torch.zeros(n), f"{prefix}running_var": torch.ones(n), f"{prefix}num_batches_tracked": torch.tensor(0)}
    state = {k: v for k, v in r18.items() if k != "conv1.weight" and ".downsample." not in k}
    state |= {"conv1.0.weight": torch.randn(32, 3, 3, 3), "conv1.3.weight": torch.randn(32, 32, 3, 3),
              "conv1.6.weight": torch.randn(64, 32, 3, 3)} | bn("conv1.1.", 32) | bn("conv1.4.", 32)
    for layer, ch in ((2, 128), (3, 256), (4, 512)):
        state[f"layer{layer}.0.downsample.1.weight"] = torch.randn(ch, ch // 2, 1, 1)
        state |= bn(f"layer{layer}.0.downsample.2.", ch)
    return state


def test_refuses_deep_stem(r18, tmp_path):
    """timm resnet18d: three 3x3 convs (conv1.0, conv1.3, conv1.6) with BNs instead of one 7x7."""
    _refused(_timm_resnet18d(r18), tmp_path, r"deep stem.*conv1\.0\.weight.*resnet50d")


def test_refuses_a_resnet_d_shortcut(r18, tmp_path):
    """The avg-down shortcut alone (7x7 stem kept): downsample.1 is a stride-1 conv after a pool, so mapping it
    onto Detectron2's strided shortcut would compute something else."""
    state = {k: v for k, v in _timm_resnet18d(r18).items() if not k.startswith("conv1.")}
    state["conv1.weight"] = r18["conv1.weight"]
    _refused(state, tmp_path, r"ResNet-D shortcut.*layer2\.0\.downsample\.2\.")


def test_refuses_a_partial_vit(tmp_path):
    """DINO's own ViT checkpoint (cls_token / patch_embed, no conv1) goes to the ViT family (detection/vit), which
    refuses a block without its norms and MLP (tests/detection/test_vit_convert.py converts complete ones)."""
    vit = {"cls_token": torch.zeros(1, 1, 8), "pos_embed": torch.zeros(1, 5, 8),
           "patch_embed.proj.weight": torch.zeros(8, 3, 16, 16), "blocks.0.attn.qkv.weight": torch.zeros(24, 8)}
    _refused({"teacher": {f"backbone.{k}": v for k, v in vit.items()}, "student": {}, "epoch": 1}, tmp_path,
             "incomplete")


def test_refuses_a_backbone_missing_one_block(r18, tmp_path):
    src = L.write_swav({k: v for k, v in r18.items() if not k.startswith("layer3.1.")}, tmp_path / "s.pth.tar")
    _refused(src, tmp_path, r"incomplete ResNet.*ResNet-18.*found \[2, 2, 1, 2\]")


def test_refuses_raw_densecl_copies_that_differ(r18, tmp_path):
    src = L.write_densecl_raw(r18, tmp_path / "epoch_200.pth")
    ckpt = torch.load(src, weights_only=True)
    ckpt["state_dict"]["encoder_q.0.layer2.0.conv1.weight"] += 1e-3
    _refused(ckpt, tmp_path, r"two copies.*1 tensors differ.*layer2\.0\.conv1\.weight")


def test_refuses_mmselfsup_encoder_q_copy_that_differs(r18, tmp_path):
    """Early mmselfsup 1.x files hold the backbone twice (encoder_q.0.* and backbone.*): checked like DenseCL's."""
    src = L.write_mmselfsup(r18, tmp_path / "epoch_100.pth", variant="moco-rc")
    ckpt = torch.load(src, weights_only=False)  # our own fixture file
    ckpt["state_dict"]["encoder_q.0.layer4.1.bn2.running_var"] += 1e-3
    torch.save(ckpt, src)
    _refused(src, tmp_path, r"mmselfsup file: the backbone's two copies.*1 tensors differ.*layer4\.1\.bn2")


def test_a_file_that_fits_two_layouts_is_an_error_naming_both(r18, tmp_path):
    """A Lightning file with backbone.* and prototypes.* only: a SwAV of solo-learn's or of lightly's."""
    sd = {f"backbone.{k}": v for k, v in r18.items() if not k.startswith("fc.")}
    sd["prototypes.weight"] = torch.zeros(6, 4)
    src = tmp_path / "swav.ckpt"
    torch.save(L._lightning(sd, {}), src)
    _refused(src, tmp_path, r"fits 2 layouts, 'solo-learn' and 'lightly'.*--format")
    conv, report = C.convert_file(src, tmp_path / "o.pkl", fmt="lightly")
    assert conv.format == "lightly" and report.ok
    assert [k for k in conv.dropped if not k.endswith("num_batches_tracked")] == ["prototypes.weight"]


def test_refuses_leftovers_that_look_like_a_backbone(r18, tmp_path):
    """A momentum copy the layout does not know: dropping it silently could keep the wrong one."""
    src = L.write_swav(r18, tmp_path / "s.pth.tar")
    sd = torch.load(src, weights_only=True)
    sd |= {f"module.ema.{k}": v for k, v in r18.items() if k.startswith("layer1.0.")}
    torch.save(sd, src)
    _refused(src, tmp_path, r"look like ResNet weights too.*ema\.layer1\.0\.conv1\.weight")


def test_forced_format_that_does_not_fit(r18, tmp_path):
    src = L.write_swav(r18, tmp_path / "s.pth.tar")
    _refused(src, tmp_path, r"format 'dino' expects a ResNet backbone under 'backbone\.'", fmt="dino")


def test_list_formats_names_every_layout_and_source(capsys):
    assert C.main(["--list-formats"]) == 0
    out = capsys.readouterr().out
    for lay in LAYOUTS.values():
        assert f"\n{lay.name}\n  source:   {lay.source}" in "\n" + out
    assert "projection_head., prototypes." in out and "encoder_q.0." in out


def test_docs_table_has_every_layout_with_one_command():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "checkpoint-formats.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in doc.splitlines() if line.startswith("| `")}
    assert set(rows) == set(LAYOUTS)
    assert all(line.count("`python -m mocobench.detection.convert ") == 1 for line in rows.values())
