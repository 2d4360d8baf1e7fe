"""Tiny random ViT checkpoints written as each project saves them (docs/vit.md names the saving code), for
the ViT converter's tests. Every tensor is random (LayerNorms, layer-scale and position embeddings too), so
a tensor put in the wrong place changes the network's output."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch


def tiny_vit(dim: int = 64, depth: int = 2, heads: int = 4, patch: int = 16, img: int = 64,
             layer_scale: bool = False, num_classes: int = 0, seed: int = 0, no_embed_class: bool = False):
    """A timm VisionTransformer (class token, final norm) with every tensor random. no_embed_class: the
    position embeddings cover the patches only (timm's DeiT-III models)."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    m = VisionTransformer(img_size=img, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
                          num_classes=num_classes, init_values=0.5 if layer_scale else None,
                          no_embed_class=no_embed_class)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("gamma"):
                p.copy_(0.5 + torch.rand_like(p))
            elif p.ndim == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    return m.eval()


def body_state(m) -> dict[str, torch.Tensor]:
    """The model's state dict with the DINO/MAE/DINOv2 names (timm's names; head dropped if empty)."""
    return {k: v.clone() for k, v in m.state_dict().items() if not (k.startswith("head.") and v.numel() == 0)}


def _namespace(**kw) -> argparse.Namespace:
    return argparse.Namespace(**kw)


def write_dino_full(path: Path, m, arch: str = "vit_small", ibot: bool = False) -> Path:
    """main_dino.py / main_ibot.py: {student, teacher, optimizer, epoch, args, dino_loss (iBOT: ibot_loss)}; the
    student is DDP-wrapped (module.backbone.*), the teacher not (a ViT has no BatchNorm, so it is not wrapped);
    heads head.mlp.*, head.last_layer.weight_g/v."""
    body = body_state(m)
    dim = body["pos_embed"].shape[-1]
    head = {"head.mlp.0.weight": torch.randn(32, dim), "head.mlp.0.bias": torch.randn(32),
            "head.last_layer.weight_g": torch.randn(16, 1), "head.last_layer.weight_v": torch.randn(16, 32)}
    teacher = {**{f"backbone.{k}": v for k, v in body.items()}, **head}
    student = {f"module.{k}": v + 0.01 for k, v in teacher.items()}
    if ibot:
        student["module.backbone.masked_embed"] = torch.zeros(1, dim)
    args = _namespace(arch=arch, patch_size=16, out_dim=16, **({"pred_ratio": 0.3} if ibot else {}))
    loss = "ibot_loss" if ibot else "dino_loss"
    torch.save({"student": student, "teacher": teacher, "optimizer": {}, "epoch": 100, "args": args,
                loss: {"center": torch.zeros(1, 16)}}, path)
    return path


def write_flat(path: Path, m, extra: dict | None = None) -> Path:
    """hubconf files (DINO, DINOv2) and timm .pth: the flat state dict."""
    torch.save({**body_state(m), **(extra or {})}, path)
    return path


def write_mae(path: Path, m, arch: str = "mae_vit_base_patch16", training: bool = False,
              finetuned: bool = False) -> Path:
    """util/misc.py save_model: {'model', 'optimizer', 'epoch', 'scaler', 'args'} (released files: model only).
    finetuned: main_finetune.py's file, models_vit.VisionTransformer with global_pool (its default): the final
    `norm` deleted, `fc_norm` and the classifier `head` in its place; args.model names models_vit's arch."""
    model = body_state(m)
    if finetuned:
        dim = model["pos_embed"].shape[-1]
        model = {k: v for k, v in model.items() if not k.startswith("norm.")}
        model.update({"fc_norm.weight": 1 + torch.rand(dim), "fc_norm.bias": torch.randn(dim),
                      "head.weight": torch.randn(10, dim), "head.bias": torch.randn(10)})
        torch.save({"model": model, "optimizer": {}, "epoch": 99, "scaler": {}, "args": _namespace(model=arch)}, path)
    elif training:
        dim = model["pos_embed"].shape[-1]
        model.update({"mask_token": torch.zeros(1, 1, 32), "decoder_embed.weight": torch.randn(32, dim),
                      "decoder_pos_embed": torch.zeros(1, 17, 32), "decoder_pred.weight": torch.randn(48, 32)})
        torch.save({"model": model, "optimizer": {}, "epoch": 399, "scaler": {}, "args": _namespace(model=arch)}, path)
    else:
        torch.save({"model": model}, path)
    return path


