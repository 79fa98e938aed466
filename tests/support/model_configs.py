"""The model configurations of the tests, each defined once (their sizes keep the tests' numbers).

- `TINY_MODEL`: the recipe [model] table of the trainer tests (U-Net with 8 channels at full resolution).
- `SMALL_MODEL`: TINY_MODEL as a ModelConfig with a narrower A2V, for the model and learning tests.
- `MINI_HEADS`: the narrowest guidance side (semantic encoder, A2V, relevance net) for any backbone.
- `RUN_MODEL`: MINI_HEADS on a 4-channel, depth-2 U-Net: the shared tiny trained run (`tiny_run`).
"""

from __future__ import annotations

from typing import Any

from aiaic.models.config import ModelConfig


def model_config(table: dict[str, Any], **overrides: Any) -> ModelConfig:
    """A ModelConfig from a recipe-style [model] table (lists become tuples), with `overrides`."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in {**table, **overrides}.items()}
    return ModelConfig(**values)


TINY_MODEL: dict[str, Any] = {
    "backbone_options": {"base_channels": 8},
    "semantic_channels": [8, 8, 16, 16],
    "semantic_dim": 16,
    "cond_dim": 16,
    "guidance_hidden": 16,
    "a2v_hidden": 32,
    "relevance_dim": 8,
    "relevance_hidden": 16,
}
SMALL_MODEL = model_config(TINY_MODEL, a2v_hidden=16)
MINI_HEADS: dict[str, Any] = {
    "semantic_channels": [4, 4, 8, 8],
    "semantic_dim": 8,
    "cond_dim": 8,
    "guidance_hidden": 8,
    "a2v_hidden": 8,
    "relevance_dim": 4,
    "relevance_hidden": 8,
}
RUN_MODEL: dict[str, Any] = {"backbone_options": {"base_channels": 4, "depth": 2}, **MINI_HEADS}
