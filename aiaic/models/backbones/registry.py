"""Backbone registry: name -> builder (keyword-only arguments from `ModelConfig`)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from aiaic.errors import ConfigError

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make `builder(**kwargs) -> nn.Module` available as `name`."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"backbone {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return deco


def available() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_BUILDERS)


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build the backbone `name`; ConfigError for an unknown name (listing the known ones)."""
    if name not in _BUILDERS:
        raise ConfigError(f"unknown backbone {name!r}; available: {available()}")
    return _BUILDERS[name](**kwargs)
