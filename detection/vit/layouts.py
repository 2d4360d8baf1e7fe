"""The Vision Transformer checkpoint layouts, as each project saves and publishes them, read into one body
under timm's names (`patch_embed.proj.*`, `pos_embed`, `cls_token`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,
mlp.fc1,mlp.fc2,ls1.gamma,ls2.gamma}`) plus what the file says about the architecture.

Each layout was checked against its project's own saving code (docs/vit.md gives file and function):
- dino: full checkpoint {student, teacher, optimizer, epoch, args, dino_loss[, fp16_scaler]} (main_dino.py);
  the teacher's `backbone.*` is kept (DINO evaluates the teacher), its `head.*` and the whole student dropped;
  heads from args.arch (vit_tiny 3, vit_small 6, vit_base 12: DINO's vision_transformer.py).
- ibot: as dino (main_ibot.py, with ibot_loss); the student's `backbone.masked_embed` marks it; `gamma_1`/`gamma_2`
  (present when init_values > 0) are its layer-scale; heads from args.arch (DINO's and vit_large 16).
- mae: {'model', ...} (util/misc.py save_model); encoder only in released files; a training file's
  decoder_* and mask_token are dropped; a fine-tuned file (main_finetune.py, global_pool) has no `norm` but
  `fc_norm` and `head`, dropped; heads from args.model (models_mae's mae_vit_base_patch16 12, large 16,
  huge 16, and their *_dec512d8b names; models_vit's vit_base_patch16 12, vit_large_patch16 16, vit_huge_patch14 16).
- moco-v3: {epoch, arch, state_dict, optimizer, scaler} (main_moco.py), `module.base_encoder.*` kept minus its
  `head.*` (the projector), `module.momentum_encoder.*` and `module.predictor.*` dropped; heads from arch
  (vits.py: vit_small 12, vit_base 12); `vit_conv_*` (a convolutional stem) refused.
- dinov2: flat hub files (hubconf / dinov2/hub/backbones.py): patch 14, 518-px grid (pos_embed 1 x 1370 x C),
  `blocks.N.ls1.gamma`/`ls2.gamma`, `mask_token` (dropped); the training run's teacher file
  (train/train.py do_test: {'teacher': {backbone.*, dino_head.*, ibot_head.*}}), whose blocks are chunked
  when the config sets block_chunks (ViT-L/g training configs: 4; `blocks.c.i.*`, renamed to `blocks.i.*`);
  `register_tokens` and SwiGLU (`mlp.w12`/`w3`, ViT-g) refused.
- timm: flat .safetensors / .pth of timm's VisionTransformer (DeiT, AugReg, DeiT-III); kind "supervised" when
  a classifier `head.weight` is present; `fc_norm` and `head` dropped.
- hub: a flat ViT state dict without classifier (DINO and iBOT hub files, timm headless): kind "other".
- mmpretrain-vit: mmpretrain / mmselfsup 1.x {meta, state_dict} with `backbone.layers.N.*` (ln1, attn.qkv,
  attn.proj, ln2, ffn.layers.0.0, ffn.layers.1, attn.gamma1 / ffn.gamma2 layer-scale, final ln1), renamed to
  timm's names; neck, head and the rest dropped; pre_norm (CLIP-style) refused.
Heads cannot be read from tensors; without metadata the standard count for the width is used (192: 3,
384: 6, 768: 12, 1024: 16, 1280: 16, 1536: 24), and the plan says so.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from mocobench.common.errors import UsageError


class VitLayoutError(UsageError):
    """A ViT checkpoint this converter cannot turn into ViTDet's backbone exactly."""


STANDARD_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1536: 24}
# heads of each project's own architecture names (read from each project's model definitions)
DINO_HEADS = {"vit_tiny": 3, "vit_small": 6, "vit_base": 12}
IBOT_HEADS = {**DINO_HEADS, "vit_large": 16}  # iBOT models/vision_transformer.py adds vit_large
MOCO_V3_HEADS = {"vit_small": 12, "vit_base": 12}  # moco-v3 vits.py (vit_conv_* refused)
# MAE: models_mae.py (pretraining, args.model of main_pretrain.py, with the *_dec512d8b full names) and
# models_vit.py (fine-tuning, args.model of main_finetune.py)
MAE_HEADS = {"mae_vit_base_patch16": 12, "mae_vit_large_patch16": 16, "mae_vit_huge_patch14": 16,
             "mae_vit_base_patch16_dec512d8b": 12, "mae_vit_large_patch16_dec512d8b": 16,
             "mae_vit_huge_patch14_dec512d8b": 16,
             "vit_base_patch16": 12, "vit_large_patch16": 16, "vit_huge_patch14": 16}

