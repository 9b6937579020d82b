"""The causal transformer blocks the code priors share, with cached keys and values for sampling.

A block is pre-norm attention plus an MLP; ``run_blocks`` runs a stack of them, each reusing
its cached keys/values, so that drawing a grid cell by cell costs one position per step.

>>> blocks = nn.ModuleList(Block(dim=16, heads=2, dropout=0.0) for _ in range(2))
>>> h, cache = run_blocks(blocks, torch.randn(3, 5, 16), None)                # (B, T, D)
>>> h.shape, cache[0][0].shape                                               # keys (B, H, T, d)
(torch.Size([3, 5, 16]), torch.Size([3, 2, 5, 8]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` of q (B, H, T, d) against k, v (B, H, S, d); under
    bf16 autocast on a CPU it runs in fp32 (the matmuls around it stay bf16): there its bf16
    backward is about ten times slower than fp32's (87 against 9 ms a call at the shipped
    size, 128 grids x 49 cells, on this repository's 2-core CPU).

    >>> q = torch.randn(2, 4, 49, 8)
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     attention(q, q, q, is_causal=True).dtype
    torch.float32
    """
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kwargs)
    return F.scaled_dot_product_attention(q, k, v, **kwargs)


class Block(nn.Module):
    """Pre-norm transformer block whose attention can reuse cached keys/values."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, past: tuple | None) -> tuple[torch.Tensor, tuple]:
        b, t, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).view(b, t, 3, self.heads, d // self.heads).permute(
            2, 0, 3, 1, 4)                                                   # 3 x (B, H, T, d/H)
        mask = None
        if past is not None:  # new positions see every cached position and the new ones up to themselves
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)   # (B, H, P+T, d/H)
            p = k.shape[2] - t
            if t > 1:  # one new position (sampling) sees everything: no mask to build
                mask = torch.ones(t, p + t, dtype=torch.bool, device=h.device).tril(p)
        a = attention(q, k, v, attn_mask=mask, is_causal=past is None,
                      dropout_p=self.drop.p if self.training else 0.0)       # (B, H, T, d/H)
        h = h + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))  # (B, T, D)
        h = h + self.drop(self.mlp(self.ln2(h)))
        return h, (k, v)


def run_blocks(blocks: nn.ModuleList, h: torch.Tensor, cache: list | None
               ) -> tuple[torch.Tensor, list]:
    """Hidden states (B, T, D) through the blocks, each reusing its cached keys/values;
    returns the new states and every block's keys/values (the next step's cache)."""
    new_cache = []
    for i, block in enumerate(blocks):
        h, kv = block(h, None if cache is None else cache[i])
        new_cache.append(kv)
    return h, new_cache
