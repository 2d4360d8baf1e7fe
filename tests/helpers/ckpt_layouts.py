"""One writer per checkpoint layout of detection/formats.py: the same torchvision ResNet backbone saved the way
each framework's own checkpoint-writing code saves it -- its wrapper keys, DDP prefixes, duplicated tensors,
extra heads, momentum copies and Lightning / mmengine / argparse metadata (read from each project's source;
none of their code is used). Shapes of heads are kept tiny: only their names and nesting matter here."""
from __future__ import annotations

import argparse
import functools
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import torch

Writer = Callable[[dict[str, torch.Tensor], Path], Path]


class HistoryBuffer:
    """Stands for mmengine's HistoryBuffer in a message hub: a class the converter must not import or build."""

    def __init__(self, values):
        self.values = list(values)


def _backbone(state: dict[str, torch.Tensor], *, fc: bool = False) -> dict[str, torch.Tensor]:
    """The backbone as a framework holds it: most replace fc by nn.Identity (no fc keys)."""
    return {k: v.clone() for k, v in state.items() if fc or not k.startswith("fc.")}


def _pre(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


def _perturbed(sd: dict[str, torch.Tensor], scale: float = 0.01) -> dict[str, torch.Tensor]:
    """A momentum / EMA copy: the same names, different values."""
    g = torch.Generator().manual_seed(7)
    return {k: (v + scale * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v.clone()
            for k, v in sd.items()}


def _linear(prefix: str, i: int, o: int, bias: bool = True) -> dict[str, torch.Tensor]:
    out = {f"{prefix}weight": torch.randn(o, i)}
    if bias:
        out[f"{prefix}bias"] = torch.zeros(o)
    return out


def _bn1d(prefix: str, n: int, affine: bool = True) -> dict[str, torch.Tensor]:
    out = {f"{prefix}running_mean": torch.zeros(n), f"{prefix}running_var": torch.ones(n),
           f"{prefix}num_batches_tracked": torch.tensor(5)}
    if affine:
        out = {f"{prefix}weight": torch.ones(n), f"{prefix}bias": torch.zeros(n)} | out
    return out


def _feat(state) -> int:
    """The backbone's output width (512 for ResNet-18, 2048 for ResNet-50): what heads take in."""
    return max(v.shape[0] for k, v in state.items() if k.startswith("layer4.") and k.endswith("running_mean"))


def _optimizer() -> dict:
    return {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}


# ------------------------------------------------------------------------------------------ writers
def write_moco(state, path: Path) -> Path:
    """Official MoCo v1/v2 main_moco.py: {epoch, arch, state_dict (DDP), optimizer}; fc is the MLP head."""
    bb = _backbone(state)
    sd = _pre("module.encoder_q.", bb) | _linear("module.encoder_q.fc.0.", _feat(state), 8) \
        | _linear("module.encoder_q.fc.2.", 8, 4)
    sd |= _pre("module.encoder_k.", _perturbed(bb)) | _linear("module.encoder_k.fc.0.", _feat(state), 8) \
        | _linear("module.encoder_k.fc.2.", 8, 4)
    sd |= {"module.queue": torch.randn(4, 16), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": sd, "optimizer": _optimizer()}, path)
    return path


def write_moco_v3(state, path: Path) -> Path:
    """MoCo v3 main_moco.py (ResNet): base_encoder with an MLP fc, momentum_encoder, predictor."""
    bb = _backbone(state)
    head = _linear("fc.0.", _feat(state), 8, bias=False) | _bn1d("fc.1.", 8) | _linear("fc.3.", 8, 4, bias=False)
    sd = _pre("module.base_encoder.", bb | head) | _pre("module.momentum_encoder.", _perturbed(bb) | head)
    sd |= _linear("module.predictor.0.", 4, 8, bias=False) | _bn1d("module.predictor.1.", 8)
    torch.save({"epoch": 100, "arch": "resnet50", "state_dict": sd, "optimizer": _optimizer(),
                "scaler": {"scale": 65536.0, "_growth_tracker": 0}}, path)
    return path


def write_torchvision_legacy(state, path: Path) -> Path:
    """An old torchvision / model-zoo file: flat, with fc, without BN num_batches_tracked, pre-1.6 format."""
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path,
               _use_new_zipfile_serialization=False)
    return path


def write_timm_safetensors(state, path: Path) -> Path:
    """timm resnet50 from a model hub: flat torchvision names with fc, as .safetensors."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items() if not k.endswith("num_batches_tracked")}, str(path),
              metadata={"format": "pt"})
    return path


def write_swav(state, path: Path) -> Path:
    """SwAV / DeepCluster-v2 / SeLa-v2 released .pth.tar: the DDP model's flat state_dict (module.), the
    ResNet without fc (its padding module has no parameters), projection_head MLP and prototypes
    (DeepCluster-v2's MultiPrototypes: prototypes.prototypes0, ...)."""
    sd = _pre("module.", _backbone(state))
    sd |= _linear("module.projection_head.0.", _feat(state), 8) | _bn1d("module.projection_head.1.", 8) \
        | _linear("module.projection_head.3.", 8, 4)
    sd |= _linear("module.prototypes.prototypes0.", 4, 6, bias=False) \
        | _linear("module.prototypes.prototypes1.", 4, 6, bias=False)
    torch.save(sd, path)
    return path


def write_dino(state, path: Path, *, student=None) -> Path:
    """DINO main_dino.py save_dict for a ResNet: student and teacher are MultiCropWrapper(backbone with fc and
    head as Identity, DINOHead), both DDP-wrapped (BN present); args is an argparse.Namespace."""
    head = _linear("head.mlp.0.", _feat(state), 8) | _linear("head.mlp.2.", 8, 4) \
        | {"head.last_layer.weight_g": torch.ones(6, 1), "head.last_layer.weight_v": torch.randn(6, 4)}
    teacher = _pre("module.", _pre("backbone.", _backbone(state)) | head)
    student = _pre("module.", _pre("backbone.", _perturbed(_backbone(state))) | head) if student is None else student
    torch.save({"student": student, "teacher": teacher, "optimizer": _optimizer(), "epoch": 800,
                "args": argparse.Namespace(arch="resnet50", out_dim=60000, momentum_teacher=0.996, use_bn_in_head=True),
                "dino_loss": {"center": torch.zeros(1, 6)},
                "fp16_scaler": {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                "growth_interval": 2000, "_growth_tracker": 10}}, path)
    return path


def write_barlow_vicreg(state, path: Path) -> Path:
    """Barlow Twins main.py checkpoint.pth: {epoch, model (DDP: backbone with fc = Identity, projector, bn
    affine-free BatchNorm1d), optimizer}. VICReg's is the same without bn."""
    sd = _pre("module.backbone.", _backbone(state))
    sd |= _linear("module.projector.0.", _feat(state), 8, bias=False) | _bn1d("module.projector.1.", 8) \
        | _linear("module.projector.3.", 8, 4, bias=False) | _bn1d("module.bn.", 4, affine=False)
    torch.save({"epoch": 1000, "model": sd, "optimizer": _optimizer()}, path)
    return path


def write_vicreg(state, path: Path) -> Path:
    """VICReg main_vicreg.py model.pth: {epoch, model (DDP: backbone from its resnet.py -- torchvision names, a
    parameter-free ConstantPad2d -- and projector: Linear with bias, BatchNorm1d, ReLU, last Linear without),
    optimizer}."""
    sd = _pre("module.backbone.", _backbone(state))
    sd |= _linear("module.projector.0.", _feat(state), 8) | _bn1d("module.projector.1.", 8) \
        | _linear("module.projector.3.", 8, 4, bias=False)
    torch.save({"epoch": 1000, "model": sd, "optimizer": _optimizer()}, path)
    return path


def write_densecl_raw(state, path: Path) -> Path:
    """DenseCL (OpenSelfSup) raw training checkpoint, mmcv save_checkpoint: {meta, state_dict, optimizer};
    encoder_q = Sequential(backbone, neck) and self.backbone = encoder_q[0], so the backbone tensors are
    stored twice (encoder_q.0.* first, in registration order, then backbone.*); queues; no DDP prefix."""
    bb = _backbone(state)
    neck = _linear("mlp.0.", _feat(state), 8) | _linear("mlp.2.", 8, 4) \
        | {"mlp2.0.weight": torch.randn(8, _feat(state), 1, 1), "mlp2.0.bias": torch.zeros(8),
           "mlp2.2.weight": torch.randn(4, 8, 1, 1), "mlp2.2.bias": torch.zeros(4)}
    sd = _pre("encoder_q.0.", bb) | _pre("encoder_q.1.", neck) | _pre("encoder_k.0.", _perturbed(bb)) \
        | _pre("encoder_k.1.", neck) | _pre("backbone.", {k: v.clone() for k, v in bb.items()})
    sd |= {"queue": torch.randn(4, 16), "queue_ptr": torch.zeros(1, dtype=torch.long),
           "queue2": torch.randn(4, 16), "queue2_ptr": torch.zeros(1, dtype=torch.long)}
    meta = {"mmcv_version": "0.4.3", "time": "Fri Dec  4 10:00:00 2020", "epoch": 200, "iter": 250200}
    torch.save({"meta": meta, "state_dict": sd, "optimizer": _optimizer()}, path)
    return path


def write_pixpro(state, path: Path) -> Path:
    """PixPro main_pretrain.py save_checkpoint: {opt (argparse.Namespace), model (DDP: encoder, projector,
    encoder_k, projector_k, value_transform, projector_instance(_k), predictor), optimizer, scheduler, epoch}."""
    def mlp2d(prefix, i, o):
        return {f"{prefix}linear1.weight": torch.randn(8, i, 1, 1), f"{prefix}linear1.bias": torch.zeros(8)} \
            | _bn1d(f"{prefix}bn1.", 8) | {f"{prefix}linear2.weight": torch.randn(o, 8, 1, 1),
                                            f"{prefix}linear2.bias": torch.zeros(o)}
    bb, f = _backbone(state), _feat(state)
    sd = _pre("encoder.", bb) | mlp2d("projector.", f, 4) | _pre("encoder_k.", _perturbed(bb)) \
        | mlp2d("projector_k.", f, 4) | {"value_transform.weight": torch.randn(4, 4, 1, 1),
                                          "value_transform.bias": torch.zeros(4)} \
        | mlp2d("projector_instance.", f, 4) | mlp2d("projector_instance_k.", f, 4) | mlp2d("predictor.", 4, 4)
    torch.save({"opt": argparse.Namespace(arch="resnet50", pixpro_p=2.0, epochs=400), "model": _pre("module.", sd),
                "optimizer": _optimizer(), "scheduler": {"last_epoch": 400}, "epoch": 400}, path)
    return path


def write_pycontrast(state, path: Path) -> Path:
    """PyContrast ContrastTrainer.save, PIRL in MoCo mode (RGBMultiHeads, linear heads): {model (DDP: encoder
    with no fc, head = Sequential(Linear, Normalize), head_jig = JigsawHead fc1 / fc2), contrast, optimizer, epoch,
    model_ema (the momentum copy, not DDP-wrapped: no module.)}; no args are saved."""
    bb, f = _backbone(state), _feat(state)
    heads = _linear("head.0.", f, 4) | _linear("head_jig.fc1.", f, 4) | _linear("head_jig.fc2.", 4 * 9, 4)
    torch.save({"model": _pre("module.", _pre("encoder.", bb) | heads),
                "contrast": {"memory": torch.randn(16, 4), "index": torch.zeros((), dtype=torch.long)},
                "optimizer": _optimizer(), "epoch": 800,
                "model_ema": _pre("encoder.", _perturbed(bb)) | heads}, path)
    return path


def _lightning(state_dict: dict[str, torch.Tensor], hyper_parameters) -> dict:
    """What pytorch-lightning's Trainer.save_checkpoint writes around a LightningModule's state_dict."""
    return {"epoch": 399, "global_step": 200000, "pytorch-lightning_version": "2.1.3", "state_dict": state_dict,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 400}}}},
            "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None}},
            "optimizer_states": [_optimizer()], "lr_schedulers": [{"last_epoch": 399}],
            "hparams_name": "cfg", "hyper_parameters": hyper_parameters}