def write_moco_v3(path: Path, m, arch: str = "vit_small") -> Path:
    """main_moco.py: {epoch, arch, state_dict, optimizer, scaler}; DDP module.base_encoder.* (head = projector),
    module.momentum_encoder.*, module.predictor.*."""
    body = body_state(m)
    dim = body["pos_embed"].shape[-1]
    proj = {"head.0.weight": torch.randn(32, dim), "head.1.weight": torch.randn(32), "head.1.bias": torch.randn(32)}
    sd = {**{f"module.base_encoder.{k}": v for k, v in {**body, **proj}.items()},
          **{f"module.momentum_encoder.{k}": v + 1 for k, v in {**body, **proj}.items()},
          "module.predictor.0.weight": torch.randn(32, 32)}
    torch.save({"epoch": 300, "arch": arch, "state_dict": sd, "optimizer": {}, "scaler": {}}, path)
    return path


def write_dinov2(path: Path, m, registers: int = 0, chunks: int = 0, swiglu: bool = False,
                 teacher: bool = False) -> Path:
    """DINOv2 hub files: flat, mask_token (1, C), ls1/ls2 gamma; register_tokens in _reg files. With chunks, the
    blocks as BlockChunk holds them (block_chunks in the training configs): chunk size depth // chunks, each
    chunk keeps the blocks' global indexes (blocks.<chunk>.<index>.*). teacher: the training run's
    eval/<iter>/teacher_checkpoint.pth (train/train.py do_test): {'teacher': {backbone.*, dino_head.*,
    ibot_head.*}}."""
    body = body_state(m)
    dim = body["pos_embed"].shape[-1]
    body["mask_token"] = torch.zeros(1, dim)
    if registers:
        body["register_tokens"] = torch.randn(1, registers, dim)
    if swiglu:
        fc1 = [k for k in body if k.endswith("mlp.fc1.weight")]
        for k in fc1:
            body[k.replace("fc1", "w12")] = body.pop(k)
    if chunks:
        depth = 1 + max(int(k.split(".")[1]) for k in body if k.startswith("blocks."))
        per = depth // chunks
        body = {(f"blocks.{int(k.split('.')[1]) // per}.{k[len('blocks.'):]}" if k.startswith("blocks.") else k): v
                for k, v in body.items()}
    if teacher:
        heads = {"dino_head.mlp.0.weight": torch.randn(32, dim), "dino_head.last_layer.weight_g": torch.randn(16, 1),
                 "dino_head.last_layer.weight_v": torch.randn(16, 32), "ibot_head.mlp.0.weight": torch.randn(32, dim)}
        body = {"teacher": {**{f"backbone.{k}": v for k, v in body.items()}, **heads}}
    torch.save(body, path)
    return path


def write_timm_safetensors(path: Path, m) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    return path


def write_mmpretrain(path: Path, m) -> Path:
    """mmpretrain's publish_model output {meta, state_dict}: backbone.* under mmpretrain's VisionTransformer names
    (patch_embed.projection, layers.N.ln1 / attn.qkv / attn.proj / ln2 / ffn.layers.0.0 / ffn.layers.1, layer-scale
    attn.gamma1.weight / ffn.gamma2.weight, final ln1), and its classifier head.*."""
    import re

    rules = [(r"^patch_embed\.proj\.", "patch_embed.projection."), (r"^blocks\.(\d+)\.norm1\.", r"layers.\1.ln1."),
             (r"^blocks\.(\d+)\.norm2\.", r"layers.\1.ln2."), (r"^blocks\.(\d+)\.attn\.", r"layers.\1.attn."),
             (r"^blocks\.(\d+)\.mlp\.fc1\.", r"layers.\1.ffn.layers.0.0."),
             (r"^blocks\.(\d+)\.mlp\.fc2\.", r"layers.\1.ffn.layers.1."),
             (r"^blocks\.(\d+)\.ls1\.gamma$", r"layers.\1.attn.gamma1.weight"),
             (r"^blocks\.(\d+)\.ls2\.gamma$", r"layers.\1.ffn.gamma2.weight"), (r"^norm\.", "ln1.")]
    sd = {}
    for k, v in body_state(m).items():
        for pat, rep in rules:
            if re.search(pat, k):
                k = re.sub(pat, rep, k)
                break
        sd[k if k.startswith("head.") else f"backbone.{k}"] = v
    dim = body_state(m)["pos_embed"].shape[-1]
    sd.update({"head.layers.head.weight": torch.randn(10, dim), "head.layers.head.bias": torch.randn(10)})
    torch.save({"meta": {"epoch": 300, "mmpretrain_version": "1.2.0"}, "state_dict": sd}, path)
    return path
