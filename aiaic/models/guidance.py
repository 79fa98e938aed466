"""Semantic guidance (SG, AdaIN) and dynamic semantic guidance (DSG, gated by a per-sample r).

    SG(x, c)     = gamma(c) * (x - mu(x)) / sigma(x) + beta(c)      (gamma, beta: two FC layers each)
    DSG(x, c, r) = r * SG(x, c) + (1 - r) * x                         (r in [0, 1], one per sample)

mu and sigma are per sample and per channel over the spatial axes. With r = 0 DSG returns x itself,
so a backbone guided by DSG with r = 0 is the plain backbone.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn


def _two_fc(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


class SemanticGuidance(nn.Module):
    """SG: AdaIN whose scale gamma(c) and shift beta(c) are predicted from the condition c.

    Args:
        channels: channels C of the feature map it modulates.
        cond_dim: length of c.
        hidden: hidden width of the two-layer gamma and beta networks.
        eps: added to the variance before the square root.
    """

    def __init__(self, channels: int, cond_dim: int, hidden: int = 128, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = _two_fc(cond_dim, hidden, channels)
        self.beta = _two_fc(cond_dim, hidden, channels)
        # start as the identity-like AdaIN: gamma ~ 1, beta ~ 0
        gamma_out, beta_out = cast(nn.Linear, self.gamma[2]), cast(nn.Linear, self.beta[2])
        nn.init.zeros_(gamma_out.weight)
        nn.init.ones_(gamma_out.bias)
        nn.init.zeros_(beta_out.weight)
        nn.init.zeros_(beta_out.bias)

    def scale_shift(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """c [B, cond_dim] -> (gamma [B, C], beta [B, C])."""
        return self.gamma(c), self.beta(c)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W], c [B, cond_dim] -> [B, C, H, W] with per-channel mean beta and std |gamma|."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"SG expects [B, {self.channels}, H, W], got {list(x.shape)}")
        gamma, beta = self.scale_shift(c)
        mu = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
        x_norm = (x - mu) / torch.sqrt(var + self.eps)
        return gamma[:, :, None, None] * x_norm + beta[:, :, None, None]


class DynamicSemanticGuidance(nn.Module):
    """DSG: r * SG(x, c) + (1 - r) * x with r [B] in [0, 1]; r = 0 returns x exactly."""

    def __init__(self, channels: int, cond_dim: int, hidden: int = 128, eps: float = 1e-5):
        super().__init__()
        self.sg = SemanticGuidance(channels, cond_dim, hidden, eps)

    def forward(self, x: torch.Tensor, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W], c [B, cond_dim], r [B] (float in [0, 1]) -> [B, C, H, W]."""
        if r.dim() != 1 or r.shape[0] != x.shape[0]:
            raise ValueError(f"DSG expects r of shape [{x.shape[0]}], got {list(r.shape)}")
        r4 = r.to(x.dtype)[:, None, None, None]
        guided = self.sg(x, c)
        # where r == 0 use x untouched (also keeps a non-finite SG from leaking through 0 * inf)
        mixed = r4 * guided + (1.0 - r4) * x
        return torch.where(r4 == 0, x, mixed)
