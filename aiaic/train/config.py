"""Training configs: `TrainConfig` (the run), `StageConfig` (one stage), and the plan built from a recipe.

Recipe layout (`pipelines/*.toml`)::

    [model]            -> ModelConfig (aiaic.models.config)
    [train]            -> TrainConfig keys (run-wide) and StageConfig keys (defaults for every stage)
    [train.stage1]     -> StageConfig overrides for one stage (any name of `aiaic.train.stages.STAGES`;
                          the w/o-r stages no_r_stageN inherit [train.stageN] first)

Flags override the recipe: `--epochs/--batch-size/--lr` apply to every stage that runs, `--backbone`
to the model, the others to `TrainConfig`. Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiaic.config import build_config, recipe_section
from aiaic.errors import ConfigError
from aiaic.models.config import ModelConfig
from aiaic.train.stages import ABLATION_CHAINS, STAGES, stage_sequence

STAGE_NAMES = tuple(STAGES)
STAGE_ALIASES = {"1": "stage1", "2": "stage2", "3": "stage3"}


@dataclass(frozen=True)
class StageConfig:
    """Hyper-parameters of one stage.

    Attributes:
        epochs: passes over the train split.
        batch_size: samples per step per process (the global batch is batch_size x world size).
        lr: learning rate; optimizer: "adam", "adamw" or "sgd" (momentum 0.9); betas for Adam.
        weight_decay: L2 (adam, sgd) or decoupled (adamw) decay.
        lr_schedule: "constant" or "cosine" (per step, to 0 at the last step).
        color_loss: L_c on ab_n: "l1", "l2" or "huber" (smooth L1 with `huber_delta`, in ab_n units).
        mask_prob: share of samples with r = 0 (stage 1 and e2e; the loader's `audio_mask`).
        grad_clip: max global gradient norm (0 = off).
    """

    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    color_loss: Literal["l1", "l2", "huber"] = "huber"
    huber_delta: float = 0.05
    mask_prob: float = 0.0
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not 0.0 <= self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in [0, 1), got {self.mask_prob}")
        if self.huber_delta <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("huber_delta must be > 0; weight_decay and grad_clip >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """The run: where data comes from, where it goes, which stages, and process-level settings.

    Attributes:
        shards: the split directory (`aiaic-data split --out`), holding manifest.json.
        out: the run directory; each stage writes RUN/<stage>/.
        stage: "baseline", "1", "2", "rnet", "3", "no_r" (the w/o-r chain), "e2e" or "all" (baseline, 1,
            2, rnet, 3, then the chains of `ablations`); see `aiaic.train.stages`.
        ablations: the ablation chains "all" trains after the main one ("no_r", "e2e").
        image_size: training crop side in pixels (a multiple of 2**model.depth).
        workers: loader worker processes per rank.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        resume: continue an unfinished stage from its checkpoint (same step, optimizer, RNG).
        save_every: also checkpoint every N optimizer steps (0 = at the end of each epoch only).
        seed: seeds the model initialisation and the loader's shuffles.
        log_every: append a metrics line every N steps.
    """

    shards: Path
    out: Path
    stage: Literal["baseline", "1", "2", "rnet", "3", "no_r", "e2e", "all"] = "all"
    ablations: tuple[str, ...] = ()
    image_size: int = 128
    workers: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    resume: bool = False
    save_every: int = 0
    seed: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if self.workers < 0 or self.save_every < 0 or self.log_every < 1:
            raise ValueError("workers and save_every must be >= 0, log_every >= 1")
        bad = [a for a in self.ablations if a not in ABLATION_CHAINS]
        if bad:
            raise ValueError(f"unknown ablations {bad}; known: {list(ABLATION_CHAINS)}")

    def stages(self) -> tuple[str, ...]:
        """The stage directory names this run trains, in order."""
        return stage_sequence(STAGE_ALIASES.get(self.stage, self.stage), self.ablations)


@dataclass(frozen=True)
class TrainPlan:
    train: TrainConfig
    model: ModelConfig
    stages: Mapping[str, StageConfig]


_RUN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}
_STAGE_KEYS = {f.name for f in dataclasses.fields(StageConfig)}
_STAGE_FLAGS = ("epochs", "batch_size", "lr")
_MODEL_FLAGS = ("backbone",)


def _stage_settings(recipe: Mapping[str, Any], name: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """[train] defaults, then the table the stage inherits (`StageSpec.settings_from`), then its own."""
    inherited = STAGES[name].settings_from
    return {**defaults, **(recipe_section(recipe, f"train.{inherited}") if inherited else {}),
            **recipe_section(recipe, f"train.{name}")}


def build_train_plan(recipe: Mapping[str, Any], flags: Mapping[str, Any]) -> TrainPlan:
    """Recipe + flags (None = not given) -> TrainPlan, validated once.

    Raises ConfigError for an unknown key in [train], [train.<stage>] or [model], a stage table with
    an unknown name, or a value out of range.
    """
    train_section = recipe_section(recipe, "train")
    unknown = sorted(set(train_section) - _RUN_KEYS - _STAGE_KEYS)
    if unknown:
        raise ConfigError(f"unknown [train] settings {unknown}; run settings: {sorted(_RUN_KEYS)}, "
                          f"stage settings: {sorted(_STAGE_KEYS)}")
    tables = recipe.get("train", {}) if isinstance(recipe.get("train", {}), Mapping) else {}
    bad_tables = sorted(k for k, v in tables.items() if isinstance(v, Mapping) and k not in STAGE_NAMES)
    if bad_tables:
        raise ConfigError(f"unknown stage tables [train.{bad_tables[0]}]; stages: {list(STAGE_NAMES)}")
    flags = {k.replace("-", "_"): v for k, v in flags.items()}
    unknown_flags = sorted(set(flags) - _RUN_KEYS - set(_STAGE_FLAGS) - set(_MODEL_FLAGS))
    if unknown_flags:
        raise ConfigError(f"unknown training options {unknown_flags}")

    run_recipe = {k: v for k, v in train_section.items() if k in _RUN_KEYS}
    train = build_config(TrainConfig, run_recipe, {k: v for k, v in flags.items() if k in _RUN_KEYS})
    model = build_config(ModelConfig, recipe_section(recipe, "model"),
                         {k: flags.get(k) for k in _MODEL_FLAGS})
    stage_defaults = {k: v for k, v in train_section.items() if k in _STAGE_KEYS}
    stage_flags = {k: flags.get(k) for k in _STAGE_FLAGS}
    stages = {name: build_config(StageConfig, _stage_settings(recipe, name, stage_defaults), stage_flags)
              for name in STAGE_NAMES}
    if train.image_size % (2**model.depth):
        raise ConfigError(f"image_size {train.image_size} is not a multiple of 2**depth = {2**model.depth}")
    return TrainPlan(train=train, model=model, stages=stages)
