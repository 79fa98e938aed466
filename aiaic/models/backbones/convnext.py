"""ConvNeXt (Liu et al., 2022) as DDColor's encoder, with DDColor's extra per-stage norms.

    x [B, 3, H, W] -> stem (4x4 conv, stride 4) -> stage 0 -> norm0 -> [B, dims[0], H/4, W/4]
                   -> down (2x2, stride 2) -> stage 1 -> norm1 -> [B, dims[1], H/8, W/8]
                   -> ...                              -> norm3 -> [B, dims[3], H/32, W/32]

Each stage is a stack of blocks: depthwise 7x7 conv, LayerNorm over channels, Linear to 4x width,
GELU, Linear back, scaled per channel by a learned `gamma`, added to the input. The outputs of
`norm0`..`norm3` (channels-first LayerNorms) are the skip features DDColor's decoder reads; the
stages themselves continue from the un-normalised maps. `norm` (a channels-last LayerNorm of the
globally averaged deepest map) is ConvNeXt's own image descriptor. Parameter names follow the
official checkpoints (`downsample_layers`, `stages`, `norm0`..`norm3`, `norm`).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a [B, C, H, W] map (mean and biased variance per position)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        x = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    """x + gamma * MLP(LN(dwconv7x7(x))), [B, C, H, W] -> same shape."""

    def __init__(self, dim: int, layer_scale: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).permute(0, 2, 3, 1)  # channels last for the LayerNorm and the Linears
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """The four-stage encoder: RGB [B, in_chans, H, W] (H, W multiples of 32) -> skip features.

    Args:
        depths: blocks per stage ((3, 3, 9, 3) is ConvNeXt-T, (3, 3, 27, 3) ConvNeXt-L).
        dims: channels per stage ((96, 192, 384, 768) ConvNeXt-T, (192, 384, 768, 1536) ConvNeXt-L).
        in_chans: input channels.
        checkpoint_stages: recompute each stage's activations in the backward pass instead of storing
            them (activation checkpointing; applies only while training with gradients).
    """

    def __init__(
        self,
        depths: tuple[int, ...],
        dims: tuple[int, ...],
        in_chans: int = 3,
        checkpoint_stages: bool = False,
    ):
        super().__init__()
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"ConvNeXt needs four stages, got depths {depths} and dims {dims}")
        self.dims = tuple(dims)
        self.checkpoint_stages = checkpoint_stages
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0]))]
            + [
                nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
                for i in range(3)
            ]
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(dims[i]) for _ in range(depths[i]))) for i in range(4)
        )
        for i in range(4):
            self.add_module(f"norm{i}", LayerNorm2d(dims[i]))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """x [B, in_chans, H, W] -> ([norm0..norm3 outputs, at H/4 .. H/32], the deepest map before
        its norm, [B, dims[3], H/32, W/32])."""
        skips = []
        for i in range(4):
            x = self.downsample_layers[i](x)
            stage = self.stages[i]
            if self.checkpoint_stages and self.training and torch.is_grad_enabled():
                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
            skips.append(getattr(self, f"norm{i}")(x))
        return skips, x

    def in_channels_last(self) -> bool:
        """Whether the weights were put in channels-last layout (then inputs should be too)."""
        stem = cast(torch.Tensor, cast(nn.Sequential, self.downsample_layers[0])[0].weight)
        return stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()

    def descriptor(self, deepest: torch.Tensor) -> torch.Tensor:
        """ConvNeXt's global image descriptor: LayerNorm of the spatial mean, [B, dims[3]]."""
        return self.norm(deepest.mean(dim=(-2, -1)))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)) and not m.weight.is_meta:
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