VIT_LAYOUTS = {
    "dino": ("DINO ViT full checkpoint {student, teacher, optimizer, epoch, args, dino_loss}", "other"),
    "ibot": ("iBOT ViT full checkpoint {student, teacher, ...} (student has backbone.masked_embed)", "other"),
    "mae": ("MAE {'model'[, optimizer, epoch, scaler, args]} (encoder; decoder dropped)", "other"),
    "moco-v3-vit": ("MoCo v3 ViT {epoch, arch, state_dict, optimizer, scaler}, module.base_encoder.*", "moco"),
    "dinov2": ("DINOv2 hub file (patch 14, layer-scale, mask_token), or its training run's {'teacher'} file "
               "(chunked blocks)", "other"),
    "timm": ("timm VisionTransformer .safetensors / .pth with a classifier head (DeiT, AugReg)", "supervised"),
    "hub": ("flat ViT state dict without classifier (DINO / iBOT hub files, headless timm)", "other"),
    "mmpretrain-vit": ("mmpretrain / mmselfsup 1.x ViT {meta, state_dict}, backbone.layers.N.* (ln1, attn.qkv, "
                       "ffn.layers.0.0, ...)", "other"),
}

_BODY = re.compile(r"^(patch_embed\.proj\.(weight|bias)|pos_embed|cls_token|"
                   r"blocks\.\d+\.(norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)|"
                   r"blocks\.\d+\.ls[12]\.gamma)$")
_DROPS = re.compile(r"^(norm\.|fc_norm\.|head\.|head_drop|heads\.|mask_token$|masked_embed$|decoder_|"
                    r"decoder\.)")


@dataclass
class VitBackbone:
    layout: str
    state: dict[str, torch.Tensor]                 # timm names, cls_token and its position included if present
    dropped: list[str]
    kind: str
    meta: dict[str, Any] = field(default_factory=dict)  # arch, epoch, heads, heads_source


@dataclass(frozen=True)
class VitSpec:
    """The architecture the tensors and the metadata give (the heads: see heads_source)."""
    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    grid: int
    mlp_ratio: float
    qkv_bias: bool
    layer_scale: bool
    heads_source: str
    arch: str

    @property
    def pretrain_img_size(self) -> int:
        return self.grid * self.patch_size

    def cfg_keys(self) -> dict[str, Any]:
        """MODEL.VIT.* values for the detector's config (upper case), and where the head count came from and
        the architecture's name (lower case: the record's protocol, not the config)."""
        return {"EMBED_DIM": self.embed_dim, "DEPTH": self.depth, "NUM_HEADS": self.num_heads,
                "PATCH_SIZE": self.patch_size, "PRETRAIN_IMG_SIZE": self.pretrain_img_size,
                "MLP_RATIO": self.mlp_ratio, "QKV_BIAS": self.qkv_bias, "LAYER_SCALE": self.layer_scale,
                "heads_source": self.heads_source, "arch": self.arch}


def looks_like_vit(ckpt: Mapping[str, Any]) -> bool:
    """A ViT checkpoint of some layout: some tensor key names a ViT block's qkv or its patch embedding."""
    pat = re.compile(r"(^|\.)(blocks\.\d+(\.\d+)?\.attn\.qkv\.weight|patch_embed\.proj(\.\d+)?\.weight|"
                     r"layers\.\d+\.attn\.qkv\.weight)$")
    return any(pat.search(k) for k in _all_keys(ckpt))


def _all_keys(node: Any, depth: int = 3, prefix: str = "") -> list[str]:
    out = []
    if isinstance(node, Mapping) and depth >= 0:
        for k, v in node.items():
            if isinstance(v, torch.Tensor):
                out.append(prefix + str(k))
            else:
                out += _all_keys(v, depth - 1, prefix + str(k) + ".")
    return out


def _tensors(mapping: Any) -> dict[str, torch.Tensor]:
    if not isinstance(mapping, Mapping):
        return {}
    return {str(k): v for k, v in mapping.items() if isinstance(v, torch.Tensor)}