def write_solo_learn(state, path: Path, *, cifar: bool = False) -> Path:
    """solo-learn BYOL (BaseMomentumMethod) Lightning .ckpt: backbone (torchvision, fc = Identity; CIFAR:
    3x3 conv1, max-pool Identity), projector, predictor, momentum_backbone, momentum_projector, online
    classifier; hyper_parameters hold the OmegaConf cfg (a foreign object)."""
    from omegaconf import OmegaConf

    bb, f = _backbone(state), _feat(state)
    if cifar:
        bb["conv1.weight"] = torch.randn(bb["conv1.weight"].shape[0], 3, 3, 3)
    proj = _linear("0.", f, 8) | _bn1d("1.", 8) | _linear("3.", 8, 4)
    sd = _pre("backbone.", bb) | _pre("projector.", proj) | _pre("predictor.", proj | {}) \
        | _linear("classifier.", f, 10) | _pre("momentum_backbone.", _perturbed(bb)) | _pre("momentum_projector.", proj)
    cfg = OmegaConf.create({"method": "byol", "backbone": {"name": "resnet50"},
                            "data": {"dataset": "cifar10" if cifar else "imagenet"}})
    torch.save(_lightning(sd, {"cfg": cfg}), path)
    return path


def write_mmselfsup(state, path: Path, *, variant: str = "moco") -> Path:
    """mmselfsup 1.x / mmpretrain written by mmengine's Runner.save_checkpoint: {meta, state_dict, message_hub,
    optimizer, param_schedulers}; message_hub holds HistoryBuffer objects. variant "moco": mmpretrain MoCo
    (backbone, neck, encoder_k = ExponentialMovingAverage(Sequential(backbone, neck)): encoder_k.module.{0,1}
    and its scalar steps buffer, queue, queue_ptr); "byol": mmpretrain BYOL (target_net = CosineEMA(...):
    target_net.module.{0,1}); "moco-rc": early mmselfsup 1.x MoCo, where encoder_q = Sequential(backbone, neck)
    and backbone / neck are its members, so the backbone is stored twice (encoder_q.0.* and backbone.*)."""
    bb, f = _backbone(state), _feat(state)
    neck = _linear("mlp.0.", f, 8) | _linear("mlp.2.", 8, 4)
    ema = "target_net" if variant == "byol" else "encoder_k"
    sd = {}
    if variant == "moco-rc":
        sd |= _pre("encoder_q.0.", bb) | _pre("encoder_q.1.", neck)
    sd |= _pre("backbone.", {k: v.clone() for k, v in bb.items()}) | _pre("neck.", neck)
    sd |= _pre(f"{ema}.module.0.", _perturbed(bb)) | _pre(f"{ema}.module.1.", neck)
    sd[f"{ema}.steps"] = torch.tensor(1000)
    if variant != "byol":
        sd |= {"queue": torch.randn(4, 16), "queue_ptr": torch.zeros(1, dtype=torch.long)}
    meta = {"epoch": 200, "iter": 250200, "cfg": "model = dict(type='MoCo', backbone=dict(type='ResNet', depth=50))",
            "seed": 0, "experiment_name": "mocov2_resnet50_8xb32-coslr-200e_in1k", "time": "20230101_000000",
            "mmengine_version": "0.7.3", "dataset_meta": {"classes": None}}
    hub = {"log_scalars": {"train/loss": HistoryBuffer([6.1, 5.9])}, "runtime_info": {"epoch": 200},
           "resumed_keys": {"epoch": True}}
    torch.save({"meta": meta, "state_dict": sd, "message_hub": hub, "optimizer": _optimizer(),
                "param_schedulers": [{"T_max": 200}]}, path)
    return path


