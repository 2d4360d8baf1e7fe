"""MoCo (He et al., CVPR 2020, Algorithm 1): query/key encoders, momentum update, queue, InfoNCE logits.

Device- and rank-agnostic: the distributed part (key gathering, Shuffle BN) is a `BatchExchange`
given to the constructor, so the same module runs on a CPU, one GPU or many.

It is a `PretextModel` (pretext.py), the one contract the trainer uses, as is the supervised baseline
(supervised.py).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mocobench.pretrain.distributed import BatchExchange, LocalExchange


class MoCo(nn.Module):
    """Momentum Contrast.

    Args (keyword-only):
        encoder: query encoder f_q, mapping images to `dim`-d vectors; f_k starts as a deep copy of it.
        dim: feature dimension (rows of the queue).
        queue_size: K, number of negative keys; must be divisible by the global batch size.
        momentum: m in theta_k <- m*theta_k + (1-m)*theta_q (0.999 in the paper).
        temperature: T of InfoNCE (0.07 for v1, 0.2 for v2).
        exchange: how this process sees the global batch (default: one process).
        shuffle_keys: Shuffle BN: compute keys on a permuted global batch (with per-process / per-split BN).
    """

    def __init__(self, *, encoder: nn.Module, dim: int = 128, queue_size: int = 65536, momentum: float = 0.999,
                 temperature: float = 0.07, exchange: BatchExchange | None = None, shuffle_keys: bool = True) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.queue_size = queue_size
        self.momentum = momentum
        self.temperature = temperature
        self.exchange = exchange if exchange is not None else LocalExchange()
        self.shuffle_keys = shuffle_keys
        self.encoder_q = encoder
        self.encoder_k = copy.deepcopy(encoder)
        for p in self.encoder_k.parameters():
            p.requires_grad_(False)
        # the dictionary: K random unit keys, stored (dim, K) as in the official code
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @property
    def backbone(self) -> nn.Module:
        return self.encoder_q

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """encoder_q.*, encoder_k.*, queue, queue_ptr: the official MoCo checkpoint's state_dict."""
        return self.state_dict()

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state, strict=True)

    def encoders(self) -> list[nn.Module]:
        """The networks the images go through (what train.compile compiles)."""
        return [self.encoder_q, self.encoder_k]

    @staticmethod
    def step_inputs(images: torch.Tensor, targets: torch.Tensor, *,
                    memory_format: torch.memory_format = torch.contiguous_format) -> tuple[torch.Tensor, ...]:
        """(query crops, key crops) from a loader batch of pairs: N x 2 x C x H x W (targets unused)."""
        return tuple(images[:, i].contiguous(memory_format=memory_format) for i in (0, 1))

    def check_batch(self, global_batch: int) -> None:
        if global_batch <= 0 or self.queue_size % global_batch:
            raise ValueError(f"the queue size K={self.queue_size} is not divisible by the global batch size "
                             f"{global_batch} (per-process batch x world size): the queue would not wrap on a "
                             f"batch boundary. Choose moco.queue_size as a multiple of the global batch.")

    @torch.no_grad()
    def momentum_update(self, m: float | None = None) -> None:
        """theta_k <- m*theta_k + (1-m)*theta_q, fused over all parameters (no per-parameter temporaries)."""
        m = self.momentum if m is None else m
        k_params = list(self.encoder_k.parameters())
        q_params = [p.detach() for p in self.encoder_q.parameters()]
        torch._foreach_lerp_(k_params, q_params, 1.0 - m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest len(keys) entries of the queue by keys (global batch, rank order)."""
        n = keys.shape[0]
        self.check_batch(n)
        # columns ptr .. ptr+n-1 (K divisible by n: never wraps inside a batch); index arithmetic stays on the
        # device, so the step never waits for the GPU to read the pointer
        cols = self.queue_ptr + torch.arange(n, device=self.queue.device)
        self.queue.index_copy_(1, cols, keys.T.to(self.queue.dtype))
        self.queue_ptr.add_(n).remainder_(self.queue_size)

    @torch.no_grad()
    def _keys(self, im_k: torch.Tensor) -> torch.Tensor:
        if self.shuffle_keys:
            im_k, perm = self.exchange.shuffle(im_k)
            k = F.normalize(self.encoder_k(im_k).float(), dim=1)
            return self.exchange.unshuffle(k, perm)
        return F.normalize(self.encoder_k(im_k).float(), dim=1)

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor, *, momentum: float | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits (N, 1+K), labels (N,) all zero): cross-entropy of these is the InfoNCE loss."""
        self.check_batch(im_q.shape[0] * self.exchange.world_size)
        q = F.normalize(self.encoder_q(im_q).float(), dim=1)  # N x C
        self.momentum_update(momentum)  # before the keys, as in Algorithm 1
        k = self._keys(im_k)  # N x C, no gradient
        # in fp32 even under autocast, which would run the einsums' bmm in bf16/fp16: at T = 0.07 that rounds
        # the logits by up to ~0.03, on positive-negative margins of a few hundredths in cosine
        with torch.autocast(q.device.type, enabled=False):
            l_pos = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)  # positive logits: N x 1
            l_neg = torch.einsum("nc,ck->nk", q, self.queue.clone().detach().float())  # negative logits: N x K
            logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature  # N x (1+K), float32
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)  # positives are column 0
        self.enqueue(self.exchange.gather(k))
        return logits, labels