def _strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _args(obj: Any) -> dict[str, Any]:
    """An argparse.Namespace as plain data: a real one (vars) or the inert placeholder's pickled state."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    state = getattr(obj, "__dict__", {})
    if isinstance(state.get("state"), Mapping):  # common/safe_pickle.Inert
        return dict(state["state"])
    return {k: v for k, v in state.items() if not k.startswith("_")}


def _under(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def find_backbone(ckpt: Mapping[str, Any]) -> VitBackbone:
    """The layout of a ViT checkpoint and its body under timm names (before the body checks)."""
    if "teacher" in ckpt and "student" in ckpt:  # DINO / iBOT full checkpoints
        args = _args(ckpt.get("args"))
        teacher, student = _strip_module(_tensors(ckpt["teacher"])), _strip_module(_tensors(ckpt["student"]))
        ibot = any(k.endswith("masked_embed") for k in student) or "pred_ratio" in args or "ibot_loss" in ckpt
        name = "ibot" if ibot else "dino"
        body = _under(teacher, "backbone.")
        if not body:
            raise VitLayoutError(f"a {name} checkpoint whose teacher holds no backbone.* tensors")
        dropped = [f"teacher.{k}" for k in teacher if not k.startswith("backbone.")]
        dropped.append(f"student ({len(student)} tensors: the online network, its heads)")
        arch = str(args.get("arch", ""))
        heads = (IBOT_HEADS if ibot else DINO_HEADS).get(arch)
        return VitBackbone(name, body, dropped, "other", {
            "arch": arch, "epoch": ckpt.get("epoch"), "heads": heads,
            "heads_source": f"checkpoint metadata: args.arch = {arch!r} ({name}: {heads} heads)" if heads else ""})
    if "teacher" in ckpt and isinstance(ckpt["teacher"], Mapping):  # DINOv2 eval/<iter>/teacher_checkpoint.pth
        teacher = _strip_module(_tensors(ckpt["teacher"]))
        body = _unchunk(_under(teacher, "backbone."))
        if not body:
            raise VitLayoutError("a {'teacher': ...} checkpoint whose teacher holds no backbone.* tensors")
        dropped = [f"teacher.{k}" for k in teacher if not k.startswith("backbone.")]
        name = "dinov2" if "mask_token" in body or any(k.endswith(".ls1.gamma") for k in body) else "dino"
        return VitBackbone(name, body, dropped, "other", {"arch": "", "epoch": None, "heads": None,
                                                          "heads_source": ""})
    sd = ckpt.get("state_dict")
    if isinstance(sd, Mapping):
        state = _strip_module(_tensors(sd))
        if any(k.startswith("base_encoder.") for k in state):  # MoCo v3
            arch = str(ckpt.get("arch", ""))
            if arch.startswith("vit_conv") or any(k.startswith("base_encoder.patch_embed.proj.") and
                                                  k.count(".") > 4 for k in state):
                raise VitLayoutError(f"MoCo v3 {arch or 'ViT'} with a convolutional stem (vit_conv_*): ViTDet's "
                                     f"patch embedding is one strided convolution, so the stem has no place in "
                                     f"it; use a plain vit_small / vit_base checkpoint")
            body = {k: v for k, v in _under(state, "base_encoder.").items() if not k.startswith("head.")}
            dropped = [k for k in state if not k.startswith("base_encoder.") or k.startswith("base_encoder.head.")]
            heads = MOCO_V3_HEADS.get(arch)
            return VitBackbone("moco-v3-vit", body, dropped, "moco", {
                "arch": arch, "epoch": ckpt.get("epoch"), "heads": heads,
                "heads_source": f"checkpoint metadata: arch = {arch!r} (MoCo v3: {heads} heads)" if heads else ""})
        if any(k.startswith("backbone.layers.") for k in state):
            return _mmpretrain(state, ckpt)
        return _flat(state, ckpt)
    model = ckpt.get("model")
    if isinstance(model, Mapping) and model:
        state = _strip_module(_tensors(model))
        args = _args(ckpt.get("args"))
        arch = str(args.get("model", ""))
        heads = MAE_HEADS.get(arch)
        dropped = [k for k in state if k.startswith("decoder") or k == "mask_token"]
        body = {k: v for k, v in state.items() if k not in set(dropped)}
        return VitBackbone("mae", body, dropped, "other", {
            "arch": arch, "epoch": ckpt.get("epoch"), "heads": heads,
            "heads_source": f"checkpoint metadata: args.model = {arch!r} (MAE: {heads} heads)" if heads else ""})
    return _flat(_strip_module(_tensors(ckpt)), ckpt)


# mmpretrain's VisionTransformer (models/backbones/vision_transformer.py: TransformerEncoderLayer ln1 / attn / ln2 /
# ffn, MultiheadAttention qkv / proj / gamma1, mmcv FFN layers.0.0 / layers.1 / gamma2; final norm ln1)
_MMPRETRAIN = [(re.compile(p), r) for p, r in (
    (r"^patch_embed\.projection\.", "patch_embed.proj."),
    (r"^layers\.(\d+)\.ln1\.", r"blocks.\1.norm1."), (r"^layers\.(\d+)\.ln2\.", r"blocks.\1.norm2."),
    (r"^layers\.(\d+)\.attn\.qkv\.", r"blocks.\1.attn.qkv."),
    (r"^layers\.(\d+)\.attn\.proj\.", r"blocks.\1.attn.proj."),
    (r"^layers\.(\d+)\.attn\.gamma1\.weight$", r"blocks.\1.ls1.gamma"),
    (r"^layers\.(\d+)\.ffn\.layers\.0\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^layers\.(\d+)\.ffn\.layers\.1\.", r"blocks.\1.mlp.fc2."),
    (r"^layers\.(\d+)\.ffn\.gamma2\.weight$", r"blocks.\1.ls2.gamma"),
    (r"^ln1\.", "norm."), (r"^ln2\.", "fc_norm."))]


def _mmpretrain(state: dict[str, torch.Tensor], ckpt: Mapping[str, Any]) -> VitBackbone:
    """mmpretrain / mmselfsup 1.x {meta, state_dict}: backbone.* renamed to timm names; neck, head, target
    generator and data preprocessor dropped. A CLIP-style pre_norm is refused (timm's ViT there has norm_pre)."""
    if any(k.startswith("backbone.pre_norm.") for k in state):
        raise VitLayoutError("an mmpretrain ViT with pre_norm (CLIP-style): ViTDet's ViT has no norm before the "
                             "blocks")
    body, dropped = {}, []
    for k, v in state.items():
        if not k.startswith("backbone."):
            dropped.append(k)
            continue
        name = k[len("backbone."):]
        for pat, rep in _MMPRETRAIN:
            if pat.search(name):
                name = pat.sub(rep, name)
                break
        body[name] = v
    meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), Mapping) else {}
    return VitBackbone("mmpretrain-vit", body, dropped, "other", {
        "arch": "", "epoch": meta.get("epoch"), "heads": None, "heads_source": ""})


