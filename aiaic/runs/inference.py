"""Trained models for evaluation and colorize: `load_inference(run_dir, variant, device)`.

The variants (which stage folder, where c and r come from, the audio given or silenced) are the table
of `aiaic.runs.variants`: baseline, full, full_missing_audio (old name: missing_audio), no_r,
no_r_missing_audio, e2e.

    model = load_inference(Path("runs/demo"), "full", "cpu")
    ab_n, r = model.predict(L_n, mel, has_audio)      # L_n [B,1,H,W], mel [B,1,64,97] normalised
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aiaic.config import build_config
from aiaic.data.audio import MelConfig, log_mel
from aiaic.data.loader import normalize_mel
from aiaic.errors import RunError
from aiaic.models.colorizer import AudioInfusedColorizer, build_colorizer
from aiaic.models.config import ModelConfig
from aiaic.runs import checkpoint as ckpt
from aiaic.runs.device import resolve_device
from aiaic.runs.variants import canonical_name, guidance, variant


@dataclass
class InferenceModel:
    """A trained colorizer in eval mode with what is needed to feed it.

    Attributes:
        model: the `AudioInfusedColorizer`.
        variant: a name of `aiaic.runs.variants.VARIANTS`.
        image_size: the training crop side (pixels); predict at this size (any multiple of 2**depth works).
        mel_mean, mel_std: float32 [64] train statistics of the log-mel (from the split manifest).
        mel_config: the log-mel front end the model was trained with.
        device: where the model lives.
        stage_dir: the RUN/<stage>/ folder it was loaded from.
    """

    model: AudioInfusedColorizer
    variant: str
    image_size: int
    mel_mean: torch.Tensor
    mel_std: torch.Tensor
    mel_config: MelConfig
    device: torch.device
    stage_dir: Path

    def normalize_mel(self, raw_log_mel: Any) -> torch.Tensor:
        """Raw log-mel [..., 64, 97] -> normalised with the train per-band mean/std (float32)."""
        return normalize_mel(raw_log_mel, self.mel_mean, self.mel_std)

    @torch.no_grad()
    def predict(self, L_n: torch.Tensor, mel: torch.Tensor | None = None,
                has_audio: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """L_n [B, 1, H, W]; mel [B, 1, 64, 97] normalised, or None (no audio); has_audio bool [B] or None
        (= True for every sample when mel is given) -> (ab_n [B, 2, H, W], r [B]) on the input's device.

        c and r come from the variant's sources (`aiaic.runs.variants`): r is 0 where has_audio is False
        (except for "no_r_missing_audio", which gives every sample a silent second with r = 1);
        "baseline" and "full_missing_audio" always return r = 0.
        """
        if L_n.dim() != 4 or L_n.shape[1] != 1:
            raise ValueError(f"predict expects L_n [B, 1, H, W], got {list(L_n.shape)}")
        B = L_n.shape[0]
        if mel is not None and (mel.dim() != 4 or mel.shape[0] != B or mel.shape[1] != 1):
            raise ValueError(f"predict expects mel [B={B}, 1, 64, 97], got {list(mel.shape)}")
        L = L_n.to(self.device, torch.float32)
        feats = self.model.encode_grey(L)  # one encoder pass for the colours and the relevance net
        c, r = self._guidance(L, mel, has_audio, feats)
        ab_n = self.model(L, feats=feats) if c is None else self.model(L, c, r, feats=feats)
        return ab_n.to(L_n.device), r.to(L_n.device)

    @torch.no_grad()
    def guidance(self, L_n: torch.Tensor, mel: torch.Tensor | None = None,
                 has_audio: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The (c, r) that `predict` would use: L_n [B, 1, H, W] (the frame the relevance net sees),
        mel [B, 1, 64, 97] normalised or None, has_audio bool [B] or None -> (c [B, cond_dim], or None
        where the variant or the batch uses no audio, r [B]). For every input,
        `predict(L_n, mel, has_audio) == (predict_guided(L_n, *guidance(L_n, mel, has_audio)), r)`;
        a video computes (c, r) once per second and colours every frame of that second with it.
        """
        c, r = self._guidance(L_n.to(self.device, torch.float32), mel, has_audio)
        return (None if c is None else c.to(L_n.device)), r.to(L_n.device)

    def _guidance(self, L: torch.Tensor, mel: torch.Tensor | None, has_audio: torch.Tensor | None,
                  feats: list[torch.Tensor] | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(c or None, r) on `self.device` for L [B, 1, H, W] already there (see `guidance`); `feats`: the
        backbone encoder's features of L, if already computed."""
        spec = variant(self.variant)
        if spec.audio == "silenced":
            mel = self.silent_audio(L.shape[0])
            has_audio = torch.ones(L.shape[0], dtype=torch.bool)
        c, r, _ = guidance(self.model, spec.c, spec.r, L, mel=None if mel is None else mel.to(self.device,
                           torch.float32), has_audio=has_audio, feats=feats)
        return c, r

    def silent_audio(self, batch: int) -> torch.Tensor:
        """One second of silence through the model's audio front end: normalised [batch, 1, n_mels,
        frames] on `self.device` (what the audio path hears when the sound is missing)."""
        silence = np.zeros(self.mel_config.segment_samples, dtype=np.float32)
        mel = self.normalize_mel(log_mel(silence, self.mel_config)).to(self.device, torch.float32)
        return mel[None, None].expand(batch, 1, -1, -1)

    @torch.no_grad()
    def predict_guided(self, L_n: torch.Tensor, c: torch.Tensor | None, r: torch.Tensor) -> torch.Tensor:
        """ab_n [B, 2, H, W] for L_n [B, 1, H, W] with given guidance c [B, cond_dim] (None: the
        backbone alone) and r [B] in [0, 1] (e.g. a time-smoothed mix of `guidance` results)."""
        out_device = L_n.device
        L = L_n.to(self.device, torch.float32)
        if c is None or variant(self.variant).c == "none":
            return self.model(L).to(out_device)
        c = c.to(self.device, torch.float32)
        return self.model(L, c, r.to(self.device, torch.float32)).to(out_device)


def stage_dir_for(run_dir: Path, name: str) -> Path:
    """RUN/<stage>/ holding the weights of variant `name`; RunError for an unknown variant."""
    return Path(run_dir) / variant(name).stage


def load_inference(run_dir: Path, name: str, device: str | torch.device = "cpu") -> InferenceModel:
    """Load RUN/<stage>/ for the variant `name` (`aiaic.runs.variants`; the old name "missing_audio" is
    accepted); RunError naming an unknown variant or the missing or unfinished stage."""
    spec = variant(name)
    stage_dir = stage_dir_for(run_dir, name)
    stage = stage_dir.name
    cfg = ckpt.read_config(stage_dir)
    if cfg is None or not (stage_dir / ckpt.WEIGHTS).is_file():
        raise RunError(f"{run_dir}: variant {spec.name!r} needs stage {stage!r}, which is missing "
                       f"({stage_dir} has no config.json / {ckpt.WEIGHTS}); train it with "
                       f"aiaic-train --stage {spec.train_stage}")
    if not cfg.get("complete"):
        raise RunError(f"{run_dir}: stage {stage!r} (for variant {spec.name!r}) is not complete; "
                       "finish it with aiaic-train --resume")
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model_cfg = build_config(ModelConfig, cfg["model"])
    model = build_colorizer(model_cfg)
    ckpt.load_weights(stage_dir / ckpt.WEIGHTS, model)
    model.to(dev).eval()
    mel_cfg_dict = cfg.get("mel_config") or {}
    return InferenceModel(
        model=model,
        variant=canonical_name(name),
        image_size=int(cfg["image_size"]),
        mel_mean=torch.tensor(cfg["mel_mean"], dtype=torch.float32),
        mel_std=torch.tensor(cfg["mel_std"], dtype=torch.float32),
        mel_config=build_config(MelConfig, mel_cfg_dict),
        device=dev,
        stage_dir=stage_dir,
    )
