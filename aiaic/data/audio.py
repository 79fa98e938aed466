"""The audio front end: one second of 16 kHz mono PCM -> log-mel [n_mels, frames].

All parameters live in `MelConfig` and are recorded in every shard's stats and in the manifest.
The default is the VGGish front end used by AVE and AVSBench::

    librosa.feature.melspectrogram(y, sr=16000, n_fft=512, win_length=400, hop_length=160,
        n_mels=64, fmin=125, fmax=7500, power=1.0, htk=True, norm=None, center=False)
    log(mel + 0.01)            # one second -> [64, 97]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import librosa
import numpy as np


@dataclass(frozen=True)
class MelConfig:
    """Log-mel parameters. Units: sample_rate in Hz, window and hop in samples, fmin/fmax in Hz."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    power: float = 1.0
    htk: bool = True
    log_offset: float = 0.01
    segment_seconds: float = 1.0

    @property
    def segment_samples(self) -> int:
        """Samples in one segment (16000 for one second at 16 kHz)."""
        return int(round(self.sample_rate * self.segment_seconds))

    @property
    def frames(self) -> int:
        """Mel frames per segment with center=False (97 for the default)."""
        return 1 + (self.segment_samples - self.n_fft) // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


def log_mel(pcm: np.ndarray, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """Log-mel of mono PCM.

    Args:
        pcm: float32 samples in [-1, 1], shape [samples], at `cfg.sample_rate`.
    Returns:
        float32 array [n_mels, frames]; one segment of `cfg.segment_samples` gives [64, 97].
    """
    y = np.asarray(pcm, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"log_mel expects mono PCM of shape [samples], got {y.shape}")
    if y.shape[0] < cfg.n_fft:
        raise ValueError(f"log_mel needs at least n_fft={cfg.n_fft} samples, got {y.shape[0]}")
    mel = librosa.feature.melspectrogram(
        y=y,
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