def write_mmpretrain_published(state, path: Path) -> Path:
    """A model-zoo file of mmpretrain (open-mmlab/mmpretrain tools/model_converters/publish_model.py, 4f5b38f):
    the mmengine checkpoint with optimizer, param_schedulers, hook_msgs and message_hub popped, meta kept with
    mmpretrain_version and dataset_meta set: {meta, state_dict}."""
    write_mmselfsup(state, path)
    ckpt = torch.load(path, weights_only=False)  # our own fixture file
    for key in ("optimizer", "param_schedulers", "hook_msgs", "message_hub"):
        ckpt.pop(key, None)
    ckpt["meta"] |= {"mmpretrain_version": "1.2.0"}
    torch.save(ckpt, path)
    return path


def write_mmpretrain_classifier(state, path: Path, classes: int = 10) -> Path:
    """A published mmpretrain ImageClassifier (ResNet, GlobalAveragePooling neck, LinearClsHead): backbone.*
    and head.fc.{weight,bias} in {meta, state_dict} (supervised: its classifier is stored with it)."""
    sd = _pre("backbone.", _backbone(state)) | _linear("head.fc.", _feat(state), classes)
    meta = {"epoch": 100, "mmengine_version": "0.7.3", "mmpretrain_version": "1.0.0rc8", "dataset_meta": {}}
    torch.save({"meta": meta, "state_dict": sd}, path)
    return path


