"""The losses of the stages, as one `nn.Module` per stage (so DDP can wrap it).

`StageObjective(model, spec, stage_cfg)(batch)` takes a batch of `aiaic.data.loader` ("L", "ab", "rgb",
"mel", "neg_mel", "has_audio", "audio_mask" ...) already on the device and returns a dict of scalar
tensors: "loss" (what is minimised) plus the terms and diagnostics worth logging ("r_mean", ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aiaic.models.colorizer import AudioInfusedColorizer
from aiaic.train.config import StageConfig
from aiaic.train.stages import StageSpec


def color_loss(pred: torch.Tensor, target: torch.Tensor, kind: str, delta: float = 0.05) -> torch.Tensor:
    """L_c between ab_n predictions and targets [B, 2, H, W] (mean over every element)."""
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "l2":
        return F.mse_loss(pred, target)
    if kind == "huber":
        return F.smooth_l1_loss(pred, target, beta=delta)
    raise ValueError(f"unknown colour loss {kind!r}")


class StageObjective(nn.Module):
    """Computes one stage's loss from a batch. Holds the model (so DDP sees its parameters)."""

    def __init__(self, model: AudioInfusedColorizer, spec: StageSpec, cfg: StageConfig):
        super().__init__()
        self.model: AudioInfusedColorizer = model
        self.spec = spec
        self.cfg = cfg

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
            audio_feat = m.audio_features(batch["mel"])
            f = m.a2v(audio_feat)
        c = m.condition(f)
        if spec.r_source == "unmasked":
            r = (~mask).to(L.dtype)
        elif spec.r_source == "audio_unmasked":
            r = (has_audio & ~mask).to(L.dtype)
        elif spec.r_source == "relevance":
            r = m.relevance_score(L, batch["mel"], has_audio, audio_feat, feats)
        else:
            raise ValueError(f"stage {spec.name}: condition {spec.condition} needs an r source")
        return c, r

    def _color(self, batch: dict) -> dict[str, torch.Tensor]:
        feats = self.model.encode_grey(batch["L"])  # one encoder pass for the colours and, in stage 3, r
        c, r = self.guidance_inputs(batch, feats)
        pred = self.model(batch["L"], c, r, feats=feats)
        loss = color_loss(pred, batch["ab"], self.cfg.color_loss, self.cfg.huber_delta)
        out = {"loss": loss, "color_loss": loss.detach()}
        if r is not None:
            out["r_mean"] = r.detach().mean()
        return out

    # --- L_s -------------------------------------------------------------------------------
    def _semantic(self, batch: dict) -> dict[str, torch.Tensor]:
        m = self.model
        with torch.no_grad():
            f_v = m.visual_semantics(batch["rgb"])
        f_a = m.audio_semantics(batch["mel"])
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
        audio_feat = m.relevance_audio_features(torch.cat([batch["mel"], batch["neg_mel"]]))
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
