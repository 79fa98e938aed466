"""The VGGSound spectrogram front end: one second of 16 kHz mono PCM -> the input of the public
VGGSound ResNet-18 (hche11/VGGSound), computed in torch, batched, on any device.

The official loader (VGGSound `dataloader.py`) reads a clip, then::

    samples = np.tile(samples, 10)[:160000]          # repeat, keep the first 10 s
    samples[samples > 1.] = 1.; samples[samples < -1.] = -1.
    f, t, S = scipy.signal.spectrogram(samples, 16000, nperseg=512, noverlap=353)
    S = np.log(S + 1e-7)
    S = (S - S.mean()) / (S.std() + 1e-9)           # one mean and std per clip
    # -> [257, 1004]; the network reads [B, 1, 257, 1004]

with scipy's defaults left in place: a periodic Tukey(0.25) window, the mean of each segment removed
(detrend "constant"), one-sided PSD with "density" scaling (|X|^2 / (fs * sum(w^2)), doubled except
at DC and Nyquist), no padding.

**How a one-second window maps onto the 10-s tiling.** We tile our one-second window to the official
length (10 x 16000 samples) exactly as the official loader tiles a clip: the result is exactly the
network's input for a clip that *is* that second, i.e. what it was trained to hear for a one-second
sound looped (the official code loops every clip shorter than 10 s the same way). `length_samples`
can be lowered (e.g. 16000: no tiling, [257, 98], ten times cheaper), which is no longer the official
input. Parameters live in `SpecConfig` and are recorded in every stage's config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.signal import get_window


@dataclass(frozen=True)
class SpecConfig:
    """The VGGSound spectrogram. Units: sample_rate in Hz; nperseg, noverlap, length_samples in samples.

    Attributes:
        sample_rate: PCM rate (the density scaling divides by it).
        nperseg: samples per FFT segment (257 frequency bins for 512).
        noverlap: samples shared by neighbouring segments (hop = nperseg - noverlap = 159).
        tukey_alpha: shape of the periodic Tukey window (scipy's default 0.25).
        length_samples: the PCM is tiled (repeated) to this length, then cut (official: 160000 = 10 s).
        log_eps: offset inside the log.
        std_eps: added to the per-clip standard deviation.
    """

    sample_rate: int = 16000
    nperseg: int = 512
    noverlap: int = 353
    tukey_alpha: float = 0.25
    length_samples: int = 160000
    log_eps: float = 1e-7
    std_eps: float = 1e-9

    def __post_init__(self) -> None:
        if not 0 <= self.noverlap < self.nperseg:
            raise ValueError(f"noverlap must be in [0, nperseg={self.nperseg}), got {self.noverlap}")
        if self.length_samples < self.nperseg:
            raise ValueError(f"length_samples ({self.length_samples}) must be >= nperseg ({self.nperseg})")
        if self.sample_rate < 1 or self.log_eps <= 0 or self.std_eps < 0:
            raise ValueError("sample_rate must be >= 1, log_eps > 0 and std_eps >= 0")

    @property
    def hop(self) -> int:
        return self.nperseg - self.noverlap

    @property
    def bins(self) -> int:
        """Frequency bins (257 for the default)."""
        return self.nperseg // 2 + 1

    @property
    def frames(self) -> int:
        """Time frames (1004 for the default)."""
        return 1 + (self.length_samples - self.nperseg) // self.hop

    @property
    def shape(self) -> tuple[int, int]:
        """[bins, frames] of one spectrogram ((257, 1004) for the default)."""
        return self.bins, self.frames

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=8)
def _window(nperseg: int, alpha: float) -> np.ndarray:
    """scipy.signal.spectrogram's window: get_window(('tukey', alpha), nperseg), periodic."""
    return np.asarray(get_window(("tukey", alpha), nperseg), dtype=np.float64)


def tile_to_length(pcm: torch.Tensor, length: int) -> torch.Tensor:
    """Repeat PCM [..., S] along time and keep the first `length` samples -> [..., length]
    (np.tile(x, k)[:length] for the smallest k that covers `length`)."""
    n = pcm.shape[-1]
    if n < 1:
        raise ValueError("cannot tile empty PCM")
    reps = -(-length // n)
    return pcm.repeat(*([1] * (pcm.dim() - 1)), reps)[..., :length]


def vggsound_spectrogram(pcm: torch.Tensor | np.ndarray, cfg: SpecConfig = SpecConfig()) -> torch.Tensor:
    """The official VGGSound input for PCM windows.

    Args:
        pcm: float PCM in [-1, 1] at `cfg.sample_rate`, [S] or [B, S] (S = 16000 for one second), on
            any device; float64 input is computed in float64, anything else in float32.
    Returns:
        [B, 1, bins, frames] ([B, 1, 257, 1004] for the default; [1, 1, ...] for a [S] input), per-clip
        standardised log PSD, on the input's device.
    """
    x = torch.as_tensor(pcm)
    if x.dim() == 1:
        x = x[None]
    if x.dim() != 2:
        raise ValueError(f"vggsound_spectrogram expects PCM [S] or [B, S], got {list(x.shape)}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = tile_to_length(x.to(dtype), cfg.length_samples).clamp(-1.0, 1.0)
    win = torch.as_tensor(_window(cfg.nperseg, cfg.tukey_alpha), dtype=dtype, device=x.device)
    seg = x.unfold(-1, cfg.nperseg, cfg.hop)  # [B, frames, nperseg]
    seg = (seg - seg.mean(dim=-1, keepdim=True)) * win
    power = torch.fft.rfft(seg, dim=-1).abs().square()  # [B, frames, bins]
    scale = torch.full(
        (cfg.bins,), 2.0 / (cfg.sample_rate * float((win * win).sum())), dtype=dtype, device=x.device
    )
    scale[0] /= 2.0
    if cfg.nperseg % 2 == 0:
        scale[-1] /= 2.0  # the Nyquist bin is not doubled
    # log(S + eps) - log(eps), which the per-clip standardisation removes anyway: near silence S << eps
    # and log(S + eps) differs from log(eps) by less than a float32 step (2e-6 at 16), so the official
    # float64 result (digital silence: a constant ~ -4e-6, i.e. zeros; near silence: the noise floor's
    # own pattern, standardised) is only reproduced in float32 through log1p(S / eps).
    spec = torch.log1p(power * scale / cfg.log_eps).transpose(1, 2)  # [B, bins, frames]
    mean = spec.mean(dim=(1, 2), keepdim=True)
    std = spec.std(dim=(1, 2), keepdim=True, unbiased=False)
    return ((spec - mean) / (std + cfg.std_eps))[:, None]
