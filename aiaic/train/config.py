"""Training configs: `TrainConfig` (the run), `StageConfig` (one stage), and the plan built from a recipe.

Recipe layout (`pipelines/*.toml`)::

    [model]            -> ModelConfig (aiaic.models.config)
    [train]            -> TrainConfig keys (run-wide) and StageConfig keys (defaults for every stage)
    [train.stage1]     -> StageConfig overrides for one stage (any name of `aiaic.train.stages.STAGES`;
                          the w/o-r stages no_r_stageN inherit [train.stageN] first)
    [loader]           -> the loader's knobs (aiaic.data.loader.RECIPE_KEYS: shuffle buffer, negatives, ...)

    [train.stage1] loss = { l1 = 0.1, perceptual = 5.0 }   -> the colour loss terms of one stage

Flags override the recipe: `--epochs/--batch-size/--lr` apply to every stage that runs, `--backbone`
and `--activation-checkpointing` to the model, the others to `TrainConfig`. Unknown keys are errors.

    [model.backbone_options] -> the backbone's own options (its spec's options dataclass)

Defaults that depend on the backbone are filled in here, once, from its registered `BackboneSpec`
(read without building the network): a stage's optimizer, lr, betas and weight decay from the spec's
`optimizer`, a colour stage's loss terms from its `loss`, and the critic's width, depth, lr and betas
from its `critic`, wherever the recipe does not say, so the plan (and each stage's `config.json`)
holds the values actually used. `batch_size` is the global batch: under torchrun each of R ranks takes
batch_size / R samples per step (`aiaic.train.distributed.per_rank_batch`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from aiaic.config import build_config, recipe_section, required
from aiaic.data.loader import LoaderConfig, loader_config_from_recipe
from aiaic.errors import ConfigError
from aiaic.models.backbone_spec import BackboneSpec
from aiaic.models.backbones.base import Backbone
from aiaic.models.backbones.registry import spec_of
from aiaic.models.config import ModelConfig, model_config_from_recipe
from aiaic.models.pretrained import check_weight_files
from aiaic.train.losses import check_loss_terms
from aiaic.train.stages import ABLATION_CHAINS, STAGES, stage_sequence
from aiaic.train.terms import get_term

STAGE_NAMES = tuple(STAGES)
STAGE_ALIASES = {"1": "stage1", "2": "stage2", "3": "stage3"}


@dataclass(frozen=True)
class StageConfig:
    """Hyper-parameters of one stage.

    Attributes:
        epochs: passes over the train split.
        batch_size: the global batch, samples per optimizer step summed over ranks (the paper's
            numbers); under torchrun each of R ranks takes batch_size / R, which must divide.
        lr, optimizer ("adam", "adamw" or "sgd" with momentum 0.9), betas, weight_decay (L2 for adam
            and sgd, decoupled for adamw): None = the backbone's own (`Backbone.optimizer`).
        lr_schedule: "constant" or "cosine" (per step, to 0 at the last step).
        loss: the colour loss L_c as term name -> weight (the registered terms of `aiaic.train.terms`:
            l1, l2, huber on ab_n; perceptual, colorfulness, adversarial on the RGB they imply; a
            backbone's own); None = the backbone's (`BackboneSpec.loss`).
        color_loss: shorthand for a single term, `loss = {color_loss = 1.0}` ("l1", "l2", "huber").
        huber_delta: the huber term's threshold, in ab_n units.
        mask_prob: share of samples with r = 0 (stage 1 and e2e; the loader's `audio_mask`).
        grad_clip: max global gradient norm (0 = off).
        disc_channels / disc_blocks: width and depth of the critic (adversarial term); None = the
            backbone's (`BackboneSpec.critic`; DDColor's patch discriminator: 64, 3).
        disc_lr / disc_betas: its optimizer's (DDColor: Adam 1e-4, (0.9, 0.99)); None = the critic's.
    """

    epochs: int = 8
    batch_size: int = 16
    lr: float | None = None
    optimizer: Literal["adam", "adamw", "sgd"] | None = None
    betas: tuple[float, ...] | None = None
    weight_decay: float | None = None
    lr_schedule: Literal["constant", "cosine"] = "constant"
    loss: Mapping[str, float] | None = None
    color_loss: Literal["l1", "l2", "huber"] | None = None
    huber_delta: float = 0.05
    mask_prob: float = 0.0
    grad_clip: float = 0.0
    disc_channels: int | None = None
    disc_blocks: int | None = None
    disc_lr: float | None = None
    disc_betas: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("betas", "disc_betas"):
            betas = getattr(self, name)
            if betas is not None and (len(betas) != 2 or not all(0 <= b < 1 for b in betas)):
                raise ValueError(f"{name} must be two numbers in [0, 1), got {betas}")
        if not 0.0 <= self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in [0, 1), got {self.mask_prob}")
        if self.huber_delta <= 0 or (self.weight_decay or 0) < 0 or self.grad_clip < 0:
            raise ValueError("huber_delta must be > 0; weight_decay and grad_clip >= 0")
        if (
            (self.disc_channels is not None and self.disc_channels < 8)
            or (self.disc_blocks is not None and self.disc_blocks < 1)
            or (self.disc_lr is not None and not self.disc_lr > 0)
        ):
            raise ValueError("disc_channels must be >= 8, disc_blocks >= 1 and disc_lr > 0")
        if self.loss is not None:
            check_loss_terms(self.loss)
            if self.color_loss is not None:
                raise ValueError(f"give either loss = {{...}} or color_loss = {self.color_loss!r}, not both")

    def loss_terms(self) -> dict[str, float]:
        """The colour loss terms this stage trains with (after `resolve_stage`)."""
        if self.loss is not None:
            return dict(self.loss)
        if self.color_loss is not None:
            return {self.color_loss: 1.0}
        raise ConfigError("the stage's loss terms are not resolved (call resolve_stage)")


@dataclass(frozen=True)
class TrainConfig:
    """The run: where data comes from, where it goes, which stages, and process-level settings.

    Attributes:
        shards: the split directory (`aiaic-data split --out`), holding manifest.json.
        out: the run directory; each stage writes RUN/<stage>/.
        stage: "baseline", "1", "2", "rnet", "3", "no_r" (the w/o-r chain), "e2e" or "all" (baseline, 1,
            2, rnet, 3, then the chains of `ablations`); see `aiaic.train.stages`.
        ablations: the ablation chains "all" trains after the main one ("no_r", "e2e").
        image_size: training crop side in pixels (a multiple of the backbone's `size_multiple`).
        workers: loader worker processes per rank.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        resume: continue an unfinished stage from its checkpoint (same step, optimizer, RNG).
        save_every: also checkpoint every N optimizer steps (0 = at the end of each epoch only).
        seed: seeds the model initialisation and the loader's shuffles.
        log_every: append a metrics line every N steps.
        precision: "fp32", "bf16" (autocast; CPU or GPU) or "fp16" (autocast + gradient scaling; CUDA).
        network_weights: the files of other pretrained networks loss terms read, by the network's name
            (`aiaic.train.terms.PretrainedNet.name`), `network_weights = { vgg19 = "vgg19-dcbb9e9d.pth" }`;
            a network not named here is looked for in the torch hub cache.
        vgg16_bn_weights: torchvision's ImageNet VGG16-BN (`vgg16_bn-6c64b313.pth`) for the perceptual
            term; None = look in the torch hub cache, and without it the term is off (and recorded).
    """

    shards: Path = required("--shards")
    out: Path = required("--out")
    stage: Literal["baseline", "1", "2", "rnet", "3", "no_r", "e2e", "all"] = "all"
    ablations: tuple[str, ...] = ()
    image_size: int = 128
    workers: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    resume: bool = False
    save_every: int = 0
    seed: int = 0
    log_every: int = 10
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    vgg16_bn_weights: Path | None = None
    network_weights: Mapping[str, Path] = dataclasses.field(default_factory=dict)

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
    loader: LoaderConfig = LoaderConfig()  # the [loader] table; the stage sets sizes, workers, seed, mask


_RUN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}
_STAGE_KEYS = {f.name for f in dataclasses.fields(StageConfig)}
_STAGE_FLAGS = ("epochs", "batch_size", "lr")
_MODEL_FLAGS = ("backbone", "activation_checkpointing")


def resolve_stage(cfg: StageConfig, backbone: BackboneSpec | Backbone, colour_stage: bool) -> StageConfig:
    """Fill what the recipe left open from the backbone's spec (or a built backbone's): optimizer
    settings, the critic's settings and (colour stages) the loss terms. ConfigError when a term
    needs an extra output or a critic the backbone does not declare."""
    spec = backbone.backbone_spec if isinstance(backbone, Backbone) else backbone
    if spec is None:
        raise ConfigError(f"{type(backbone).__name__} was not built by build_backbone: it has no spec")
    opt = spec.optimizer
    cfg = replace(
        cfg,
        optimizer=cfg.optimizer or opt.name,  # type: ignore[arg-type]
        lr=cfg.lr if cfg.lr is not None else opt.lr,
        betas=tuple(cfg.betas if cfg.betas is not None else opt.betas),
        weight_decay=cfg.weight_decay if cfg.weight_decay is not None else opt.weight_decay,
    )
    if spec.critic is not None:
        critic = spec.critic
        cfg = replace(
            cfg,
            disc_channels=cfg.disc_channels if cfg.disc_channels is not None else critic.channels,
            disc_blocks=cfg.disc_blocks if cfg.disc_blocks is not None else critic.blocks,
            disc_lr=cfg.disc_lr if cfg.disc_lr is not None else critic.optimizer.lr,
            disc_betas=tuple(cfg.disc_betas if cfg.disc_betas is not None else critic.optimizer.betas),
        )
    if colour_stage and cfg.loss is None and cfg.color_loss is None:
        cfg = replace(cfg, loss=dict(spec.loss))
    if colour_stage:
        _check_term_needs(cfg.loss_terms(), spec)
    return cfg


def _check_term_needs(terms: Mapping[str, float], spec: BackboneSpec) -> None:
    """ConfigError for an active term that reads an extra or a critic the backbone does not give."""
    for name, weight in terms.items():
        needs = get_term(name).needs
        if weight <= 0:
            continue
        missing = [e for e in needs.extras if e not in spec.extras]
        if missing:
            raise ConfigError(
                f"loss term {name!r} reads the extra outputs {missing}, which backbone {spec.name!r} does "
                f"not give (its extras: {sorted(spec.extras) or 'none'})"
            )
        if needs.critic and spec.critic is None:
            raise ConfigError(f"loss term {name!r} needs a critic; backbone {spec.name!r} declares none")


def _stage_section(recipe: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The settings a stage gives itself: the table it inherits (`StageSpec.settings_from`, e.g. the
    w/o-r stages inherit [train.stageN]), then its own [train.<name>], each with its `loss` table."""
    own: dict[str, Any] = {}
    for table in (STAGES[name].settings_from, name):
        if table:
            own.update(recipe_section(recipe, f"train.{table}"))
            own.update(_loss_table(recipe, f"train.{table}"))
    return own


def _loss_table(recipe: Mapping[str, Any], table: str) -> dict[str, Any]:
    """The inline `loss = {...}` of [train] or [train.<stage>] ({} when absent)."""
    node: Any = recipe
    for part in table.split("."):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    loss = node.get("loss") if isinstance(node, Mapping) else None
    if loss is None:
        return {}
    if not isinstance(loss, Mapping):
        raise ConfigError(
            f"[{table}] loss must be a table of term = weight, e.g. "
            f"loss = {{ l1 = 0.1, perceptual = 5.0 }}; got {loss!r}"
        )
    return {"loss": dict(loss)}


def _network_weights(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The inline `network_weights = { name = "file" }` of [train], paths relative to the recipe's folder."""
    node = recipe.get("train", {})
    table = node.get("network_weights") if isinstance(node, Mapping) else None
    if table is None:
        return {}
    if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError(f'[train] network_weights must be a table of name = "file"; got {table!r}')
    folder = getattr(recipe, "folder", None)
    paths = {str(k): Path(v).expanduser() for k, v in table.items()}
    if folder is not None:
        paths = {k: p if p.is_absolute() else Path(folder) / p for k, p in paths.items()}
    return {"network_weights": paths}


def build_train_plan(recipe: Mapping[str, Any], flags: Mapping[str, Any]) -> TrainPlan:
    """Recipe + flags (None = not given) -> TrainPlan, validated once, backbone defaults filled in.

    Relative weight paths in [model] are taken relative to the recipe file's folder (`load_recipe`
    records it; a flag's relative path is relative to the working directory). Raises ConfigError for a
    missing --shards/--out, an unknown key in [train], [train.<stage>] or [model], a stage table with an
    unknown name, an unknown loss term, a value out of range, an image_size that is not a multiple of
    the backbone's `size_multiple`, or weight files that do not exist (all of them named, with where
    they come from).
    """
    train_section = recipe_section(recipe, "train")
    unknown = sorted(set(train_section) - _RUN_KEYS - _STAGE_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown [train] settings {unknown}; run settings: {sorted(_RUN_KEYS)}, "
            f"stage settings: {sorted(_STAGE_KEYS)}"
        )
    tables = recipe.get("train", {}) if isinstance(recipe.get("train", {}), Mapping) else {}
    bad_tables = sorted(
        k
        for k, v in tables.items()
        if isinstance(v, Mapping) and k not in STAGE_NAMES and k not in ("loss", "network_weights")
    )
    if bad_tables:
        raise ConfigError(f"unknown stage tables [train.{bad_tables[0]}]; stages: {list(STAGE_NAMES)}")
    flags = {k.replace("-", "_"): v for k, v in flags.items()}
    unknown_flags = sorted(set(flags) - _RUN_KEYS - set(_STAGE_FLAGS) - set(_MODEL_FLAGS))
    if unknown_flags:
        raise ConfigError(f"unknown training options {unknown_flags}")

    run_recipe = train_section.subset(_RUN_KEYS)
    run_recipe.update(_network_weights(recipe))
    train = build_config(TrainConfig, run_recipe, {k: v for k, v in flags.items() if k in _RUN_KEYS})
    model = model_config_from_recipe(recipe, {k: flags.get(k) for k in _MODEL_FLAGS})
    check_weight_files(model)
    backbone = spec_of(model.backbone)
    problem = backbone.input_policy(model.backbone_options).problem(train.image_size, train.image_size)
    if problem:
        raise ConfigError(f"image_size {train.image_size}: {problem} for backbone {model.backbone!r}")
    stage_defaults = {k: v for k, v in train_section.items() if k in _STAGE_KEYS}
    stage_defaults.update(_loss_table(recipe, "train"))
    stage_flags = {k: flags.get(k) for k in _STAGE_FLAGS}
    stages = {}
    for name in STAGE_NAMES:
        own = _stage_section(recipe, name)
        section = {**stage_defaults, **own}
        for key, other in (("color_loss", "loss"), ("loss", "color_loss")):
            if key in own and other not in own:  # the stage's own choice replaces the inherited one
                section.pop(other, None)
        cfg = build_config(StageConfig, section, stage_flags)
        stages[name] = resolve_stage(cfg, backbone, STAGES[name].colours)
    loader = loader_config_from_recipe(recipe_section(recipe, "loader"))
    return TrainPlan(train=train, model=model, stages=stages, loader=loader)
