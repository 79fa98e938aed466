"""Colorization backbones as plugins: one file per backbone behind one contract, and a registry.

The contract (`base.Backbone`, documented there in full): `encode(L_n)` runs the encoder E on
L_n [B, 1, H, W]; `decode(feats)` runs the colour generator C and returns ab_n [B, 2, H, W]
(`decode_outputs` adds the backbone's named extras); a guide given to `net(L_n, guide=...)` replaces
the output of the module named `insertion_point` (a forward hook: where DSG goes); `pool(feats)`
gives a [B, feature_dim] descriptor. What a backbone declares besides its architecture (input policy,
released weight sets and their reader, optimizer and colour-loss defaults, critic, runtime flags,
options table) is its `BackboneSpec` (`aiaic.models.backbone_spec`), registered with its builder::

    net = build_backbone("unet", ModelConfig())
    ab_n = net(L_n)                                  # the plain backbone
    ab_n = net(L_n, guide=lambda h: dsg(h, c, r))   # guided at net.insertion_point
    spec_of("ddcolor-tiny").input.default_size      # 512

A new backbone is one file that subclasses `Backbone` and registers its builders with
`@register(BackboneSpec(...))`, plus its import line below (docs/adding-a-backbone.md).
"""

from __future__ import annotations

from aiaic.models.backbones import chromagan, ddcolor, disco, unet  # noqa: F401  (register each backbone)
from aiaic.models.backbones.base import Backbone, BackboneOutput, Features, Guide, OptimizerDefaults
from aiaic.models.backbones.registry import available, build_backbone, register, spec_of
from aiaic.models.backbones.unet import UNetColorizer

__all__ = [
    "Backbone",
    "BackboneOutput",
    "Features",
    "Guide",
    "OptimizerDefaults",
    "UNetColorizer",
    "available",
    "build_backbone",
    "register",
    "spec_of",
]
