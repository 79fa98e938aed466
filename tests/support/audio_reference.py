"""Reference implementations the library's audio front ends are held to in tests."""

from __future__ import annotations

import librosa
import numpy as np

from aiaic.data.audio import MelConfig


def librosa_log_mel(y: np.ndarray, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """The documented log-mel, computed by librosa: [n_mels, frames] float32."""
    mel = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32),
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        win_length=cfg.win_length,
        hop_length=cfg.hop_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        power=cfg.power,
        htk=cfg.htk,
        norm=None,
        center=False,
    )
    return np.log(mel + cfg.log_offset).astype(np.float32)
