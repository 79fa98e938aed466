"""Scene semantics from the colour image: E_s and the MLP to the guidance condition c.

    f_v = E_s(Y_rgb) / ||E_s(Y_rgb)||,   E_s = four (conv, ReLU, pool) blocks + two linear layers
    c   = MLP(f_v)

E_s sees the colour target only during training (stage 1); later the audio's f_a takes its place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SemanticEncoder(nn.Module):
    """E_s: RGB [B, 3, H, W] in [0, 1] -> f_v [B, out_dim], unit L2 norm.

    Args:
        channels: output channels of the four conv-ReLU-pool blocks (3x3 conv, ReLU, 2x2 max pool).
        out_dim: length of f_v.
        hidden: width of the first of the two linear layers (defaults to the last block's channels).
        in_channels: 3 for RGB; a grey frame is fed as three equal channels.
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 128, 256),
        out_dim: int = 128,
        hidden: int | None = None,
        in_channels: int = 3,
    ):
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"E_s has four blocks, got channels={list(channels)}")
        blocks: list[nn.Module] = []
        prev = in_channels
        for ch in channels:
            blocks += [nn.Conv2d(prev, ch, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            prev = ch
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = prev
        hidden = hidden or prev
        self.fc1 = nn.Linear(prev, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.out_dim = out_dim

    def features(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB [B, 3, H, W] in [0, 1] -> pooled block features [B, feature_dim] (before the linear layers)."""
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"E_s expects RGB [B, 3, H, W], got {list(rgb.shape)}")
        h = self.blocks(rgb * 2.0 - 1.0)
        return h.mean(dim=(2, 3))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB [B, 3, H, W] in [0, 1] -> f_v [B, out_dim], L2-normalised."""
        h = F.relu(self.fc1(self.features(rgb)))
        return F.normalize(self.fc2(h), dim=1)


class ConditionMLP(nn.Module):
    """The MLP from a normalised semantic vector (f_v or f_a) [B, in_dim] to c [B, out_dim]."""

    def __init__(self, in_dim: int = 128, out_dim: int = 128, hidden: int | None = None):
        super().__init__()
        hidden = hidden or out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)
