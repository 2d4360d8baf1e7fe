"""Linear evaluation (the paper's protocol): frozen backbone in eval mode, a new fc trained by SGD.

fc initialised N(0, 0.01), bias 0; lr 30, weight decay 0, momentum 0.9, x0.1 at epochs 60 and 80 of 100,
batch 256; train aug RandomResizedCrop + flip, test resize + center crop. At the end the backbone's
tensors (weights and BN statistics) are compared with the checkpoint's: any change is an error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from mocobench.common.atomic import write_text
from mocobench.pretrain import checkpoint as ckpt_lib
from mocobench.pretrain.cpu_aug import eval_transform, supervised_augmentation
from mocobench.pretrain.data import ImageList, scan_imagefolder
from mocobench.pretrain.encoders import build_resnet


@dataclass
class LinclsSettings:
    epochs: int = 100
    lr: float = 30.0
    milestones: list[int] = field(default_factory=lambda: [60, 80])
    batch_size: int = 256
    weight_decay: float = 0.0
    momentum: float = 0.9
    image_size: int | None = None  # default: the pretraining image size
    workers: int = 4
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


def model_from_checkpoint(ckpt: dict, num_classes: int, arch: str | None = None, source: str = "checkpoint"):
    """A torchvision ResNet with the checkpoint's backbone and a fresh fc (N(0, 0.01), bias 0)."""
    ck_arch = ckpt.get("arch") or ckpt_lib.stored_setting(ckpt, "arch")
    if arch is not None and ck_arch is not None and arch != ck_arch:
        raise ckpt_lib.CheckpointError(f"{source} holds a {ck_arch}, not a {arch}: drop --arch or pass "
                                       f"--arch {ck_arch}")
    arch = arch or ck_arch
    if arch is None:
        raise ckpt_lib.CheckpointError(f"{source} does not say its arch: pass --arch")
    try:
        model = build_resnet(arch, num_classes=num_classes, stem=ckpt_lib.stored_setting(ckpt, "stem", "standard"))
    except ValueError as e:  # an arch or stem name this suite does not build
        raise ckpt_lib.CheckpointError(f"{source}: {e} (pass --arch with the checkpoint's ResNet)") from None
    ckpt_lib.load_backbone(model, ckpt, source)
    torch.nn.init.normal_(model.fc.weight, mean=0.0, std=0.01)
    torch.nn.init.zeros_(model.fc.bias)
    return model


def backbone_changes(model: torch.nn.Module, reference: dict[str, torch.Tensor]) -> list[str]:
    """Names of backbone tensors (all but fc) that differ from the reference state dict."""
    return [k for k, v in model.state_dict().items()
            if not k.startswith("fc.") and not torch.equal(v.cpu(), reference[k].cpu())]


@torch.no_grad()
def accuracy(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for images, targets in loader:
        correct += (model(images.to(device)).argmax(1).cpu() == targets).sum().item()
        total += targets.numel()
    return 100.0 * correct / total


def linear_eval(checkpoint: str | Path, train_dir: str | Path, val_dir: str | Path, settings: LinclsSettings,
                arch: str | None = None, output: str | Path | None = None) -> dict:
    ckpt = ckpt_lib.load(checkpoint)
    train_samples, classes = scan_imagefolder(train_dir)
    val_samples, val_classes = scan_imagefolder(val_dir)
    if val_classes != classes:
        raise ValueError(f"{val_dir} and {train_dir} have different class folders")
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    model = model_from_checkpoint(ckpt, len(classes), arch, str(checkpoint)).to(device)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("fc."))
    size = settings.image_size or ckpt_lib.stored_setting(ckpt, "data.image_size", 224)
    train_set = ImageList(train_samples, supervised_augmentation(size), classes=classes)
    val_set = ImageList(val_samples, eval_transform(size), classes=classes)
    train_loader = DataLoader(train_set, batch_size=settings.batch_size, shuffle=True, num_workers=settings.workers,
                              drop_last=False)
    val_loader = DataLoader(val_set, batch_size=settings.batch_size, shuffle=False, num_workers=settings.workers)
    optimizer = torch.optim.SGD(model.fc.parameters(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, settings.milestones, gamma=0.1)
    for epoch in range(settings.epochs):
        model.eval()  # frozen backbone: BN uses (and keeps) its pretrained statistics
        bar = tqdm(train_loader, desc=f"lincls epoch {epoch + 1}/{settings.epochs}", disable=not settings.progress)
        for images, targets in bar:
            loss = F.cross_entropy(model(images.to(device)), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.3g}")
        scheduler.step()
    changed = backbone_changes(model, reference)
    if changed:
        raise RuntimeError(f"linear evaluation changed the frozen backbone: {changed[:5]}")
    result = {"top1": accuracy(model, val_loader, device), "epochs": settings.epochs, "checkpoint": str(checkpoint),
              "arch": ckpt.get("arch"), "train": str(train_dir), "val": str(val_dir), "backbone_unchanged": True}
    if output is not None:
        try:
            write_text(output, json.dumps(result, indent=2), overwrite=False)
        except FileExistsError:
            raise FileExistsError(f"{output} exists; not overwriting it (choose another --output)") from None
    return result
