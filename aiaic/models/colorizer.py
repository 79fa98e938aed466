"""The audio-infused colorizer: backbone + DSG + the visual and audio semantic paths + relevance net.

    ab_n = C(E(L_n)) with DSG(h, c, r) at C's insertion point
    c = MLP(f),  f = f_v = E_s(Y_rgb) (stage 1)  or  f = f_a = A2V(E_a(A)) (stage 3, inference)
    r = relevance(E_a'(A), E_v(grey X)) in (0, 1), 0 without audio

Tensors: L_n [B, 1, H, W] = (L - 50) / 50; ab_n [B, 2, H, W] = ab / 110; RGB [B, 3, H, W] in [0, 1];
A = E_a's audio input (`ModelConfig.audio_input`): the normalised log-mel [B, 1, 64, 97] ("mel") or
the VGGSound spectrogram [B, 1, 257, 1004] ("spec"); A' likewise for the relevance net's E_a'
(`ModelConfig.relevance_audio_input`); r [B]. The components are plain attributes, so a training
stage freezes or trains them by name (`COMPONENTS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn
from torchvision.models import vgg19

from aiaic.lab import grey_rgb
from aiaic.models.audio import AUDIO_FEATURE_DIM, AudioEncoder, AudioToVisual
from aiaic.models.backbones import Backbone, BackboneOutput, build_backbone
from aiaic.models.config import ModelConfig
from aiaic.models.guidance import DynamicSemanticGuidance
from aiaic.models.relevance import RelevanceNet
from aiaic.models.semantic import ConditionMLP, SemanticEncoder

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """ImageNet VGG-19 conv trunk (`torchvision.models.vgg19().features`), globally pooled to [B, 512].

    Expects RGB [B, 3, H, W] in [0, 1]; applies the ImageNet mean/std itself. Its keys are the
    `features.*` keys of torchvision's `vgg19-dcbb9e9d.pth` (load with `aiaic.models.pretrained`).
    """

    out_dim = 512
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.features = vgg19(weights=None).features
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.features((rgb - self.mean) / self.std).mean(dim=(2, 3))


class AudioInfusedColorizer(nn.Module):
    """The whole model, built from a `ModelConfig`. See the module docstring for the equations."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.backbone = build_backbone(cfg.backbone, cfg)
        channels = cast(int, self.backbone.insertion_channels)
        self.semantic = SemanticEncoder(cfg.semantic_channels, cfg.semantic_dim)
        self.condition = ConditionMLP(cfg.semantic_dim, cfg.cond_dim)
        self.guidance = DynamicSemanticGuidance(channels, cfg.cond_dim, cfg.guidance_hidden)
        self.audio = AudioEncoder()
        self.a2v = AudioToVisual(AUDIO_FEATURE_DIM, cfg.semantic_dim, cfg.a2v_hidden)
        # the relevance net's own encoders exist only when external pretrained ones are configured;
        # otherwise it reuses E_s (on the grey frame) and E_a.
        self.relevance_image: nn.Module | None = (
            VGG19Features() if cfg.relevance_image_encoder == "vgg19" else None
        )
        self.relevance_audio: nn.Module | None = (
            AudioEncoder() if cfg.relevance_audio_encoder == "vggsound" else None
        )
        if self.relevance_image is not None:
            image_dim = VGG19Features.out_dim
        elif cfg.relevance_image_encoder == "backbone":
            image_dim = cast(int, self.backbone.feature_dim)
        else:
            image_dim = self.semantic.feature_dim
        self.relevance = RelevanceNet(AUDIO_FEATURE_DIM, image_dim, cfg.relevance_dim, cfg.relevance_hidden)

    @property
    def components(self) -> tuple[str, ...]:
        """Names of the trainable/freezable parts, as used by `aiaic.train.stages`."""
        names = ["backbone", "semantic", "condition", "guidance", "audio", "a2v", "relevance"]
        if self.relevance_image is not None:
            names.append("relevance_image")
        if self.relevance_audio is not None:
            names.append("relevance_audio")
        return tuple(names)

    # --- the colour path -------------------------------------------------------------------
    def forward(
        self,
        L_n: torch.Tensor,
        c: torch.Tensor | None = None,
        r: torch.Tensor | None = None,
        feats: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """L_n [B, 1, H, W], c [B, cond_dim] or None, r [B] or None (= 1) -> ab_n [B, 2, H, W].

        c = None runs the plain backbone (what DSG with r = 0 gives, too). `feats`: `encode_grey(L_n)`
        when the caller already has it.
        """
        return self.forward_outputs(L_n, c, r, feats).ab

    def forward_outputs(
        self,
        L_n: torch.Tensor,
        c: torch.Tensor | None = None,
        r: torch.Tensor | None = None,
        feats: list[torch.Tensor] | None = None,
    ) -> BackboneOutput:
        """As `forward`, with the backbone's named extras beside ab_n (`Backbone.decode_outputs`)."""
        backbone = cast(Backbone, self.backbone)
        if c is None:
            return backbone.forward_outputs(L_n, feats=feats)
        if r is None:
            r = torch.ones(L_n.shape[0], device=L_n.device, dtype=L_n.dtype)
        guidance = self.guidance
        return backbone.forward_outputs(L_n, guide=lambda h: guidance(h, c, r), feats=feats)

    def encode_grey(self, L_n: torch.Tensor) -> list[torch.Tensor]:
        """The backbone encoder's features of L_n [B, 1, H, W]: one pass that `forward` and, with
        relevance_image_encoder = "backbone", the relevance net can share."""
        encode = cast(Callable[[torch.Tensor], list[torch.Tensor]], self.backbone.encode)
        return encode(L_n)

    # --- semantics ---------------------------------------------------------------------------
    def visual_semantics(self, rgb: torch.Tensor) -> torch.Tensor:
        """f_v = E_s(Y_rgb), RGB [B, 3, H, W] in [0, 1] -> [B, semantic_dim], unit norm."""
        return self.semantic(rgb)

    def audio_features(self, mel: torch.Tensor) -> torch.Tensor:
        """E_a(A): A [B, 1, F, T] (see the module docstring) -> [B, 512]."""
        return self.audio(mel)

    def audio_semantics(self, mel: torch.Tensor) -> torch.Tensor:
        """f_a = A2V(E_a(A)): A [B, 1, F, T] -> [B, semantic_dim], unit norm."""
        return self.a2v(self.audio(mel))

    # --- relevance ---------------------------------------------------------------------------
    def relevance_image_features(
        self, L_n: torch.Tensor, feats: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """E_v(X) on the grey frame: L_n [B, 1, H, W] -> [B, image_dim]. `feats`: `encode_grey(L_n)`, if
        known (used where the backbone's encoder serves as E_v)."""
        if self.relevance_image is not None:
            return self.relevance_image(grey_rgb(L_n))
        if self.config.relevance_image_encoder == "backbone":
            pool = cast(Callable[[list[torch.Tensor]], torch.Tensor], self.backbone.pool)
            return pool(feats if feats is not None else self.encode_grey(L_n))
        return self.semantic.features(grey_rgb(L_n))

    def relevance_audio_features(
        self, mel: torch.Tensor, audio_feat: torch.Tensor | None = None
    ) -> torch.Tensor:
        """E_a'(A'): A' [B, 1, F, T] (the relevance audio input) -> [B, 512]. Without a pretrained E_a' it
        is E_a (and A' = A), so a caller that already has E_a(A) passes it as `audio_feat` [B, 512] and
        the encoder does not run twice."""
        if self.relevance_audio is not None:
            return self.relevance_audio(mel)
        return audio_feat if audio_feat is not None else self.audio(mel)

    def relevance_logits(
        self,
        L_n: torch.Tensor,
        mel: torch.Tensor,
        audio_feat: torch.Tensor | None = None,
        feats: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """w * cos(h_a, h_v) + b, [B] (before the sigmoid). `audio_feat` (E_a(mel)) and `feats`
        (`encode_grey(L_n)`): encoder outputs the caller already has, so they are not computed again."""
        return self.relevance.logits(
            self.relevance_audio_features(mel, audio_feat), self.relevance_image_features(L_n, feats)
        )

    def relevance_score(
        self,
        L_n: torch.Tensor,
        mel: torch.Tensor,
        has_audio: torch.Tensor | None = None,
        audio_feat: torch.Tensor | None = None,
        feats: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """r [B] in (0, 1); exactly 0 where has_audio [B] (bool) is False. `audio_feat`, `feats`: as in
        `relevance_logits`."""
        r = torch.sigmoid(self.relevance_logits(L_n, mel, audio_feat, feats))
        if has_audio is not None:
            r = torch.where(has_audio.to(r.device), r, torch.zeros_like(r))
        return r


def build_colorizer(cfg: ModelConfig) -> AudioInfusedColorizer:
    """Build the model (random weights) from its config."""
    return AudioInfusedColorizer(cfg)
