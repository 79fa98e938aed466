"""The log-mel front end: one second of 16 kHz mono PCM -> log-mel [n_mels, frames], in plain numpy.

All parameters live in `MelConfig`; a recipe sets them in its `[extract.mel]` table, and they are
recorded in every shard's stats, the manifest and every stage's config. The default is the VGGish
front end used by AVE and AVSBench; it equals (a test holds it to librosa)::

    librosa.feature.melspectrogram(y, sr=16000, n_fft=512, win_length=400, hop_length=160,
        n_mels=64, fmin=125, fmax=7500, power=1.0, htk=True, norm=None, center=False)
    log(mel + 0.01)            # one second -> [64, 97]

`MelFront` computes it without librosa: a periodic Hann window of `win_length` centred in `n_fft`, the
STFT without centring, the HTK mel filterbank without normalisation, and the log offset. That avoids
librosa's first-call cost (~3 s per process: its imports and JIT) in every extraction worker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class MelConfig:
    """Log-mel parameters. Units: sample_rate in Hz, n_fft, window and hop in samples, fmin/fmax in Hz,
    segment_seconds in seconds. Only the HTK mel scale without filter normalisation is implemented."""

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

    def __post_init__(self) -> None:
        checks = [
            (self.sample_rate >= 1, f"sample_rate must be >= 1 Hz, got {self.sample_rate}"),
            (1 <= self.win_length <= self.n_fft, f"win_length must be in [1, n_fft={self.n_fft}]"),
            (self.hop_length >= 1 and self.n_mels >= 1, "hop_length and n_mels must be >= 1"),
            (
                0 <= self.fmin < self.fmax <= self.sample_rate / 2,
                f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin {self.fmin}, fmax {self.fmax}",
            ),
            (self.power > 0 and self.log_offset > 0, "power and log_offset must be > 0"),
            (self.htk, "only the HTK mel scale (htk = true) is implemented"),
            (self.segment_samples >= self.n_fft, "segment_seconds must hold at least n_fft samples"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"mel: {message}")

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


class MelFront:
    """The log-mel of `MelConfig` in numpy: float32 PCM [samples] -> float32 log-mel [n_mels, frames]."""

    def __init__(self, cfg: MelConfig):
        self.cfg = cfg
        n = np.arange(cfg.win_length)
        win = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)  # periodic Hann (scipy fftbins=True)
        lpad = (cfg.n_fft - cfg.win_length) // 2
        self.window = np.zeros(cfg.n_fft)
        self.window[lpad : lpad + cfg.win_length] = win
        self.fb = htk_filterbank(cfg)

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        c = self.cfg
        y = np.asarray(pcm, dtype=np.float32)
        n_frames = 1 + (y.shape[0] - c.n_fft) // c.hop_length
        idx = np.arange(c.n_fft)[None, :] + c.hop_length * np.arange(n_frames)[:, None]
        spec = np.abs(np.fft.rfft(y[idx] * self.window, axis=1)).astype(np.float32) ** c.power
        mel = self.fb @ spec.T
        return np.log(mel + c.log_offset).astype(np.float32)


def htk_filterbank(cfg: MelConfig) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular HTK mel filters, norm=None (as librosa.filters.mel)."""
    fftfreqs = np.fft.rfftfreq(cfg.n_fft, d=1.0 / cfg.sample_rate)
    mel_lo, mel_hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (cfg.fmin, cfg.fmax))
    mel_f = 700.0 * (10.0 ** (np.linspace(mel_lo, mel_hi, cfg.n_mels + 2) / 2595.0) - 1.0)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)


@lru_cache(maxsize=8)
def mel_front(cfg: MelConfig) -> MelFront:
    """The (cached) `MelFront` of `cfg`."""
    return MelFront(cfg)


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
    return mel_front(cfg)(y)
