"""The default backbone: a compact U-Net that trains on a CPU at 64 to 256 pixels.

    E (encoder):         stem at H, then `depth` stride-2 levels down to H / 2**depth
    C (colour generator): bottleneck block -> `depth` x (upsample 2x, concat the encoder's skip, conv
                          block) -> 1x1 conv to ab; the insertion point follows one of these blocks

The insertion point is the output of one of C's blocks (`guide_at`): by default the bottleneck block at
the start of C, early in the colour generator as the paper places DSG (after the first conv of DDColor's
decoder, of DISCO's refine net), so the layers after it combine the guidance with the picture. After
the last block (-1), just before the 1x1 output layer, each channel's mean is beta(c) at r = 1 and the
image's mean ab is then set by the audio alone, whatever the picture.
Conv blocks are (3x3 conv, norm, ReLU) x 2 (norm: BatchNorm by default). Widths: base_channels *
min(2**level, 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from aiaic.models.backbone_spec import BackboneSpec, InputPolicy
from aiaic.models.backbones.base import Backbone, Features
from aiaic.models.backbones.registry import BackboneSettings, register
from aiaic.models.critics import PATCH_CRITIC

NORMS = ("batch", "group", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm, GroupNorm (8 channels per group, at most 32 groups) or nothing."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(max(1, min(32, channels // 8)), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; one of {NORMS}")


def conv_block(in_ch: int, out_ch: int, norm: str = "batch", stride: int = 1) -> nn.Sequential:
    """(3x3 conv, norm, ReLU) x 2; the first conv has `stride`."""
    bias = norm == "none"
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=bias),
        make_norm(norm, out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=bias),
        make_norm(norm, out_ch),
        nn.ReLU(inplace=True),
    )


class UNetEncoder(nn.Module):
    """E: L_n [B, 1, H, W] -> features at H, H/2, ..., H/2**depth."""

    def __init__(self, widths: list[int], norm: str = "batch"):
        super().__init__()
        self.stem = conv_block(1, widths[0], norm)
        self.downs = nn.ModuleList(
            conv_block(widths[i], widths[i + 1], norm, stride=2) for i in range(len(widths) - 1)
        )

    def forward(self, L_n: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(L_n)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats


class ColorGenerator(nn.Module):
    """C: encoder features -> ab_n [B, 2, H, W]; the guide goes on the output of one of its blocks.

    `guide_at` = 0 (the default) puts the insertion point after `bottleneck` (H / 2**depth, named
    "generator.bottleneck"), at the start of C; k in 1..depth after the k-th up block
    ("generator.ups.<k-1>.block", at H / 2**(depth - k)); -1 after the last up block, at full
    resolution, right before the 1x1 head (the mean colour then ignores the picture at r = 1).
    """

    def __init__(self, widths: list[int], norm: str = "batch", guide_at: int = 0):
        super().__init__()
        depth = len(widths) - 1
        if not -1 <= guide_at <= depth:
            raise ValueError(f"guide_at must be in -1..{depth}, got {guide_at}")
        guide_at = depth if guide_at == -1 else guide_at
        self.guide_at = guide_at
        self.insertion_point = (
            "generator.bottleneck" if guide_at == 0 else f"generator.ups.{guide_at - 1}.block"
        )
        self.insertion_channels = widths[depth - guide_at]
        self.bottleneck = conv_block(widths[-1], widths[-1], norm)
        ups = []
        for i in range(len(widths) - 1, 0, -1):
            ups.append(
                nn.ModuleDict(
                    {
                        "reduce": nn.Conv2d(widths[i], widths[i - 1], 1),
                        "block": conv_block(2 * widths[i - 1], widths[i - 1], norm),
                    }
                )
            )
        self.ups = nn.ModuleList(ups)
        self.head = nn.Conv2d(widths[0], 2, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        h = self.bottleneck(feats[-1])
        for up, skip in zip(self.ups, reversed(feats[:-1]), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            up = cast(nn.ModuleDict, up)
            h = up["block"](torch.cat([up["reduce"](h), skip], dim=1))
        return self.head(h)


class UNetColorizer(Backbone):
    """Compact U-Net backbone: L_n [B, 1, H, W] -> ab_n [B, 2, H, W]; H, W multiples of 2**depth.

    Args:
        base_channels: width at full resolution.
        depth: number of 2x downsamplings; the insertion point is at H / 2**depth.
        norm: "batch", "group" or "none" after each conv.
        guide_at: where in C the guide goes (0 = after the bottleneck, the default; -1 = after the last
            up block; see `ColorGenerator`).
    """

    def __init__(self, *, base_channels: int = 32, depth: int = 3, norm: str = "batch", guide_at: int = 0):
        super().__init__()
        widths = [base_channels * min(2**i, 4) for i in range(depth + 1)]
        self.encoder = UNetEncoder(widths, norm)
        self.generator = ColorGenerator(widths, norm, guide_at)
        self.insertion_point = self.generator.insertion_point
        self.insertion_channels = self.generator.insertion_channels
        self.feature_dim = 2 * widths[-1]  # length of `pool(feats)`
        self.input_policy = InputPolicy(size_multiple=2**depth)

    def encode(self, L_n: torch.Tensor) -> Features:
        """E(L_n): the encoder's features at H, H/2, ..., H/2**depth (what `decode` takes)."""
        self.check_input(L_n)
        return self.encoder(L_n)

    def decode(self, feats: Features) -> torch.Tensor:
        """C(feats) -> ab_n [B, 2, H, W] (the U-Net predicts ab_n directly)."""
        return self.generator(feats)

    def pool(self, feats: Features) -> torch.Tensor:
        """The deepest of `encode`'s features, pooled: per-channel spatial mean and std, [B, feature_dim]."""
        h = feats[-1]
        return torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3), unbiased=False)], dim=1)


@dataclass(frozen=True)
class UNetOptions:
    """The U-Net's `[model.backbone_options]`.

    base_channels: width at full resolution (doubles per level, capped at 4x).
    depth: number of 2x downsamplings (image sides must be multiples of 2**depth).
    norm: normalisation after each conv: "batch", "group" or "none".
    guide_at: the insertion point in C: 0 = at the start of its decoder, after the bottleneck block
        (H / 2**depth; the default, early in C as the paper places DSG), k = after its k-th upsampling
        block (H / 2**(depth - k)), -1 = after its last block, just before the 1x1 output layer
        (there, at r = 1, the audio alone sets the image's mean colour).
    """

    base_channels: int = 32
    depth: int = 3
    norm: Literal["batch", "group", "none"] = "batch"
    guide_at: int = 0

    def __post_init__(self) -> None:
        if self.base_channels < 4:
            raise ValueError(f"base_channels must be >= 4, got {self.base_channels}")
        if not 1 <= self.depth <= 6:
            raise ValueError(f"depth must be in 1..6, got {self.depth}")
        if not -1 <= self.guide_at <= self.depth:
            raise ValueError(f"guide_at must be in -1..depth={self.depth}, got {self.guide_at}")


SPEC = BackboneSpec(
    name="unet",
    options=UNetOptions,
    input_for=lambda o: InputPolicy(size_multiple=2**o.depth, default_size=256),
    loss={"huber": 1.0},
    critic=PATCH_CRITIC,  # for a recipe that adds an adversarial term
    description="compact U-Net that trains on a CPU (no released weights)",
)


@register(SPEC)
def build_unet(options: UNetOptions, cfg: BackboneSettings) -> UNetColorizer:
    """The compact U-Net, sized by its options."""
    return UNetColorizer(
        base_channels=options.base_channels, depth=options.depth, norm=options.norm, guide_at=options.guide_at
    )
