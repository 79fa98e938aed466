"""Trained models for evaluation and colorize: `load_inference(run_dir, variant, device)`.

The variants (which stage folder, where c and r come from, the audio given or silenced) are the table
of `aiaic.runs.variants`: baseline, full, full_missing_audio (old name: missing_audio), no_r,
no_r_missing_audio, e2e.

    model = load_inference(Path("runs/demo"), "full", "cpu")
    audio = model.audio_input([pcm_second])            # what E_a (and E_a') read, from 16 kHz PCM
    ab_n, r = model.predict(L_n, audio, has_audio)     # L_n [B,1,H,W]

The audio argument of `predict`/`guidance` is a mapping {"mel": [B,1,64,97] normalised log-mel,
"spec": [B,1,257,T] VGGSound spectrogram} holding the fields the model reads
(`ModelConfig.audio_inputs`), or a bare normalised log-mel tensor for a model that reads only "mel".

A backbone alone, from its released weights and without any run (variant "baseline", no audio):

    model = load_backbone("ddcolor-tiny", Path("ddcolor_paper_tiny.pth"), 512, "cpu")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aiaic.config import build_config
from aiaic.data.audio import MelConfig, log_mel
from aiaic.data.loader import normalize_mel
from aiaic.data.spectrogram import vggsound_spectrogram
from aiaic.errors import RunError
from aiaic.models.colorizer import AudioInfusedColorizer, build_colorizer
from aiaic.models.config import ModelConfig, model_config_from_dict
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
        stage_dir: the RUN/<stage>/ folder it was loaded from (None for `load_backbone`).
    """

    model: AudioInfusedColorizer
    variant: str
    image_size: int
    mel_mean: torch.Tensor
    mel_std: torch.Tensor
    mel_config: MelConfig
    device: torch.device
    stage_dir: Path | None

    def normalize_mel(self, raw_log_mel: Any) -> torch.Tensor:
        """Raw log-mel [..., 64, 97] -> normalised with the train per-band mean/std (float32)."""
        return normalize_mel(raw_log_mel, self.mel_mean, self.mel_std)

    def audio_input(
        self, pcm: Sequence[np.ndarray | None], mels: Sequence[np.ndarray | None] | None = None
    ) -> dict[str, torch.Tensor]:
        """One-second 16 kHz mono PCM windows -> what the model's audio encoders read, on the CPU.

        Args:
            pcm: B float32 arrays [segment_samples] in [-1, 1], None where a sample has no audio.
            mels: optional stored raw log-mels [64, 97] for the same samples (the shards' `mel.npy`,
                what training read); where absent the log-mel is computed from the PCM.
        Returns:
            {"mel": [B, 1, 64, 97] normalised, and "spec": [B, 1, 257, T] where E_a or E_a' reads the
            VGGSound spectrogram}; zeros for a sample without audio (as the loader gives).
        """
        cfg = self.model.config
        out: dict[str, torch.Tensor] = {}
        zeros_mel = torch.zeros(1, self.mel_config.n_mels, self.mel_config.frames)
        mel_rows = []
        for i, x in enumerate(pcm):
            raw = mels[i] if mels is not None else None
            if raw is None and x is not None:
                raw = log_mel(np.asarray(x, dtype=np.float32), self.mel_config)
            mel_rows.append(
                zeros_mel if raw is None else self.normalize_mel(raw).reshape(1, *zeros_mel.shape[1:])
            )
        out["mel"] = torch.stack(mel_rows)
        spec_cfg = cfg.spectrogram
        if spec_cfg is not None and spec_cfg.sample_rate != self.mel_config.sample_rate:
            raise RunError(
                f"{self.stage_dir}: PCM is read at {self.mel_config.sample_rate} Hz but the "
                f"VGGSound spectrogram needs {spec_cfg.sample_rate} Hz"
            )
        if spec_cfg is not None:
            specs = []
            for i, x in enumerate(pcm):
                if x is None and mels is not None and mels[i] is not None:
                    raise ValueError(
                        f"sample {i} has a log-mel but no PCM; the VGGSound spectrogram is "
                        "computed from the PCM (the shards' pcm.npy)"
                    )
                specs.append(
                    torch.zeros(1, *spec_cfg.shape)
                    if x is None
                    else vggsound_spectrogram(torch.as_tensor(x, dtype=torch.float32), spec_cfg)[0]
                )
            out["spec"] = torch.stack(specs)
        return out

    def _audio_fields(
        self, audio: torch.Tensor | Mapping[str, torch.Tensor], B: int
    ) -> dict[str, torch.Tensor]:
        fields = {"mel": audio} if isinstance(audio, torch.Tensor) else dict(audio)
        for key in self.model.config.audio_inputs:
            if key not in fields:
                raise ValueError(
                    f"this model reads the audio input {key!r} (ModelConfig.audio_inputs = "
                    f"{list(self.model.config.audio_inputs)}); build it with audio_input()"
                )
            x = fields[key]
            if x.dim() != 4 or x.shape[0] != B or x.shape[1] != 1:
                raise ValueError(f"audio input {key!r} must be [B={B}, 1, F, T], got {list(x.shape)}")
        return {k: v.to(self.device, torch.float32) for k, v in fields.items()}

    @torch.no_grad()
    def predict(
        self,
        L_n: torch.Tensor,
        mel: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
        has_audio: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L_n [B, 1, H, W]; mel: the audio input (`audio_input`; a bare tensor is the normalised log-mel
        [B, 1, 64, 97]) or None (no audio); has_audio bool [B] or None (= True for every sample when
        audio is given) -> (ab_n [B, 2, H, W], r [B]) on the input's device.

        c and r come from the variant's sources (`aiaic.runs.variants`): r is 0 where has_audio is False
        (except for "no_r_missing_audio", which gives every sample a silent second with r = 1);
        "baseline" and "full_missing_audio" always return r = 0.
        """
        if L_n.dim() != 4 or L_n.shape[1] != 1:
            raise ValueError(f"predict expects L_n [B, 1, H, W], got {list(L_n.shape)}")
        if mel is not None:
            mel = self._audio_fields(mel, L_n.shape[0])  # checks the shapes for every variant
        L = L_n.to(self.device, torch.float32)
        feats = self.model.encode_grey(L)  # one encoder pass for the colours and the relevance net
        c, r = self._guidance(L, mel, has_audio, feats)
        ab_n = self.model(L, feats=feats) if c is None else self.model(L, c, r, feats=feats)
        return ab_n.to(L_n.device), r.to(L_n.device)

    @torch.no_grad()
    def guidance(
        self,
        L_n: torch.Tensor,
        mel: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
        has_audio: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The (c, r) that `predict` would use: L_n [B, 1, H, W] (the frame the relevance net sees),
        mel: the audio input (as in `predict`) or None, has_audio bool [B] or None -> (c [B, cond_dim],
        or None where the variant or the batch uses no audio, r [B]). For every input,
        `predict(L_n, mel, has_audio) == (predict_guided(L_n, *guidance(L_n, mel, has_audio)), r)`;
        a video computes (c, r) once per second and colours every frame of that second with it.
        """
        c, r = self._guidance(L_n.to(self.device, torch.float32), mel, has_audio)
        return (None if c is None else c.to(L_n.device)), r.to(L_n.device)

    def _guidance(
        self,
        L: torch.Tensor,
        mel: torch.Tensor | Mapping[str, torch.Tensor] | None,
        has_audio: torch.Tensor | None,
        feats: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(c or None, r) on `self.device` for L [B, 1, H, W] already there (see `guidance`); `feats`: the
        backbone encoder's features of L, if already computed."""
        spec, B, cfg = variant(self.variant), L.shape[0], self.model.config
        if spec.audio == "silenced":
            mel = self.silent_audio(B)
            has_audio = torch.ones(B, dtype=torch.bool)
        fields = None if mel is None else self._audio_fields(mel, B)
        c, r = guidance(
            self.model,
            spec.c,
            spec.r,
            L,
            mel=None if fields is None else fields[cfg.audio_input],
            rel_audio=None if fields is None else fields[cfg.relevance_audio_input],
            has_audio=has_audio,
            feats=feats,
        )
        return c, r

    def silent_audio(self, batch: int) -> dict[str, torch.Tensor]:
        """One second of silence through the model's audio front ends (`audio_input`), `batch` times,
        on `self.device`: what the audio path hears when the sound is missing."""
        silence = np.zeros(self.mel_config.segment_samples, dtype=np.float32)
        fields = self.audio_input([silence])
        return {k: v.to(self.device, torch.float32).expand(batch, -1, -1, -1) for k, v in fields.items()}

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
        raise RunError(
            f"{run_dir}: variant {spec.name!r} needs stage {stage!r}, which is missing "
            f"({stage_dir} has no config.json / {ckpt.WEIGHTS}); train it with "
            f"aiaic-train --stage {spec.train_stage}"
        )
    if not cfg.get("complete"):
        raise RunError(
            f"{run_dir}: stage {stage!r} (for variant {spec.name!r}) is not complete; "
            "finish it with aiaic-train --resume"
        )
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model_cfg = model_config_from_dict(cfg["model"])
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


def load_backbone(
    name: str, weights: Path | None, image_size: int, device: str | torch.device = "cpu"
) -> InferenceModel:
    """A registered backbone alone (variant "baseline": no audio, r = 0) in eval mode, from its released
    weights `weights` (a file or a Hugging Face repo id; None = random weights), predicting at
    `image_size` x `image_size` (as the backbone's `input_policy` allows). ConfigError for an
    unknown backbone or a bad size; InputError for a weights file that does not fit."""
    from aiaic.errors import ConfigError
    from aiaic.models.pretrained import load_backbone_weights

    model_cfg = ModelConfig(backbone=name, backbone_weights=None if weights is None else Path(weights))
    model = build_colorizer(model_cfg)
    problem = model.backbone.input_policy.problem(image_size, image_size)
    if problem:
        raise ConfigError(f"image size {image_size} for backbone {name!r}: {problem}")
    load_backbone_weights(model)
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model.to(dev).eval()
    mel_cfg = MelConfig()
    return InferenceModel(
        model=model,
        variant="baseline",
        image_size=image_size,
        mel_mean=torch.zeros(mel_cfg.n_mels),
        mel_std=torch.ones(mel_cfg.n_mels),
        mel_config=mel_cfg,
        device=dev,
        stage_dir=None,
    )
