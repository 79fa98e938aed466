"""Audio guidance inputs and one batched colorize step, written against `aiaic.runs.inference.InferenceModel`.

`InferenceModel` (aiaic/runs/inference.py) provides `image_size`, `mel_config`, `audio_input(pcm
windows) -> {"mel": ..., "spec": ...}` (what its audio encoders read) and `predict(L_n [B, 1, S, S],
audio, has_audio bool [B]) -> (ab_n [B, 2, S, S], r [B])`, with r = 0 where has_audio is False.

Images go through `predict` (the contract). Videos compute the guidance (c, r) once per second with
`InferenceModel.guidance` and colour each frame with `predict_guided`, so the audio networks run
once per second, not once per frame, and the guidance can be smoothed over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aiaic.colorize.audio import is_silent
from aiaic.colorize.compose import join_full_resolution, luminance_uint8, model_input
from aiaic.colorize.strips import join_into, model_input_strips


@dataclass(frozen=True)
class AudioInput:
    """What guides one second (or, fixed, every second): the model's audio input {field: [1, F, T]}
    (zeros when absent) and has_audio. The guidance (c, r) itself is `aiaic.runs.variants.Guidance`."""

    audio: dict[str, torch.Tensor]
    has_audio: bool
    why: str  # "audio", "silent", "missing", "disabled"


def no_guidance(model, why: str) -> AudioInput:
    return AudioInput({k: v[0] for k, v in model.audio_input([None]).items()}, False, why)


def guidance_from_pcm(model, pcm: np.ndarray | None, silence_db: float) -> AudioInput:
    """AudioInput for one second of mono PCM at the model's sample rate (None = no audio)."""
    if pcm is None:
        return no_guidance(model, "missing")
    if is_silent(pcm, silence_db):
        return no_guidance(model, "silent")
    return AudioInput({k: v[0] for k, v in model.audio_input([pcm]).items()}, True, "audio")


@torch.inference_mode()
def colorize_batch(
    model, frames: np.ndarray, guidance: list[AudioInput], device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Colorize uint8 frames [B, H, W, 3] (or grey [B, H, W]) at full resolution with `model.predict`.

    Returns (uint8 RGB [B, H, W, 3] whose L equals the input's, r float [B]).
    """
    if len(guidance) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(guidance)} guidance entries")
    L_full = luminance_uint8(frames, device)
    L_n = model_input(L_full, model.image_size)
    audio = {k: torch.stack([g.audio[k] for g in guidance]).to(device) for k in guidance[0].audio}
    has_audio = torch.tensor([g.has_audio for g in guidance], dtype=torch.bool, device=device)
    ab_n, r = model.predict(L_n, audio, has_audio)
    return join_full_resolution(L_full, ab_n.float()), r.float().reshape(-1).cpu().numpy()


@torch.inference_mode()
def colorize_guided(
    model, frames: np.ndarray, c: torch.Tensor | None, r: torch.Tensor, device: torch.device
) -> np.ndarray:
    """Colorize uint8 frames [B, H, W, 3] with given guidance c [B, cond_dim] (or None) and r [B]
    (`InferenceModel.predict_guided`); returns uint8 RGB [B, H, W, 3] with the input's L, joined strip
    by strip (`aiaic.colorize.strips`: no full-size float arrays)."""
    L_n = model_input_strips(frames, model.image_size).to(device)
    ab_n = model.predict_guided(L_n, None if c is None else c.to(device), r.to(device))
    return join_into(frames, ab_n.float())
