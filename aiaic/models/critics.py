"""Critics: the networks an adversarial colour-loss term trains against (architecture only; their
training step and losses are `aiaic.train.discriminator`). A backbone's `BackboneSpec.critic` names
one (`CriticSpec.build`).

`PatchDiscriminator` follows DDColor's `DynamicUNetDiscriminator` (the fastai DeOldify critic):
spectral-normalised convolutions with ReLU, no batch norm, a 4x4 stride-2 convolution to start and one
per block (3x3 stride-1 before each), the width doubling per block, self-attention after the first
block, and a map of patch logits at the end. Here the last convolution is 3x3 with padding (DDColor's is
4x4 without), so images down to 2**(blocks + 1) pixels keep at least one patch.

    logits = D(rgb)    # RGB [B, 3, H, W] in [0, 1] -> [B, (H / 2**(blocks+1)) * (W / 2**(blocks+1))]
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from aiaic.models.backbone_spec import CriticSpec, OptimizerDefaults


def _sn_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, bias: bool = True) -> nn.Module:
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=1, bias=bias)
    nn.init.kaiming_normal_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return spectral_norm(conv)


class SelfAttention(nn.Module):
    """SAGAN self-attention over the pixels of [B, C, H, W]; starts as the identity (gamma = 0)."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 8)
        self.query = spectral_norm(nn.Conv1d(channels, inner, 1, bias=False))
        self.key = spectral_norm(nn.Conv1d(channels, inner, 1, bias=False))
        self.value = spectral_norm(nn.Conv1d(channels, channels, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        attn = torch.softmax(torch.bmm(self.query(flat).transpose(1, 2), self.key(flat)), dim=1)
        return (self.gamma * torch.bmm(self.value(flat), attn) + flat).reshape(b, c, h, w)


class PatchDiscriminator(nn.Module):
    """D: RGB [B, 3, H, W] in [0, 1] -> patch logits [B, N] (see the module docstring).

    Args:
        channels: width after the first convolution (DDColor: 64); doubles in each block.
        blocks: downsampling blocks after the first convolution (DDColor: 3).
    """

    def __init__(self, channels: int = 64, blocks: int = 3):
        super().__init__()
        layers: list[nn.Module] = [_sn_conv(3, channels, 4, stride=2), nn.ReLU(inplace=True)]
        width = channels
        for i in range(blocks):
            layers += [
                _sn_conv(width, width, 3),
                nn.ReLU(inplace=True),
                _sn_conv(width, 2 * width, 4, stride=2),
                nn.ReLU(inplace=True),
            ]
            width *= 2
            if i == 0:
                layers.append(SelfAttention(width))
        layers += [_sn_conv(width, width, 3), nn.ReLU(inplace=True), _sn_conv(width, 1, 3, bias=False)]
        self.layers = nn.Sequential(*layers)
        self.min_size = 2 ** (blocks + 1)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        if rgb.shape[-1] < self.min_size or rgb.shape[-2] < self.min_size:
            raise ValueError(
                f"the discriminator needs images of at least {self.min_size} px, got {list(rgb.shape)}"
            )
        return self.layers(rgb * 2.0 - 1.0).flatten(1)


# DDColor's critic and recipe: a vanilla GAN on RGB, Adam lr 1e-4, betas (0.9, 0.99), no weight decay
PATCH_CRITIC = CriticSpec(
    build=PatchDiscriminator,
    input="rgb",
    loss="vanilla",
    channels=64,
    blocks=3,
    optimizer=OptimizerDefaults("adam", 1e-4, (0.9, 0.99), 0.0),
)
