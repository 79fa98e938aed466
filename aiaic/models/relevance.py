"""The relevance net: how much the sound should steer the colours of this frame.

    r = sigmoid(w * cos(h_a(E_a'(A)), h_v(E_v(X))) + b)

E_a' and E_v are pretrained encoders (frozen; `aiaic.models.colorizer` supplies their features),
h_a and h_v trainable two-layer heads, w and b trainable scalars. Trained with BCE against 1 for a
true pair and 0 for audio taken from another video. With no audio, r = 0 (the caller masks it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """BatchNorm1d, then two FC.

    The frozen encoders' features come at any scale (E_s, VGG-19, ResNet-18), and the ones that tell a
    scene apart may be those with the smallest spread. BatchNorm standardises each feature over the data;
    LayerNorm (tried first) only rescales each sample, and on the demo corpus the heads then needed about
    four times as many steps to break the symmetry between "same scene" and "other scene" (one seed in six
    stayed at chance for the whole demo schedule). In eval mode (every stage after `rnet`) the running
    statistics apply, so r of a sample never depends on the rest of its batch.
    """
    return nn.Sequential(
        nn.BatchNorm1d(in_dim), nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
    )


class RelevanceNet(nn.Module):
    """Heads h_a, h_v and the scalars w, b.

    Args:
        audio_dim: length of the audio encoder's features (512 for ResNet-18).
        image_dim: length of the image encoder's features.
        embed_dim: length of h_a and h_v.
        hidden: hidden width of each head.
        init_scale: initial w (the cosine is in [-1, 1], so w sets how sharp r can be).
    """

    def __init__(
        self, audio_dim: int, image_dim: int, embed_dim: int = 64, hidden: int = 128, init_scale: float = 5.0
    ):
        super().__init__()
        self.h_a = _head(audio_dim, hidden, embed_dim)
        self.h_v = _head(image_dim, hidden, embed_dim)
        self.w = nn.Parameter(torch.tensor(float(init_scale)))
        self.b = nn.Parameter(torch.tensor(0.0))

    def logits(self, audio_feat: torch.Tensor, image_feat: torch.Tensor) -> torch.Tensor:
        """audio_feat [B, audio_dim], image_feat [B, image_dim] -> w * cos + b, [B] (before the sigmoid).

        In training mode the heads' BatchNorm needs B >= 2 and normalises with this call's batch: score
        true and other pairs in one call (as the `rnet` objective does) so both see the same statistics.
        """
        cos = F.cosine_similarity(self.h_a(audio_feat), self.h_v(image_feat), dim=1, eps=1e-6)
        return self.w * cos + self.b

    def forward(self, audio_feat: torch.Tensor, image_feat: torch.Tensor) -> torch.Tensor:
        """-> r [B] in (0, 1)."""
        return torch.sigmoid(self.logits(audio_feat, image_feat))
