"""Colorization backbones: a name-to-builder registry.

A backbone maps L_n [B, 1, H, W] to ab_n [B, 2, H, W] through an encoder E and a colour generator C,
and calls `guide(features)` at one named insertion point inside C (where DSG goes)::

    net = build_backbone("unet", base_channels=32, depth=3)
    ab_n = net(L_n, guide=None)                # the plain backbone
    ab_n = net(L_n, guide=lambda h: dsg(h, c, r))

Every backbone exposes `insertion_point` (the name of the point), `insertion_channels` (channels
of the feature map the guide receives), `encode(L_n)` (its encoder's features, which `forward` also
takes as `feats=` so that one encoder pass can serve twice), `pool(feats) -> [B, feature_dim]` and
`pooled_features(L_n)` (the encoder's pooled features, which the relevance net can use as its image
encoder).
Register a new one with `@register("name")`.
"""

from __future__ import annotations

from aiaic.models.backbones.registry import available, build_backbone, register
from aiaic.models.backbones.unet import UNetColorizer

__all__ = ["UNetColorizer", "available", "build_backbone", "register"]
