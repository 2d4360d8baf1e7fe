"""Weighted kNN classification on frozen features (k=200, T=0.1, as in Wu et al. 2018 and common MoCo monitors).

Features are the L2-normalised pooled backbone outputs (the encoder without its fc / MLP head).

Across the ranks of a process group (`distributed=True`, the monitor under DDP) the work is sharded: every
rank takes rank 0's weights and BN statistics, extracts the features of its contiguous slice of the bank
and of the queries, the queries are gathered, and each rank finds the k nearest neighbours in its own bank
slice; the ranks' candidates are gathered and merged into the global k nearest. The result equals the
one-process computation (the same neighbours, summed in the same order), and no rank waits for another
to extract the whole set.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from mocobench.pretrain.cpu_aug import eval_transform
from mocobench.pretrain.data import ImageList, evenly_spaced, scan_imagefolder
from mocobench.pretrain.distributed import all_gather_rows, broadcast_module


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
                         num_classes: int, k: int = 200, temperature: float = 0.1, chunk: int = 1024,
                         device: torch.device | None = None) -> torch.Tensor:
    """Class predictions: each of the k nearest neighbours (cosine) votes exp(sim / T) for its class.

    device: given with a process group, train_* are this rank's slice of the bank and the same query_feats are
    on every rank; each rank's k nearest are gathered over `device` (NCCL needs CUDA) and merged."""
    sharded = device is not None and dist.is_available() and dist.is_initialized()
    bank = train_feats.shape[0]
    if sharded:
        bank = int(all_gather_rows(torch.tensor([bank]), device).sum())
    k = min(k, bank)
    preds = []
    for start in range(0, query_feats.shape[0], chunk):
        sim = query_feats[start:start + chunk] @ train_feats.T  # Q x N (N: this rank's bank slice)
        top_sim, top_idx = sim.topk(min(k, sim.shape[1]), dim=1)  # Q x k, largest first
        top_labels = train_labels[top_idx]
        if sharded:
            top_sim, top_labels = _merge_over_ranks(top_sim, top_labels, k, device)
        votes = torch.zeros(sim.shape[0], num_classes, dtype=sim.dtype)
        votes.scatter_add_(1, top_labels, (top_sim / temperature).exp())  # Q x C
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def _merge_over_ranks(top_sim: torch.Tensor, top_labels: torch.Tensor, k: int,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Each rank's Q x k_r nearest (k_r <= k) -> the Q x k nearest over all ranks, largest first (as topk over the
    whole bank gives them). A rank with fewer than k bank images pads with similarity -inf (a vote of 0)."""
    q, pad = top_sim.shape[0], k - top_sim.shape[1]
    top_sim = F.pad(top_sim, (0, pad), value=float("-inf"))
    top_labels = F.pad(top_labels, (0, pad), value=0)
    world = dist.get_world_size()
    parts_sim = [torch.empty(q, k, dtype=top_sim.dtype, device=device) for _ in range(world)]
    parts_lab = [torch.empty(q, k, dtype=top_labels.dtype, device=device) for _ in range(world)]
    dist.all_gather(parts_sim, top_sim.to(device))
    dist.all_gather(parts_lab, top_labels.to(device))
    sims, labels = torch.cat(parts_sim, dim=1).cpu(), torch.cat(parts_lab, dim=1).cpu()  # Q x (world * k)
    best, idx = sims.topk(k, dim=1)
    return best, labels.gather(1, idx)


def _shard(items: list, rank: int, world: int) -> list:
    """Rank r's contiguous slice (the slices in rank order are the list)."""
    n = len(items)
    return items[rank * n // world:(rank + 1) * n // world]


def knn_top1(encoder: nn.Module, train_dir: str | Path, val_dir: str | Path, *, image_size: int, device: torch.device,
             k: int = 200, temperature: float = 0.1, batch_size: int = 256, workers: int = 0,
             progress: bool = True, limit: int | None = None, distributed: bool = False) -> float:
    """kNN top-1 (percent) of val_dir's images against train_dir's, both labelled ImageFolders.

    limit: use at most this many bank and query images each, evenly spread over the sorted lists.
    distributed: called by every rank of the process group, which share the work (rank 0's encoder is used);
    every rank returns the result."""
    pred, val_y = knn_predictions(encoder, train_dir, val_dir, image_size=image_size, device=device, k=k,
                                  temperature=temperature, batch_size=batch_size, workers=workers, progress=progress,
                                  limit=limit, distributed=distributed)
    return 100.0 * (pred == val_y).float().mean().item()


def knn_predictions(encoder: nn.Module, train_dir: str | Path, val_dir: str | Path, *, image_size: int,
                    device: torch.device, k: int = 200, temperature: float = 0.1, batch_size: int = 256,
                    workers: int = 0, progress: bool = True, limit: int | None = None,
                    distributed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, true class) of every query image, in sorted order (see `knn_top1`)."""
    train_samples, classes = scan_imagefolder(train_dir)
    val_samples, val_classes = scan_imagefolder(val_dir)
    train_samples, val_samples = evenly_spaced(train_samples, limit), evenly_spaced(val_samples, limit)
    if val_classes != classes:
        raise ValueError(f"kNN: {val_dir} and {train_dir} have different class folders")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed and dist.is_initialized() else (0, 1)
    if world > min(len(train_samples), len(val_samples)):
        raise ValueError(f"kNN: {len(train_samples)} bank and {len(val_samples)} query images for {world} "
                         f"processes; give each process at least one (raise knn.limit or add images)")
    transform = eval_transform(image_size)
    backbone = backbone_of(encoder).to(device)
    if world > 1:  # the ranks' BN statistics differ (DDP keeps them per rank): all use rank 0's, as it saves them
        broadcast_module(backbone)

    def loader(samples):
        return DataLoader(ImageList(_shard(samples, rank, world), transform, classes=classes), batch_size=batch_size,
                          shuffle=False, num_workers=workers)

    progress = progress and rank == 0
    train_f, train_y = extract_features(backbone, loader(train_samples), device, "kNN bank", progress)
    val_f, val_y = extract_features(backbone, loader(val_samples), device, "kNN queries", progress)
    if world > 1:  # every rank classifies all queries against its bank slice
        val_f, val_y = all_gather_rows(val_f, device), all_gather_rows(val_y, device)
    pred = weighted_knn_predict(train_f, train_y, val_f, num_classes=len(classes), k=k, temperature=temperature,
                                device=device if world > 1 else None)
    return pred, val_y
