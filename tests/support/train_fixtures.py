"""A tiny model and training recipe for the trainer tests, and a writer of recipe TOML files."""

from __future__ import annotations

import json
from pathlib import Path

TINY_MODEL = {
    "backbone_options": {"base_channels": 8},
    "semantic_channels": [8, 8, 16, 16],
    "semantic_dim": 16,
    "cond_dim": 16,
    "guidance_hidden": 16,
    "a2v_hidden": 32,
    "relevance_dim": 8,
    "relevance_hidden": 16,
}
# every stage `--stage all` trains with both ablation chains, in training order
ALL_STAGES = (
    "baseline",
    "stage1",
    "stage2",
    "rnet",
    "stage3",
    "no_r_stage1",
    "no_r_stage2",
    "no_r_stage3",
    "e2e",
)
TINY_TRAIN = {"image_size": 32, "epochs": 2, "batch_size": 4, "lr": 1e-3, "log_every": 1}


def tiny_recipe(**train) -> dict:
    return {
        "model": dict(TINY_MODEL),
        "train": {**TINY_TRAIN, **train},
    }


def write_recipe(path: Path, recipe: dict) -> Path:
    """The recipe as TOML; a nested dict becomes its own table (`[model.backbone_options]`)."""
    lines = []

    def table(name: str, values: dict) -> None:
        lines.append(f"[{name}]")
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        for k, v in values.items():
            if k not in nested:
                lines.append(f"{k} = {json.dumps(v)}")
        for k, v in nested.items():
            table(f"{name}.{k}", v)

    for name, values in recipe.items():
        table(name, values)
    path.write_text("\n".join(lines) + "\n")
    return path
