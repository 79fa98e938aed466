"""`BackboneSpec`: what a registered backbone declares, as data (timm's `PretrainedCfg`, torchvision's
`WeightsEnum`): its input policy, its released weight sets and how to read them, its optimizer and
colour-loss defaults, the critic it trains against, runtime flags, extras, and its options table.

    SPEC = BackboneSpec(
        name="ddcolor-tiny",
        input=InputPolicy(size_multiple=32, default_size=512),
        weights=(WeightSet("ddcolor_paper_tiny", file="pytorch_model.bin",
                           hf_repo="piddnad/ddcolor_paper_tiny"),),
        weight_format=WeightFormat(key_filter=drop_prefix("encoder.arch.head_cls."),
                                   ignored_what="classifier keys"),
        optimizer=OptimizerDefaults("adamw", 1e-4, (0.9, 0.99), 0.01),
        loss={"l1": 11.0, "perceptual": 5.0, "adversarial": 1.0, "colorfulness": 0.5},
        critic=PATCH_CRITIC,
        runtime=RuntimeFlags(channels_last_inference=True, unused_parameters=True),
    )

    @register(SPEC)
    def build(options: DDColorOptions, cfg: ModelConfig) -> DDColor: ...

The training side (`aiaic.train`) reads the spec of `ModelConfig.backbone` without building the
network; `aiaic-colorize` takes the default inference size from it; `find_weights` resolves a weight
set by name, Hugging Face repo or file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from aiaic.config import build_config
from aiaic.errors import ConfigError
from aiaic.models.weights import WeightFormat, WeightSet

__all__ = [
    "BackboneSpec",
    "CriticSpec",
    "InputPolicy",
    "NoOptions",
    "OptimizerDefaults",
    "RuntimeFlags",
    "WeightFormat",  # defined in aiaic.models.weights, where files are read
    "WeightSet",
]


@dataclass(frozen=True)
class InputPolicy:
    """The image sides a backbone takes (L_n [B, 1, H, W]).

    size_multiple: H and W must be multiples of this. fixed_size: when set, H = W = fixed_size exactly
    (ChromaGAN: 224). default_size: the side `aiaic-colorize` predicts at when none is given (its
    authors' inference size; ab is then upsampled to the full-resolution L): by default the fixed size,
    else 256; it must itself be allowed (ValueError otherwise).
    """

    size_multiple: int = 1
    fixed_size: int | None = None
    default_size: int = 0  # 0 = the fixed size, else 256

    def __post_init__(self) -> None:
        if self.size_multiple < 1:
            raise ValueError(f"size_multiple must be >= 1, got {self.size_multiple}")
        if self.fixed_size is not None and self.fixed_size % self.size_multiple:
            raise ValueError(f"fixed_size {self.fixed_size} is not a multiple of {self.size_multiple}")
        if self.default_size == 0:
            object.__setattr__(self, "default_size", self.fixed_size or 256)
        if self.problem(self.default_size, self.default_size):
            raise ValueError(
                f"default_size {self.default_size}: {self.problem(self.default_size, self.default_size)}"
            )

    def problem(self, height: int, width: int) -> str | None:
        """Why H x W is refused ("must be a multiple of 32", "must be 224 x 224"), None when it fits."""
        if self.fixed_size is not None and (height, width) != (self.fixed_size, self.fixed_size):
            return f"must be {self.fixed_size} x {self.fixed_size} (a fixed input size)"
        if height < self.size_multiple or width < self.size_multiple:
            return f"must be a positive multiple of {self.size_multiple}"
        if height % self.size_multiple or width % self.size_multiple:
            return f"must be a multiple of {self.size_multiple}"
        return None


@dataclass(frozen=True)
class OptimizerDefaults:
    """The optimizer a backbone's authors trained it with (a stage's recipe may override each field)."""

    name: str = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


CriticLoss = Literal["vanilla", "wgan-gp"]
CriticInput = Literal["rgb", "lab"]


@dataclass(frozen=True)
class CriticSpec:
    """The critic a backbone's adversarial term trains against, and the critic's own loss.

    build(channels, blocks) -> the critic module: x [B, 3, H, W] -> scores [B, N] (one per patch).
    input: what it reads: "rgb" (RGB in [0, 1] of (L, ab): DDColor) or "lab" (cat(L_n, ab_n), i.e.
        conditioned on L: ChromaGAN).
    loss: "vanilla" (BCE, real = 1 / fake = 0; generator BCE(D(fake), 1)) or "wgan-gp" (critic
        D(fake) - D(real) + gp_weight * (|grad D(interpolate)| - 1)^2; generator -D(fake)).
    channels, blocks: its width and depth ([train] disc_channels / disc_blocks override them).
    optimizer: its own optimizer ([train] disc_lr / disc_betas override lr and betas).
    gp_weight: the gradient-penalty weight of "wgan-gp".
    """

    build: Callable[[int, int], nn.Module]
    input: CriticInput = "rgb"
    loss: CriticLoss = "vanilla"
    channels: int = 64
    blocks: int = 3
    optimizer: OptimizerDefaults = OptimizerDefaults("adam", 1e-4, (0.9, 0.99), 0.0)
    gp_weight: float = 10.0


@dataclass(frozen=True)
class RuntimeFlags:
    """channels_last_inference: inference runs faster with weights and activations in channels-last
    layout (same values). unused_parameters: some parameters serve `pool` only, so a colour stage
    leaves them without gradient (DistributedDataParallel must look for unused parameters)."""

    channels_last_inference: bool = False
    unused_parameters: bool = False


@dataclass(frozen=True)
class NoOptions:
    """A backbone without options (its `[model.backbone_options]` table must be empty)."""


@dataclass(frozen=True)
class BackboneSpec:
    """Everything a registered backbone declares besides its architecture (module docstring).

    name: the registry name (`ModelConfig.backbone`).
    options: the frozen dataclass read from `[model.backbone_options]` (its fields are the table's
        keys; `NoOptions` = none).
    input: the input policy; `input_for(options)`, when given, computes it from the options (the
        U-Net's size multiple is 2**depth).
    weights: the released weight sets; weight_format: how a file is read when no set says otherwise.
    optimizer, loss: the training defaults of a stage whose recipe does not say (loss: term name ->
        weight, terms of `aiaic.train.terms`).
    critic: the critic of the "adversarial" term (None: the backbone trains without one).
    runtime: `RuntimeFlags`.
    extras: names of the extra outputs `decode_outputs` returns beside ab -> what each is
        ("class_logits": "[B, 1000] ImageNet class logits").
    description: one line.
    """

    name: str
    options: type = NoOptions
    input: InputPolicy = InputPolicy()
    input_for: Callable[[Any], InputPolicy] | None = None
    weights: tuple[WeightSet, ...] = ()
    weight_format: WeightFormat = WeightFormat()
    optimizer: OptimizerDefaults = OptimizerDefaults()
    loss: Mapping[str, float] = field(default_factory=lambda: {"huber": 1.0})
    critic: CriticSpec | None = None
    runtime: RuntimeFlags = RuntimeFlags()
    extras: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.options):
            raise TypeError(f"backbone {self.name}: options must be a dataclass, got {self.options!r}")
        names = [w.name for w in self.weights]
        if len(set(names)) != len(names):
            raise ValueError(f"backbone {self.name}: weight set names repeat: {names}")

    def parse_options(self, table: Mapping[str, Any] | Any | None) -> Any:
        """The options dataclass from a `[model.backbone_options]` table (or an options instance);
        ConfigError naming the backbone for an unknown key or a bad value."""
        if isinstance(table, self.options):
            return table
        try:
            return build_config(self.options, dict(table or {}))
        except ConfigError as e:
            raise ConfigError(f"[model.backbone_options] of backbone {self.name!r}: {e}") from e

    def input_policy(self, options: Any = None) -> InputPolicy:
        """The input policy for `options` (the parsed dataclass; None = its defaults)."""
        if self.input_for is None:
            return self.input
        return self.input_for(self.parse_options(options))

    def weight_set(self, name: str) -> WeightSet | None:
        """The weight set called `name`, or the one whose Hugging Face repo is `name`; else None."""
        return next((w for w in self.weights if name in (w.name, w.hf_repo)), None)

    def format_of(self, weight_set: WeightSet | None) -> WeightFormat:
        """How `weight_set`'s file is read (its own format, else the spec's)."""
        return weight_set.format if weight_set is not None and weight_set.format else self.weight_format
