"""Weighted kNN classification on frozen features (k=200, T=0.1, as in Wu et al. 2018 and common MoCo monitors).

Features are the L2-normalised pooled backbone outputs (the encoder without its fc / MLP head).
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from mocobench.pretrain.data import ImageList, eval_transform, evenly_spaced, scan_imagefolder


def backbone_of(encoder: nn.Module) -> nn.Module:
    """A copy of a torchvision ResNet with fc replaced by identity: images -> pooled features."""
    backbone = copy.deepcopy(encoder)
    backbone.fc = nn.Identity()
    return backbone


@torch.no_grad()
def extract_features(backbone: nn.Module, loader: DataLoader, device: torch.device, desc: str = "features",
                     progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(N x D normalised features, N labels), backbone in eval mode (its BN statistics untouched)."""
    was_training = backbone.training
    backbone.eval()
    feats, labels = [], []
    for images, targets in tqdm(loader, desc=desc, disable=not progress, leave=False):
        feats.append(F.normalize(backbone(images.to(device)).float(), dim=1).cpu())
        labels.append(targets)
    backbone.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def weighted_knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, query_feats: torch.Tensor, *,
                         num_classes: int, k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Class predictions: each of the k nearest neighbours (cosine) votes exp(sim / T) for its class."""
    k = min(k, train_feats.shape[0])
    preds = []
    for start in range(0, query_feats.shape[0], chunk):
        sim = query_feats[start:start + chunk] @ train_feats.T  # Q x N
        top_sim, top_idx = sim.topk(k, dim=1)  # Q x k
        votes = torch.zeros(sim.shape[0], num_classes, dtype=sim.dtype)
        votes.scatter_add_(1, train_labels[top_idx], (top_sim / temperature).exp())  # Q x C
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_top1(encoder: nn.Module, train_dir: str | Path, val_dir: str | Path, *, image_size: int, device: torch.device,
             k: int = 200, temperature: float = 0.1, batch_size: int = 256, workers: int = 0,
             progress: bool = True, limit: int | None = None) -> float:
    """kNN top-1 (percent) of val_dir's images against train_dir's, both labelled ImageFolders.

    limit: use at most this many bank and query images each, evenly spread over the sorted lists."""
    train_samples, classes = scan_imagefolder(train_dir)
    val_samples, val_classes = scan_imagefolder(val_dir)
    train_samples, val_samples = evenly_spaced(train_samples, limit), evenly_spaced(val_samples, limit)
    if val_classes != classes:
        raise ValueError(f"kNN: {val_dir} and {train_dir} have different class folders")
    transform = eval_transform(image_size)
    backbone = backbone_of(encoder).to(device)

    def loader(samples):
        return DataLoader(ImageList(samples, transform, classes=classes), batch_size=batch_size, shuffle=False,
                          num_workers=workers)

    train_f, train_y = extract_features(backbone, loader(train_samples), device, "kNN bank", progress)
    val_f, val_y = extract_features(backbone, loader(val_samples), device, "kNN queries", progress)
    pred = weighted_knn_predict(train_f, train_y, val_f, num_classes=len(classes), k=k, temperature=temperature)
    return 100.0 * (pred == val_y).float().mean().item()
