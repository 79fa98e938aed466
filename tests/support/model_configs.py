"""A small U-Net model configuration for the model tests: fast on a CPU, every part present."""

from __future__ import annotations

from aiaic.models.config import ModelConfig

SMALL_MODEL = ModelConfig(
    backbone_options={"base_channels": 8, "depth": 3},
    semantic_channels=(8, 8, 16, 16),
    semantic_dim=16,
    cond_dim=16,
    guidance_hidden=16,
    a2v_hidden=16,
    relevance_dim=8,
    relevance_hidden=16,
)