def write_densecl_released(state, path: Path) -> Path:
    """A released DenseCL file (the README's download links): {state_dict (torchvision names, no fc), author}."""
    torch.save({"state_dict": _backbone(state), "author": "DenseCL"}, path)
    return path


def write_hub_flat(state, path: Path, *, fc: bool = False) -> Path:
    """A hub file: a flat torchvision state_dict. Without fc: DINO's dino_resnet50_pretrain.pth, Barlow Twins'
    and VICReg's resnet50.pth (fc = nn.Identity). With fc: torchvision's / timm's supervised classifiers."""
    torch.save(_backbone(state, fc=fc), path)
    return path


# ------------------------------------------------------------------------- Detectron2 pickles (.pkl)
def _tv_to_caffe2(key: str) -> str:
    """torchvision ResNet name -> MSRA Caffe2 blob name (Detectron's R-50.pkl names), written out here."""
    import re

    if key.startswith("conv1."):
        return "conv1_w"
    if key.startswith("bn1."):
        return "res_conv1_bn"
    m = re.match(r"layer(\d)\.(\d+)\.(conv|bn)(\d)\.", key)
    if m:
        branch = f"res{int(m.group(1)) + 1}_{m.group(2)}_branch2{'abc'[int(m.group(4)) - 1]}"
        return branch + ("_w" if m.group(3) == "conv" else "_bn")
    m = re.match(r"layer(\d)\.(\d+)\.downsample\.([01])\.", key)
    assert m, key
    return f"res{int(m.group(1)) + 1}_{m.group(2)}_branch1" + ("_w" if m.group(3) == "0" else "_bn")


