"""The losses of the stages, as one `nn.Module` per stage (so DDP can wrap it).

`StageObjective(model, spec, stage_cfg)(batch)` takes a loader batch ("L", "ab", "rgb", "mel",
"neg_mel", "has_audio", "audio_mask" ..., and "spec"/"neg_spec" where E_a or E_a' reads the VGGSound
spectrogram: `ModelConfig.audio_input`) already on the device and returns a dict of scalar
tensors: "loss" (what is minimised) plus the terms and diagnostics worth logging ("r_mean", ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aiaic.models.colorizer import AudioInfusedColorizer
from aiaic.train.config import StageConfig
from aiaic.train.discriminator import DiscriminatorTrainer
from aiaic.train.losses import ColorLoss
from aiaic.train.stages import StageSpec


class StageObjective(nn.Module):
    """Computes one stage's loss from a batch. Holds the model (so DDP sees its parameters).

    `color_loss`: L_c of a colour stage (default: `ColorLoss(cfg.loss_terms())`, pixel terms only);
    `adversary`: the discriminator trained alongside when L_c has an adversarial term.
    """

    def __init__(self, model: AudioInfusedColorizer, spec: StageSpec, cfg: StageConfig,
                 color_loss: ColorLoss | None = None, adversary: DiscriminatorTrainer | None = None):
        super().__init__()
        self.model: AudioInfusedColorizer = model
        self.spec = spec
        self.cfg = cfg
        if color_loss is None and spec.objective == "color":
            color_loss = ColorLoss(cfg.loss_terms(), huber_delta=cfg.huber_delta)
        self.color_loss = color_loss
        self.adversary = adversary

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        if self.spec.objective == "color":
            return self._color(batch)
        if self.spec.objective == "semantic":
            return self._semantic(batch)
        if self.spec.objective == "relevance":
            return self._relevance(batch)
        raise ValueError(f"unknown objective {self.spec.objective!r}")

    # --- L_c -------------------------------------------------------------------------------
    def guidance_inputs(self, batch: dict, feats: list[torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(c [B, cond_dim] or None, r [B] or None) for this stage's colour objective; `feats`: the
        backbone encoder's features of batch["L"], if already computed."""
        m, spec = self.model, self.spec
        L = batch["L"]
        if spec.condition == "none":
            return None, None
        has_audio = batch["has_audio"].bool()
        mask = batch["audio_mask"].bool() if spec.uses_mask else torch.zeros_like(has_audio)
        if spec.condition == "visual":
            f = m.visual_semantics(batch["rgb"])
            audio_feat = None
        else:
            audio_feat = m.audio_features(batch[m.config.audio_input])
            f = m.a2v(audio_feat)
        c = m.condition(f)
        if spec.r_source == "unmasked":
            r = (~mask).to(L.dtype)
        elif spec.r_source == "audio_unmasked":
            r = (has_audio & ~mask).to(L.dtype)
        elif spec.r_source == "relevance":
            r = m.relevance_score(L, batch[m.config.relevance_audio_input], has_audio, audio_feat, feats)
        else:
            raise ValueError(f"stage {spec.name}: condition {spec.condition} needs an r source")
        return c, r

    def _color(self, batch: dict) -> dict[str, torch.Tensor]:
        feats = self.model.encode_grey(batch["L"])  # one encoder pass for the colours and, in stage 3, r
        c, r = self.guidance_inputs(batch, feats)
        pred = self.model(batch["L"], c, r, feats=feats)
        assert self.color_loss is not None
        out = self.color_loss(pred, batch["ab"], batch["L"])
        out["color_loss"] = out["loss"].detach()
        if r is not None:
            out["r_mean"] = r.detach().mean()
        return out

    def discriminator_step(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """After the colorizer's step: one discriminator step on the RGB images of `out` (this
        objective's output for the batch); {} when the stage trains no discriminator."""
        if self.adversary is None:
            return {}
        return self.adversary.step(out["rgb_real"], out["rgb_fake"])

    # --- L_s -------------------------------------------------------------------------------
    def _semantic(self, batch: dict) -> dict[str, torch.Tensor]:
        m = self.model
        with torch.no_grad():
            f_v = m.visual_semantics(batch["rgb"])
        f_a = m.audio_semantics(batch[m.config.audio_input])
        has_audio = batch["has_audio"].bool().to(f_a.dtype)
        per_sample = (f_a - f_v).square().sum(dim=1)
        # mean over samples with audio; 0 * sum keeps the graph (DDP) when a batch has none
        loss = (per_sample * has_audio).sum() / has_audio.sum().clamp_min(1.0)
        cos = (F.cosine_similarity(f_a, f_v, dim=1) * has_audio).sum() / has_audio.sum().clamp_min(1.0)
        return {"loss": loss, "semantic_loss": loss.detach(), "cos_fa_fv": cos.detach()}

    # --- BCE of the relevance net ----------------------------------------------------------
    def _relevance(self, batch: dict) -> dict[str, torch.Tensor]:
        m = self.model
        L = batch["L"]
        image_feat = m.relevance_image_features(L)
        # true and other pairs in one pass, so the heads' BatchNorm sees one batch of both
        key = m.config.relevance_audio_input
        audio_feat = m.relevance_audio_features(torch.cat([batch[key], batch["neg_" + key]]))
        logits = m.relevance.logits(audio_feat, torch.cat([image_feat, image_feat]))
        pos, neg = logits.chunk(2)
        weight = batch["has_audio"].bool().to(pos.dtype)
        target = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
        w = torch.cat([weight, weight])
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        loss = (bce * w).sum() / w.sum().clamp_min(1.0)
        with torch.no_grad():
            r_pos = (torch.sigmoid(pos) * weight).sum() / weight.sum().clamp_min(1.0)
            r_neg = (torch.sigmoid(neg) * weight).sum() / weight.sum().clamp_min(1.0)
            hits = ((pos > 0).float() + (neg <= 0).float()) * weight
            acc = hits.sum() / (2 * weight.sum().clamp_min(1.0))
        return {"loss": loss, "bce": loss.detach(), "r_true": r_pos, "r_other": r_neg, "acc": acc}
