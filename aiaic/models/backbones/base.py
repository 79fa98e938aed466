"""The backbone contract: what a colorization backbone gives the audio-infused model.

A backbone is the paper's encoder E and colour generator C. The rest of aiaic sees one convention,
whatever the backbone's own:

    feats = net.encode(L_n)                 # E: L_n [B, 1, H, W] = (L - 50) / 50 -> its features
    ab_n = net.decode(feats, guide)         # C: -> ab_n [B, 2, H, W] = ab / 110, with `guide`
                                            #    applied at `insertion_point` inside C
    ab_n = net(L_n, guide=None, feats=None) # decode(encode(L_n)) (or the `feats` given)
    v = net.pool(feats)                     # [B, feature_dim], an image descriptor (relevance net)

Each backbone converts to and from its own input and output convention inside `encode`/`decode`
(the U-Net reads L_n and predicts ab_n directly; DDColor reads the grey image as RGB in [0, 1] with
ImageNet normalisation inside and predicts ab in Lab units). `guide` maps the feature map at the
insertion point [B, insertion_channels, h, w] to one of the same shape; `guide=None` is the plain
backbone, bit for bit.

Class attributes and methods a backbone declares:
    insertion_point: dotted name of the module whose output the guide replaces ("decoder.layers.0").
    insertion_channels: channels of that feature map.
    feature_dim: length of `pool(feats)`.
    size_multiple: H and W must be multiples of this.
    loss_terms: its own colour loss, term name -> weight (see `aiaic.train.losses`).
    optimizer: its own optimizer settings (name, lr, betas, weight_decay), what its authors trained with.
    load_pretrained(path): read a released weight file into the module (strict; see `aiaic.models.weights`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from aiaic.errors import ConfigError

Guide = Callable[[torch.Tensor], torch.Tensor]
Features = list[torch.Tensor]


@dataclass(frozen=True)
class OptimizerDefaults:
    """The optimizer a backbone's authors trained it with (a stage's recipe may override each field)."""

    name: str = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


class Backbone(nn.Module):
    """Base class of every registered backbone (see the module docstring for the contract)."""

    insertion_point: str
    insertion_channels: int
    feature_dim: int
    size_multiple: int
    loss_terms: ClassVar[Mapping[str, float]] = {"huber": 1.0}
    optimizer: ClassVar[OptimizerDefaults] = OptimizerDefaults()
    # True where some parameters serve `pool` only, so a colour stage leaves them without gradient
    # (DistributedDataParallel must then look for unused parameters)
    has_unused_parameters: ClassVar[bool] = False

    def encode(self, L_n: torch.Tensor) -> Features:
        """E(L_n): L_n [B, 1, H, W] -> the encoder's features (what `decode` and `pool` take)."""
        raise NotImplementedError

    def decode(self, feats: Features, guide: Guide | None = None) -> torch.Tensor:
        """C(feats) -> ab_n [B, 2, H, W], with `guide` applied at `insertion_point`."""
        raise NotImplementedError

    def pool(self, feats: Features) -> torch.Tensor:
        """A global descriptor of `encode`'s features, [B, feature_dim]."""
        raise NotImplementedError

    def forward(
        self, L_n: torch.Tensor, guide: Guide | None = None, feats: Features | None = None
    ) -> torch.Tensor:
        """ab_n [B, 2, H, W]; `feats`: `encode(L_n)` when the caller already has it (E then does not run)."""
        return self.decode(self.encode(L_n) if feats is None else feats, guide)

    def pooled_features(self, L_n: torch.Tensor) -> torch.Tensor:
        """pool(encode(L_n)), [B, feature_dim]."""
        return self.pool(self.encode(L_n))

    def check_input(self, L_n: torch.Tensor) -> None:
        """ValueError unless L_n is [B, 1, H, W] with H and W multiples of `size_multiple`."""
        if L_n.dim() != 4 or L_n.shape[1] != 1:
            raise ValueError(f"the backbone expects L_n [B, 1, H, W], got {list(L_n.shape)}")
        m = self.size_multiple
        if L_n.shape[-1] % m or L_n.shape[-2] % m:
            raise ValueError(
                f"image side must be a multiple of {m} for {type(self).__name__}, got {list(L_n.shape)}"
            )

    def load_pretrained(self, path: Path) -> dict[str, Any]:
        """Load a released weight file; returns what was read (file, keys, ignored keys). A backbone
        without released weights refuses with ConfigError."""
        raise ConfigError(f"{path}: backbone {type(self).__name__} has no released weights to load")
