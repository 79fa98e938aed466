"""The audio side: E_a (torchvision ResNet-18 with a one-channel stem) and A2V.

    f_a = A2V(E_a(A)) / ||A2V(E_a(A))||

A is the normalised log-mel [B, 1, 64, 97] (one second; `aiaic.data.audio.MelConfig`) for an E_a
trained from scratch, or the VGGSound spectrogram [B, 1, 257, 1004] (`aiaic.data.spectrogram`) for the
VGGSound-initialised E_a (`ModelConfig.audio_encoder`); the network is fully convolutional. E_a is
`torchvision.models.resnet18` with `conv1 = Conv2d(1, 64, 7, stride 2, padding 3, bias False)` and
its classifier removed, so its keys are those of the public VGGSound ResNet-18 (after stripping the
`audnet.` prefix and dropping `fc`; see `aiaic.models.pretrained`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

AUDIO_FEATURE_DIM = 512


def one_channel_resnet18(num_classes: int | None = None) -> nn.Module:
    """torchvision ResNet-18 (random init) with a one-channel 7x7 stride-2 stem.

    With `num_classes` the classifier `fc` is Linear(512, num_classes) (the VGGSound layout uses 309);
    with None it is replaced by Identity, so the output is the pooled 512-d feature.
    """
    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Linear(AUDIO_FEATURE_DIM, num_classes) if num_classes else nn.Identity()
    return net


class AudioEncoder(nn.Module):
    """E_a: audio input [B, 1, F, T] (log-mel: F = 64, T = 97; VGGSound spectrogram: F = 257,
    T = 1004) -> features [B, 512]."""

    def __init__(self) -> None:
        super().__init__()
        self.net = one_channel_resnet18(None)
        self.out_dim = AUDIO_FEATURE_DIM

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 4 or mel.shape[1] != 1:
            raise ValueError(f"E_a expects an audio input [B, 1, F, T], got {list(mel.shape)}")
        return self.net(mel)


class AudioToVisual(nn.Module):
    """A2V: E_a features [B, 512] -> f_a [B, out_dim], L2-normalised like f_v (two FC layers)."""

    def __init__(self, in_dim: int = AUDIO_FEATURE_DIM, out_dim: int = 128, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(feat), dim=1)
