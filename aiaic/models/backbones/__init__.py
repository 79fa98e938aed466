"""Colorization backbones as plugins: one module per backbone behind one contract, and a registry.

The contract (`base.Backbone`, documented there in full): `encode(L_n)` runs the encoder E on
L_n [B, 1, H, W]; `decode(feats, guide)` runs the colour generator C and returns ab_n [B, 2, H, W],
calling `guide(h)` on the feature map at the backbone's named `insertion_point` (where DSG goes);
`pool(feats)` gives a [B, feature_dim] descriptor; each backbone converts to its own input and
output convention inside, declares its own colour loss terms and optimizer, and loads its released
weight files with `load_pretrained`::

    net = build_backbone("unet", ModelConfig())
    ab_n = net(L_n)                                  # the plain backbone
    ab_n = net(L_n, guide=lambda h: dsg(h, c, r))   # guided at net.insertion_point

A new backbone is one file that subclasses `Backbone` and registers a builder with
`@register("name")`, plus its import line below.
"""

from __future__ import annotations

from aiaic.models.backbones import chromagan, ddcolor, unet  # noqa: F401  (register "chromagan*", "ddcolor-*", "unet")
from aiaic.models.backbones.base import Backbone, Features, Guide, OptimizerDefaults
from aiaic.models.backbones.registry import available, build_backbone, register
from aiaic.models.backbones.unet import UNetColorizer

__all__ = [
    "Backbone",
    "Features",
    "Guide",
    "OptimizerDefaults",
    "UNetColorizer",
    "available",
    "build_backbone",
    "register",
]