def caffe2_blobs(state: dict[str, torch.Tensor], eps: float = 1e-5) -> dict[str, np.ndarray]:
    """The MSRA Caffe2 blobs of a torchvision ResNet: convs as _w; each BN folded into an affine scale _bn_s and
    bias _bn_b (s = gamma / sqrt(var + eps), b = beta - mean * s), no running statistics; fc as fc1000_w/_b."""
    blobs: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if key.startswith("fc."):
            blobs["fc1000_" + key[3]] = value.numpy().copy()
        elif key.endswith("conv1.weight") or key.endswith("conv2.weight") or key.endswith("conv3.weight") \
                or key.endswith("downsample.0.weight"):
            blobs[_tv_to_caffe2(key)] = value.numpy().copy()
        elif key.endswith(".weight") and not key.startswith("fc."):  # a BN: fold it
            p = key[:-len("weight")]
            s = state[p + "weight"] / torch.sqrt(state[p + "running_var"] + eps)
            blobs[_tv_to_caffe2(key) + "_s"] = s.numpy().astype(np.float32)
            blobs[_tv_to_caffe2(key) + "_b"] = (state[p + "bias"] - state[p + "running_mean"] * s).numpy()
    return blobs


def write_msra_pkl(state, path: Path) -> Path:
    """Detectron2's ImageNetPretrained/MSRA/R-50.pkl layout: {"blobs": {conv1_w, res_conv1_bn_s, ...,
    fc1000_w, fc1000_b}}, a protocol-2 pickle with no __author__ (read by Detectron2's checkpointer as Caffe2)."""
    with open(path, "wb") as f:
        pickle.dump({"blobs": caffe2_blobs(state)}, f, protocol=2)
    return path


