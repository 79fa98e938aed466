"""The discriminator of the adversarial colour-loss term, and its training step.

`PatchDiscriminator` follows DDColor's `DynamicUNetDiscriminator` (the fastai DeOldify critic):
spectral-normalised convolutions with ReLU, no batch norm, a 4x4 stride-2 convolution to start and one
per block (3x3 stride-1 before each), the width doubling per block, self-attention after the first
block, and a map of patch logits at the end. Here the last convolution is 3x3 with padding (DDColor's is
4x4 without), so images down to 2**(blocks + 1) pixels keep at least one patch.

    logits = D(rgb)    # RGB [B, 3, H, W] in [0, 1] -> [B, (H / 2**(blocks+1)) * (W / 2**(blocks+1))]

`DiscriminatorTrainer` trains it alongside the colorizer (DDColor's recipe: a vanilla GAN, BCE with
real = 1 on the ground truth's RGB, fake = 0 on the prediction's, Adam lr 1e-4, betas (0.9, 0.99)):
one step after each of the colorizer's, on the same batch. Under torchrun it is wrapped in its own
DistributedDataParallel. Its weights and optimizer state go into the stage's checkpoint (state.pt).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from aiaic.runs.checkpoint import model_tensors
from aiaic.train.distributed import DistInfo, wrap_ddp
from aiaic.train.precision import MixedPrecision


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


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(D(real), 1) + BCE(D(fake), 0), each a mean over patches and samples (DDColor's l_d)."""
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


class DiscriminatorTrainer:
    """The discriminator, its optimizer, and the step that trains it after each colorizer step.

    Args:
        discriminator: the module (on the training device).
        optimizer: optimises `discriminator.parameters()`.
        amp: the loop's mixed precision (shared gradient scaler).
        dist_info: wraps the module in DistributedDataParallel when a process group exists.
    """

    def __init__(
        self,
        discriminator: PatchDiscriminator,
        optimizer: torch.optim.Optimizer,
        amp: MixedPrecision,
        dist_info: DistInfo,
    ):
        self.module = discriminator
        self.optimizer = optimizer
        self.amp = amp
        self.wrapped = wrap_ddp(discriminator, dist_info)

    def step(self, real_rgb: torch.Tensor, fake_rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on RGB [B, 3, H, W] of the truth and of the (detached) prediction.

        Returns {"d_loss", "d_real", "d_fake"}: the loss and D's mean probability of "real" on each.
        """
        self.module.train()
        self.module.requires_grad_(True)
        n = real_rgb.shape[0]
        with self.amp.autocast():  # one pass over both halves: no batch norm couples them
            logits = self.wrapped(torch.cat([real_rgb.detach(), fake_rgb.detach()])).float()
        real, fake = logits[:n], logits[n:]
        loss = discriminator_loss(real, fake)
        self.optimizer.zero_grad(set_to_none=True)
        self.amp.backward(loss)
        self.amp.step(self.optimizer)
        with torch.no_grad():
            return {
                "d_loss": loss.detach(),
                "d_real": torch.sigmoid(real).mean(),
                "d_fake": torch.sigmoid(fake).mean(),
            }

    def state_dict(self) -> dict[str, Any]:
        """{"weights": the module's tensors (CPU), "optimizer": its state} (weights_only-loadable)."""
        return {
            "weights": model_tensors(self.module),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["weights"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])


def build_discriminator_trainer(
    channels: int, blocks: int, lr: float, betas: tuple[float, ...], amp: MixedPrecision, dist_info: DistInfo
) -> DiscriminatorTrainer:
    """A fresh PatchDiscriminator on the rank's device with DDColor's Adam (no weight decay)."""
    disc = PatchDiscriminator(channels, blocks).to(dist_info.device)
    opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=(betas[0], betas[1]))
    return DiscriminatorTrainer(disc, opt, amp, dist_info)
