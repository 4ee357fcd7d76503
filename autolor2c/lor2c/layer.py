"""The trainable pieces of LoR2C: a low-rank bypass over a span of layers, and the LoRA put into a
projection when a bypass is injected. Both start as an exact no-op (B = 0)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _lora_init_(a: torch.Tensor) -> None:
    # Same as LoRA's A (and nn.Linear's default): Kaiming-uniform with a = sqrt(5).
    nn.init.kaiming_uniform_(a, a=math.sqrt(5))


class Bypass(nn.Module):
    """delta = B @ A @ dropout(h) * alpha / rank, added to the output of layer ``last``.

    With a shared A (ShareLoR2C) the bypass owns only B and receives A at call time.
    """

    def __init__(self, first: int, last: int, hidden_size: int, rank: int, alpha: float,
                 dropout: float, own_a: bool = True):
        super().__init__()
        self.first, self.last = int(first), int(last)
        self.rank, self.alpha = int(rank), float(alpha)
        self.A = nn.Parameter(torch.empty(rank, hidden_size)) if own_a else None
        self.B = nn.Parameter(torch.zeros(hidden_size, rank))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if self.A is not None:
            _lora_init_(self.A)

    @property
    def span(self) -> list[int]:
        return [self.first, self.last]

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def forward(self, h: torch.Tensor, shared_a: torch.Tensor | None = None) -> torch.Tensor:
        a = self.A if self.A is not None else shared_a
        x = self.dropout(h).to(a.dtype)
        return F.linear(F.linear(x, a), self.B) * self.scaling

    def update(self, shared_a: torch.Tensor | None = None) -> torch.Tensor:
        """The unscaled update B @ A (d x d), used for spectrum scores."""
        a = self.A if self.A is not None else shared_a
        return self.B @ a

    def extra_repr(self) -> str:
        return f"span=[{self.first}, {self.last}], rank={self.rank}, alpha={self.alpha}"


class InjectedLoRA(nn.Module):
    """LoRA on one projection: adds B @ A @ dropout(x) * alpha / rank to the projection's output."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.rank, self.alpha = int(rank), float(alpha)
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        _lora_init_(self.A)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(self.dropout(x).to(self.A.dtype), self.A), self.B) * self.scaling


def low_rank_singular_values(b: torch.Tensor, a: torch.Tensor, full_dim: int) -> torch.Tensor:
    """All ``full_dim`` singular values of B @ A (B: d x r, A: r x d) from an r x r core.

    B = Qb Rb and A^T = Qa Ra give B A = Qb (Rb Ra^T) Qa^T, whose non-zero singular values are
    those of the small core; the remaining d - r are zero.
    """
    b, a = b.detach().float(), a.detach().float()
    _, rb = torch.linalg.qr(b)
    _, ra = torch.linalg.qr(a.T)
    s = torch.linalg.svdvals(rb @ ra.T)
    pad = full_dim - s.numel()
    return torch.cat([s, s.new_zeros(pad)]) if pad > 0 else s


def sfs_score(singular_values: torch.Tensor, criterion: str, k: int) -> float:
    """The paper's shape-of-feature-space score: the mean singular value ("mean"), or the share of the
    top-k singular values in their sum ("topk")."""
    s = singular_values
    if criterion == "mean":
        return float(s.mean())
    if criterion == "topk":
        total = float(s.sum())
        return float(s[:k].sum()) / total if total > 0 else 0.0
    raise ValueError(f"unknown spectrum criterion {criterion!r}")