def write_msra_names_pkl(depth: int, path: Path, classes: int = 1000) -> Path:
    """The MSRA blob names of a torchvision resnet{depth} with 1-element arrays (names and the classifier's shape
    are what detection reads; real-size ResNet-50 weights would be 100 MB): for tests that do not load weights."""
    import torchvision

    with torch.device("meta"):
        model = getattr(torchvision.models, f"resnet{depth}")()
    names = {_tv_to_caffe2(k) + ("_s" if ".bn" in k or "bn1." in k or "downsample.1" in k else "")
             for k in model.state_dict() if k.endswith(".weight") and not k.startswith("fc.")}
    blobs = {n: np.zeros(1, np.float32) for n in names} | {n.replace("_s", "_b"): np.zeros(1, np.float32)
                                                            for n in names if n.endswith("_bn_s")}
    blobs |= {"fc1000_w": np.zeros((classes, model.fc.in_features), np.float32), "fc1000_b": np.zeros(classes)}
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    return path


def write_d2_torchvision_pkl(state, path: Path) -> Path:
    """What Detectron2's tools/convert-torchvision-to-d2.py writes (read from its source, not run): every key
    renamed (non-layer keys under stem., layerN -> res{N+1}, bnK -> convK.norm, downsample.0/1 -> shortcut /
    shortcut.norm; fc becomes stem.fc), numpy arrays, {"model", "__author__": "torchvision",
    "matching_heuristics": True}."""
    import re

    model = {}
    for key, value in state.items():
        new = key if "layer" in key else "stem." + key
        new = re.sub(r"layer(\d)", lambda m: f"res{int(m.group(1)) + 1}", new)
        new = re.sub(r"bn(\d)", r"conv\1.norm", new)
        new = new.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
        model[new] = value.numpy()
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": "torchvision", "matching_heuristics": True}, f)
    return path


def write_vissl(state, path: Path) -> Path:
    """VISSL checkpoint (LogCheckpointHook + CheckpointWriter.save_consolidated_checkpoint): {phase_idx,
    iteration, loss, iteration_num, train_phase_idx, classy_state_dict -> base_model -> model -> {trunk:
    _feature_blocks.* (numpy arrays here, as the model-zoo files converted from Caffe2 hold them), heads}, type}."""
    trunk = {f"_feature_blocks.{k}": v.numpy().copy() for k, v in _backbone(state).items()}
    heads = {"0.clf.0.weight": np.zeros((6, _feat(state)), np.float32), "0.clf.0.bias": np.zeros(6, np.float32)}
    classy = {"base_model": {"model": {"trunk": trunk, "heads": heads}, "meta": {}},
              "meters": {}, "optimizer": {}, "loss": {}, "train_phase_idx": 104, "num_updates": 500000}
    torch.save({"phase_idx": 209, "iteration": 500000, "loss": {}, "iteration_num": 500000, "train_phase_idx": 104,
                "classy_state_dict": classy, "type": "consolidated"}, path)
    return path


def write_lightly(state, path: Path, *, index_names: bool = True) -> Path:
    """A lightly MoCo LightningModule .ckpt: backbone = nn.Sequential(*resnet.children()[:-1]) (0 conv1,
    1 bn1, 4-7 layer1-4; fc dropped by [:-1]), projection_head (MoCoProjectionHead: layers.*), and the
    deep-copied backbone_momentum / projection_head_momentum."""
    index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}

    def named(sd):
        if not index_names:
            return sd
        return {index[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]: v for k, v in sd.items()}
    bb = _backbone(state)
    head = _linear("layers.0.", _feat(state), 8) | _linear("layers.2.", 8, 4)
    sd = _pre("backbone.", named(bb)) | _pre("projection_head.", head) \
        | _pre("backbone_momentum.", named(_perturbed(bb))) | _pre("projection_head_momentum.", head)
    torch.save(_lightning(sd, {"lr": 0.06}), path)
    return path


