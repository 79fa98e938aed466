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
from aiaic.runs.variants import Guidance, guidance
from aiaic.train.config import StageConfig
from aiaic.train.discriminator import DiscriminatorTrainer
from aiaic.train.losses import ColorLoss
from aiaic.train.stages import StageSpec


class StageObjective(nn.Module):
    """Computes one stage's loss from a batch. Holds the model (so DDP sees its parameters).

    `color_loss`: L_c of a colour stage (default: `ColorLoss(cfg.loss_terms())`, pixel terms only);
    `adversary`: the discriminator trained alongside when L_c has an adversarial term.
    """

    def __init__(
        self,
        model: AudioInfusedColorizer,
        spec: StageSpec,
        cfg: StageConfig,
        color_loss: ColorLoss | None = None,
        adversary: DiscriminatorTrainer | None = None,
    ):
        super().__init__()
        self.model: AudioInfusedColorizer = model
        self.spec = spec
        self.cfg = cfg
        if color_loss is None and spec.colours:
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
        if self.spec.objective == "color_relevance":
            return self._color_relevance(batch)
        raise ValueError(f"unknown objective {self.spec.objective!r}")

    # --- L_c -------------------------------------------------------------------------------
    def guidance_inputs(
        self, batch: dict, feats: list[torch.Tensor] | None = None, audio_feat: torch.Tensor | None = None
    ) -> Guidance:
        """(c [B, cond_dim] or None, r [B]) for this stage's colour objective, from the
        stage's sources of c and r (`aiaic.runs.variants.guidance`); `feats`: the backbone encoder's
        features of batch["L"], `audio_feat`: E_a of the batch's audio, if already computed."""
        spec, cfg = self.spec, self.model.config
        return guidance(
            self.model,
            spec.c,
            spec.r,
            batch["L"],
            rgb=batch.get("rgb"),
            mel=batch.get(cfg.audio_input),
            rel_audio=batch.get(cfg.relevance_audio_input),
            has_audio=batch["has_audio"],
            mask=batch["audio_mask"] if spec.uses_mask else None,
            feats=feats,
            audio_feat=audio_feat,
        )

    def _color(
        self, batch: dict, feats: list[torch.Tensor] | None = None, audio_feat: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        if feats is None:  # one encoder pass for the colours and, where r comes from the relevance net, r
            feats = self.model.encode_grey(batch["L"])
        c, r = self.guidance_inputs(batch, feats, audio_feat)
        pred = self.model.forward_outputs(batch["L"], c, r, feats=feats)
        assert self.color_loss is not None
        out = self.color_loss(pred.ab, batch["ab"], batch["L"], pred.extras, batch)
        out["color_loss"] = out["loss"].detach()
        if self.spec.c != "none":
            out["r_mean"] = r.detach().mean()
        return out

    def discriminator_step(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """After the colorizer's step: one discriminator step on the RGB images of `out` (this
        objective's output for the batch); {} when the stage trains no discriminator."""
        if self.adversary is None:
            return {}
        kind = self.adversary.spec.input  # "rgb" or "lab": what the critic reads
        return self.adversary.step(out[f"{kind}_real"], out[f"{kind}_fake"])

    def _color_relevance(self, batch: dict) -> dict[str, torch.Tensor]:
        """L_c + BCE (e2e): E_a runs once on the true and the other audio; the relevance heads see
        detached encoder features, so BCE trains only them and L_c only the colour path."""
        m = self.model
        ak, rk = m.config.audio_input, m.config.relevance_audio_input
        n = batch[ak].shape[0]
        audio_all = m.audio_features(torch.cat([batch[ak], batch["neg_" + ak]]))
        feats = m.encode_grey(batch["L"])
        out = self._color(batch, feats, audio_feat=audio_all[:n])
        image_feat = m.relevance_image_features(batch["L"], feats).detach()
        rel_all = torch.cat([batch[rk], batch["neg_" + rk]])
        audio_feat = m.relevance_audio_features(rel_all, audio_all).detach()
        rel = relevance_bce(m, image_feat, audio_feat, batch["has_audio"])
        out["loss"] = out["loss"] + rel["loss"]
        out["bce"] = rel.pop("loss").detach()
        out.update(rel)
        return out

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
        image_feat = m.relevance_image_features(batch["L"])
        # true and other pairs in one pass, so the heads' BatchNorm sees one batch of both
        key = m.config.relevance_audio_input
        audio_feat = m.relevance_audio_features(torch.cat([batch[key], batch["neg_" + key]]))
        out = relevance_bce(m, image_feat, audio_feat, batch["has_audio"])
        out["bce"] = out["loss"].detach()
        return out


def relevance_bce(
    model: AudioInfusedColorizer, image_feat: torch.Tensor, audio_feat: torch.Tensor, has_audio: torch.Tensor
) -> dict[str, torch.Tensor]:
    """BCE of the relevance net: image_feat [B, image_dim] of the frames, audio_feat [2B, audio_dim] of
    their own audio then audio of other videos (one pass, so the heads' BatchNorm sees one batch of
    both); has_audio bool [B] weights the samples. Returns "loss" and the diagnostics "r_true",
    "r_other", "acc"."""
    logits = model.relevance.logits(audio_feat, torch.cat([image_feat, image_feat]))
    pos, neg = logits.chunk(2)
    weight = has_audio.bool().to(pos.dtype)
    target = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
    w = torch.cat([weight, weight])
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = (bce * w).sum() / w.sum().clamp_min(1.0)
    with torch.no_grad():
        n = weight.sum().clamp_min(1.0)
        r_pos = (torch.sigmoid(pos) * weight).sum() / n
        r_neg = (torch.sigmoid(neg) * weight).sum() / n
        acc = (((pos > 0).float() + (neg <= 0).float()) * weight).sum() / (2 * n)
    return {"loss": loss, "r_true": r_pos, "r_other": r_neg, "acc": acc}
