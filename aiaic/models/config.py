"""`ModelConfig`: every size and choice of the audio-infused colorizer, from the recipe's `[model]` table.

The model library knows nothing about training; `aiaic.train` builds a model from this config and
saves it (as JSON) beside every set of weights, so a run can be rebuilt exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiaic.config import build_config, config_to_dict, recipe_section
from aiaic.data.spectrogram import SpecConfig
from aiaic.errors import ConfigError
from aiaic.models.backbones.registry import available, spec_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of every component.

    Attributes:
        backbone: name in `aiaic.models.backbones.registry` ("unet" is the compact CPU U-Net).
        backbone_options: the backbone's own options, the recipe's `[model.backbone_options]` table
            (the fields of its spec's options dataclass, e.g. the U-Net's `UNetOptions`: base_channels,
            depth, norm, guide_at). Checked against that dataclass and stored complete (every field,
            defaults included), so a saved config rebuilds the same network.
        semantic_channels: output channels of E_s's four conv-ReLU-pool blocks.
        semantic_dim: length of f_v and f_a (both L2-normalised).
        cond_dim: length of c = MLP(f).
        guidance_hidden: hidden width of gamma(c) and beta(c) (each two FC layers).
        a2v_hidden: hidden width of A2V (two FC layers, 512 -> a2v_hidden -> semantic_dim).
        relevance_dim: length of the relevance heads' embeddings h_a and h_v.
        relevance_hidden: hidden width of those heads.
        relevance_image_encoder: "backbone" (the backbone's encoder E, trained on grey frames in
            stage 1: per-channel mean and std of its deepest features), "semantic" (the stage-1 E_s fed
            the grey frame as RGB) or "vgg19" (ImageNet VGG-19 features from `vgg19_weights`).
        relevance_audio_encoder: "audio" (the stage-2 E_a) or "vggsound" (ResNet-18 from `vggsound_weights`).
        vgg19_weights / vggsound_weights: files for the optional pretrained encoders (never downloaded).
        backbone_weights: the backbone's released weights (a file, e.g. DDColor's `ddcolor_paper_tiny.pth`
            or a `pytorch_model.bin`, or a Hugging Face repo id such as "piddnad/ddcolor_paper_tiny",
            fetched only when `huggingface_hub` is installed); the baseline, stage 1 and e2e start from
            them. None = random initialisation.
        activation_checkpointing: recompute activations in the backward pass instead of storing them
            (less memory, ~30 % more compute; for the large backbones on GPUs). A backbone that has no
            use for it ignores it.
        audio_encoder: E_a of stages 2 and 3: "scratch" (random init, reads the normalised 64-band
            log-mel [B, 1, 64, 97]) or "vggsound" (the public VGGSound ResNet-18 from `vggsound_weights`,
            the paper's E_a, reading the VGGSound spectrogram [B, 1, 257, 1004] of
            `aiaic.data.spectrogram`). A relevance audio encoder "vggsound" reads that spectrogram too.
        spec_tile_seconds: the VGGSound spectrogram tiles the one-second window to this many seconds
            (10 = the official input [257, 1004]; 1 = no tiling, [257, 98], ten times cheaper).
    """

    backbone: str = "unet"
    backbone_options: Mapping[str, Any] = field(default_factory=dict)
    semantic_channels: tuple[int, ...] = (32, 64, 128, 256)
    semantic_dim: int = 128
    cond_dim: int = 128
    guidance_hidden: int = 128
    a2v_hidden: int = 256
    relevance_dim: int = 64
    relevance_hidden: int = 128
    relevance_image_encoder: Literal["backbone", "semantic", "vgg19"] = "backbone"
    relevance_audio_encoder: Literal["audio", "vggsound"] = "audio"
    vgg19_weights: Path | None = None
    vggsound_weights: Path | None = None
    activation_checkpointing: bool = False
    audio_encoder: Literal["scratch", "vggsound"] = "scratch"
    spec_tile_seconds: float = 10.0
    backbone_weights: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.backbone_options, Mapping):
            raise ValueError(f"backbone_options must be a table, got {self.backbone_options!r}")
        if self.backbone in available():  # an unknown name is refused when the backbone is built
            options = spec_of(self.backbone).parse_options(self.backbone_options)
            object.__setattr__(self, "backbone_options", config_to_dict(options))
        if len(self.semantic_channels) != 4:
            raise ValueError(
                f"semantic_channels needs four entries (four blocks), got {self.semantic_channels}"
            )
        for name in (
            "semantic_dim",
            "cond_dim",
            "guidance_hidden",
            "a2v_hidden",
            "relevance_dim",
            "relevance_hidden",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.relevance_image_encoder == "vgg19" and self.vgg19_weights is None:
            raise ValueError("relevance_image_encoder = 'vgg19' needs vgg19_weights (a file path)")
        if self.relevance_audio_encoder == "vggsound" and self.vggsound_weights is None:
            raise ValueError("relevance_audio_encoder = 'vggsound' needs vggsound_weights (a file path)")
        if self.spec_tile_seconds < 0.05:
            raise ValueError(f"spec_tile_seconds must be >= 0.05, got {self.spec_tile_seconds}")
        if self.audio_encoder == "vggsound" and self.vggsound_weights is None:
            raise ValueError("audio_encoder = 'vggsound' needs vggsound_weights (a file path)")

    def options(self) -> Any:
        """The backbone's options dataclass (`BackboneSpec.options`) holding `backbone_options`."""
        return spec_of(self.backbone).parse_options(self.backbone_options)

    @property
    def audio_input(self) -> Literal["mel", "spec"]:
        """The batch field E_a reads: "mel" (normalised log-mel) or "spec" (VGGSound spectrogram)."""
        return "spec" if self.audio_encoder == "vggsound" else "mel"

    @property
    def relevance_audio_input(self) -> Literal["mel", "spec"]:
        """The batch field the relevance net's audio encoder E_a' reads (E_a's when E_a serves)."""
        return "spec" if self.relevance_audio_encoder == "vggsound" else self.audio_input

    @property
    def spec_config(self) -> SpecConfig:
        """The VGGSound spectrogram settings (official ones, tiled to `spec_tile_seconds`)."""
        return SpecConfig(length_samples=round(SpecConfig.sample_rate * self.spec_tile_seconds))

    @property
    def spectrogram(self) -> SpecConfig | None:
        """`spec_config` where E_a or E_a' reads the VGGSound spectrogram, else None (what the loader
        and inference compute)."""
        return self.spec_config if "spec" in self.audio_inputs else None

    @property
    def audio_inputs(self) -> tuple[str, ...]:
        """Every audio field the model reads ("mel" and/or "spec")."""
        return tuple(sorted({self.audio_input, self.relevance_audio_input}))


# the U-Net's sizes were [model] keys before they became its options (runs saved then still load)
LEGACY_UNET_KEYS = ("base_channels", "depth", "norm", "guide_at")


def model_config_from_dict(saved: Mapping[str, Any]) -> ModelConfig:
    """`ModelConfig` from a saved config.json's "model" (`config_to_dict`); a run saved before the U-Net's
    sizes moved to `backbone_options` has them at the top level: they are moved there (same network)."""
    d = dict(saved)
    legacy = {k: d.pop(k) for k in LEGACY_UNET_KEYS if k in d}
    if legacy and d.get("backbone", "unet") == "unet":
        d["backbone_options"] = {**legacy, **dict(d.get("backbone_options") or {})}
    return build_config(ModelConfig, d)


def model_config_from_recipe(
    recipe: Mapping[str, Any], flags: Mapping[str, Any] | None = None
) -> ModelConfig:
    """`ModelConfig` from the recipe's [model] table and its [model.backbone_options] table, then flags
    (None = not given). The options table belongs to the recipe's backbone: a `backbone` flag naming
    another one leaves it out (and says so). ConfigError for an unknown key or a bad value."""
    section = recipe_section(recipe, "model")
    moved = sorted(k for k in LEGACY_UNET_KEYS if k in section)
    if moved:
        raise ConfigError(
            f"[model] {', '.join(moved)}: the U-Net's options moved to their own table; write them under "
            "[model.backbone_options]"
        )
    options = recipe_section(recipe, "model.backbone_options")
    flag = (flags or {}).get("backbone")
    recipe_backbone = section.get("backbone", "unet")
    if options and flag is not None and flag != recipe_backbone:
        # the table is the recipe's backbone's; another backbone chosen by flag starts from its defaults
        log.warning(
            "--backbone %s replaces the recipe's %s: its [model.backbone_options] (%s) do not apply",
            flag,
            recipe_backbone,
            ", ".join(sorted(options)),
        )
    elif options:
        section["backbone_options"] = dict(options)
    return build_config(ModelConfig, section, flags or {})
