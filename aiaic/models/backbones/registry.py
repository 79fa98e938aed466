"""Backbone registry: name -> builder taking the model's `ModelConfig`.

A backbone's file registers its builders (`@register("name")`); `aiaic.models.backbones` imports every
backbone file, so a new backbone is one file plus one import line there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiaic.errors import ConfigError
from aiaic.models.backbones.base import Backbone

if TYPE_CHECKING:
    from aiaic.models.config import ModelConfig

Builder = Callable[["ModelConfig"], Backbone]
_BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make `builder(cfg: ModelConfig) -> Backbone` available as `name`."""

    def deco(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"backbone {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return deco


def available() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_BUILDERS)


def build_backbone(name: str, cfg: ModelConfig) -> Backbone:
    """Build the backbone `name` (random weights) from `cfg`; ConfigError for an unknown name."""
    if name not in _BUILDERS:
        raise ConfigError(f"unknown backbone {name!r}; available: {available()}")
    return _BUILDERS[name](cfg)
