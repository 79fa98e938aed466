"""Backbone registry: name -> (its `BackboneSpec`, its builder).

A backbone's file registers each of its names with a spec and a builder taking the parsed options
and the model's `ModelConfig`::

    @register(BackboneSpec(name="unet", options=UNetOptions, ...))
    def build_unet(options: UNetOptions, cfg: BackboneSettings) -> UNetColorizer: ...

`aiaic.models.backbones` imports every backbone file, so a new backbone is one file plus one import
line there (a test may register a throwaway backbone from its own file: nothing else changes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiaic.errors import ConfigError
from aiaic.models.backbone_spec import BackboneSpec
from aiaic.models.backbones.base import Backbone


class BackboneSettings(Protocol):
    """What a builder reads of the model's config (`aiaic.models.config.ModelConfig` has it); the
    backbones never import the model config, which imports them."""

    @property
    def backbone(self) -> str: ...

    @property
    def backbone_options(self) -> Mapping[str, Any]: ...

    @property
    def activation_checkpointing(self) -> bool: ...


Builder = Callable[[Any, BackboneSettings], Backbone]
_REGISTRY: dict[str, tuple[BackboneSpec, Builder]] = {}


def register(spec: BackboneSpec) -> Callable[[Builder], Builder]:
    """Decorator: make `builder(options, cfg: BackboneSettings) -> Backbone` available as `spec.name`
    (`cfg` is the model's `ModelConfig`)."""

    def deco(builder: Builder) -> Builder:
        if spec.name in _REGISTRY:
            raise ValueError(f"backbone {spec.name!r} is already registered")
        _REGISTRY[spec.name] = (spec, builder)
        return builder

    return deco


def unregister(name: str) -> None:
    """Remove `name` (for tests that register a throwaway backbone)."""
    _REGISTRY.pop(name, None)


def available() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_REGISTRY)


def spec_of(name: str) -> BackboneSpec:
    """The spec registered as `name`; ConfigError for an unknown name."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backbone {name!r}; available: {available()}")
    return _REGISTRY[name][0]


def build_backbone(name: str, cfg: BackboneSettings) -> Backbone:
    """Build the backbone `name` (random weights) from `cfg` (its `backbone_options` parsed by the
    spec's options dataclass); ConfigError for an unknown name or bad options."""
    spec = spec_of(name)
    options = spec.parse_options(cfg.backbone_options if cfg.backbone == name else None)
    net = _REGISTRY[name][1](options, cfg)
    net.backbone_spec = spec
    net.backbone_options = options
    return net