def write_lightly_dino(state, path: Path) -> Path:
    """lightly's DINO example (Lightning .ckpt): student_backbone and teacher_backbone, both
    nn.Sequential(*resnet.children()[:-1]) (index names), student_head and teacher_head (DINOProjectionHead;
    only the prefixes matter here)."""
    index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    bb = {index[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]: v for k, v in _backbone(state).items()}
    head = _linear("layers.0.", _feat(state), 8) | _linear("last_layer.", 8, 6, bias=False)
    sd = _pre("student_backbone.", _perturbed(bb)) | _pre("student_head.", head) \
        | _pre("teacher_backbone.", bb) | _pre("teacher_head.", head)
    torch.save(_lightning(sd, {}), path)
    return path


def write_lightly_models(state, path: Path) -> Path:
    """The state dict of a lightly.models BYOL (the _MomentumEncoderMixin models): backbone (index names),
    projection_head, prediction_head, momentum_backbone, momentum_projection_head; saved flat."""
    index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    bb = {index[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]: v for k, v in _backbone(state).items()}
    mlp = _linear("0.", _feat(state), 8) | _bn1d("1.", 8) | _linear("3.", 8, 4)
    sd = _pre("backbone.", bb) | _pre("projection_head.", mlp) | _pre("prediction_head.", mlp) \
        | _pre("momentum_backbone.", _perturbed(bb)) | _pre("momentum_projection_head.", mlp)
    torch.save(sd, path)
    return path


WRITERS: dict[str, tuple[str, Writer, str]] = {  # layout -> (expected format, writer, file name)
    "moco": ("moco", write_moco, "moco_v2_800ep_pretrain.pth.tar"),
    "moco-v3": ("moco-v3", write_moco_v3, "r-50-1000ep.pth.tar"),
    "torchvision-legacy": ("torchvision", write_torchvision_legacy, "resnet50-19c8e357.pth"),
    "timm-safetensors": ("torchvision", write_timm_safetensors, "model.safetensors"),
    "swav": ("swav", write_swav, "swav_800ep_pretrain.pth.tar"),
    "dino": ("dino", write_dino, "checkpoint.pth"),
    "barlow-vicreg": ("barlow-vicreg", write_barlow_vicreg, "checkpoint.pth"),
    "vicreg": ("barlow-vicreg", write_vicreg, "model.pth"),
    "densecl-raw": ("densecl-raw", write_densecl_raw, "epoch_200.pth"),
    "pixpro": ("pixpro", write_pixpro, "ckpt_epoch_400.pth"),
    "pycontrast": ("pycontrast", write_pycontrast, "ckpt_epoch_800.pth"),
    "solo-learn": ("solo-learn", write_solo_learn, "byol-imagenet-ep=399.ckpt"),
    "mmselfsup": ("mmselfsup", write_mmselfsup, "epoch_200.pth"),
    "mmselfsup-byol": ("mmselfsup", functools.partial(write_mmselfsup, variant="byol"), "epoch_300.pth"),
    "mmselfsup-rc": ("mmselfsup", functools.partial(write_mmselfsup, variant="moco-rc"), "epoch_100.pth"),
    "mmpretrain-published": ("mmselfsup", write_mmpretrain_published,
                             "mocov2_resnet50_8xb32-coslr-200e_in1k_20220825-b6d23c86.pth"),
    "mmpretrain-classifier": ("mmselfsup", write_mmpretrain_classifier, "resnet50_8xb32_in1k_20210831-ea4938fc.pth"),
    "densecl-released": ("torchvision", write_densecl_released, "densecl_r50_imagenet_200ep.pth"),
    "hub-flat": ("torchvision", write_hub_flat, "dino_resnet50_pretrain.pth"),
    "vissl": ("vissl", write_vissl, "model_final_checkpoint_phase208.torch"),
    "lightly": ("lightly", write_lightly, "epoch=99-step=100.ckpt"),
    "lightly-dino": ("lightly", write_lightly_dino, "dino-epoch=9.ckpt"),
    "lightly-models": ("lightly", write_lightly_models, "byol_state_dict.pth"),
}