def _unchunk(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DINOv2 BlockChunk (block_chunks > 0, its training configs): blocks.<chunk>.<global index>.* -> blocks.<i>.*
    (each chunk pads the earlier indexes with parameter-free Identity, so the second index is the block's own)."""
    chunked = re.compile(r"^blocks\.\d+\.(\d+)\.")
    if any(chunked.match(k) for k in state):
        state = {chunked.sub(r"blocks.\1.", k): v for k, v in state.items()}
    return state


def _flat(state: dict[str, torch.Tensor], ckpt: Mapping[str, Any]) -> VitBackbone:
    state = _unchunk(state)
    dinov2 = any(k.endswith(".ls1.gamma") for k in state) and "mask_token" in state
    if dinov2:
        name, kind = "dinov2", "other"
    elif "head.weight" in state and state["head.weight"].ndim == 2:
        name, kind = "timm", "supervised"
    else:
        name, kind = "hub", "other"
    return VitBackbone(name, state, [], kind, {"arch": "", "epoch": ckpt.get("epoch") if isinstance(
        ckpt.get("epoch"), int) else None, "heads": None, "heads_source": ""})


def extract_vit(ckpt: Mapping[str, Any], heads: int | None = None) -> tuple[VitBackbone, VitSpec]:
    """The body (timm names, only the tensors ViTDet's ViT computes with) and its architecture.
    heads: --vit-heads, overriding metadata and the standard value."""
    found = find_backbone(ckpt)
    state = dict(found.state)
    gamma = re.compile(r"^(blocks\.\d+)\.gamma_([12])$")  # iBOT / DINO-style layer-scale
    state = {gamma.sub(r"\1.ls\2.gamma", k): v for k, v in state.items()}
    _refuse(state, found.layout)
    body, dropped = {}, list(found.dropped)
    unknown = []
    for k, v in state.items():
        if _BODY.match(k):
            body[k] = v
        elif _DROPS.match(k):
            dropped.append(k)
        else:
            unknown.append(k)
    if unknown:
        raise VitLayoutError(f"{found.layout} layout: {len(unknown)} tensors that are neither ViT body nor a known "
                             f"drop: {unknown[:6]}; ViTDet's ViT cannot hold them")
    found.state, found.dropped = body, dropped
    return found, _spec(body, found, heads)


def _refuse(state: Mapping[str, torch.Tensor], layout: str) -> None:
    keys = list(state)
    if any(k in ("register_tokens", "reg_token") for k in keys):
        raise VitLayoutError("register tokens (DINOv2 *_reg files): they attend with every patch token in every "
                             "block, and ViTDet's windowed blocks have no place for them, so no ViTDet computes "
                             "what the pretrained network computed; use the checkpoint without registers")
    if any(re.search(r"\.mlp\.(w12|w1|w2|w3)\.", k) for k in keys):
        raise VitLayoutError("a SwiGLU MLP (mlp.w12 / mlp.w3: DINOv2 ViT-g): Detectron2's ViT block has a GELU "
                             "MLP only; SwiGLU ViTs are not supported")
    if "dist_token" in keys:
        raise VitLayoutError("a distillation token (DeiT *_distilled: dist_token, head_dist): its position "
                             "embedding and token have no place in ViTDet's ViT; use the non-distilled DeiT")
    if any(re.match(r"patch_embed\.proj\.\d+\.", k) or k.startswith("patch_embed.stem") for k in keys):
        raise VitLayoutError("a convolutional stem (patch_embed.proj.N.*): ViTDet's patch embedding is one "
                             "strided convolution; use a plain-patch ViT")
    if any(re.search(r"\.attn\.(q_norm|k_norm|q_bias|v_bias|relative_position)", k) for k in keys):
        raise VitLayoutError("attention with q/k norms or BEiT-style biases: Detectron2's attention has neither")
    if "blocks.0.attn.qkv.weight" not in keys or "patch_embed.proj.weight" not in keys:
        raise VitLayoutError(f"{layout} layout: no blocks.0.attn.qkv.weight / patch_embed.proj.weight; not a "
                             f"complete ViT (a truncated or partial state dict?)")


def _spec(body: Mapping[str, torch.Tensor], found: VitBackbone, heads: int | None) -> VitSpec:
    proj = body["patch_embed.proj.weight"]
    dim, channels, patch, patch_w = proj.shape
    if channels != 3 or patch != patch_w:
        raise VitLayoutError(f"patch embedding {tuple(proj.shape)}: expected RGB square patches")
    depth = 1 + max(int(k.split(".")[1]) for k in body if k.startswith("blocks."))
    missing = [f"blocks.{i}.{n}.weight" for i in range(depth) for n in ("norm1", "attn.qkv", "attn.proj", "norm2",
                                                                         "mlp.fc1", "mlp.fc2")
               if f"blocks.{i}.{n}.weight" not in body]
    if missing:
        raise VitLayoutError(f"blocks 0..{depth - 1} are incomplete (missing {missing[:4]}): a truncated or "
                             f"partial checkpoint")
    if "pos_embed" not in body:
        raise VitLayoutError("no pos_embed: ViTDet adds absolute position embeddings from the pretraining grid")
    n = body["pos_embed"].shape[1]
    cls = "cls_token" in body
    grid = math.isqrt(n - 1) if cls and math.isqrt(n - 1) ** 2 == n - 1 else math.isqrt(n)
    if grid * grid not in (n, n - 1):
        raise VitLayoutError(f"pos_embed has {n} positions: not a square grid (with or without a class position)")
    layer_scale = [f"blocks.{i}.ls{j}.gamma" in body for i in range(depth) for j in (1, 2)]
    if any(layer_scale) and not all(layer_scale):
        raise VitLayoutError("layer-scale on some blocks only")
    hidden = body["blocks.0.mlp.fc1.weight"].shape[0]
    if heads is not None:
        num_heads, source = heads, f"--vit-heads {heads}"
    elif found.meta.get("heads"):
        num_heads, source = found.meta["heads"], found.meta["heads_source"]
    elif dim in STANDARD_HEADS:
        num_heads = STANDARD_HEADS[dim]
        source = (f"standard for width {dim} ({num_heads} heads: timm / DeiT / DINO / DINOv2); the file names no "
                  f"architecture; MoCo v3's ViT-S has 12: give --vit-heads N if yours differs")
    else:
        raise VitLayoutError(f"width {dim}: no standard head count and the checkpoint names no architecture; "
                             f"give --vit-heads N")
    if dim % num_heads:
        raise VitLayoutError(f"{num_heads} heads do not divide the width {dim}; give --vit-heads N")
    size = {192: "tiny", 384: "small", 768: "base", 1024: "large", 1280: "huge", 1536: "giant"}.get(dim, f"w{dim}")
    arch = found.meta.get("arch") or f"vit_{size}_patch{patch}"
    return VitSpec(int(dim), depth, int(num_heads), int(patch), grid, hidden / dim,
                   "blocks.0.attn.qkv.bias" in body, all(layer_scale), source, arch)
