"""The VGGSound spectrogram front end against scipy's, on real audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch

from aiaic.colorize.audio import read_audio_window
from aiaic.data.audio import MelConfig
from aiaic.data.spectrogram import SpecConfig, tile_to_length, vggsound_spectrogram


def official_spectrogram(pcm: np.ndarray) -> np.ndarray:
    """The VGGSound authors' loader, step by step (their dataloader.py), on one clip."""
    samples = np.tile(pcm, 10)[:160000]
    samples[samples > 1.0] = 1.0
    samples[samples < -1.0] = -1.0
    _, _, spec = scipy.signal.spectrogram(samples, 16000, nperseg=512, noverlap=353)
    spec = np.log(spec + 1e-7)
    return (spec - spec.mean()) / (spec.std() + 1e-9)


def _real_seconds(shared_data: Path) -> np.ndarray:
    files = sorted((shared_data / "audio" / "clipsep").glob("*.wav"))[:3] + [
        shared_data / "audio" / "moviepy" / "rain.mp3"
    ]
    pcm = [read_audio_window(f, None, MelConfig())[0] for f in files]
    return np.stack(pcm).astype(np.float64)


def test_matches_scipy_on_real_audio(shared_data):
    pcm = _real_seconds(shared_data)
    loud = np.clip(pcm[0] * 6.0, -3, 3)  # exercises the clipping to [-1, 1]
    assert np.abs(loud).max() > 1.0
    pcm = np.concatenate([pcm, loud[None]])
    ours64 = vggsound_spectrogram(torch.from_numpy(pcm)).numpy()
    ours32 = vggsound_spectrogram(torch.from_numpy(pcm.astype(np.float32))).numpy()
    assert ours64.shape == (len(pcm), 1, 257, 1004)
    for i, x in enumerate(pcm):
        ref = official_spectrogram(x.copy())
        assert np.abs(ours64[i, 0] - ref).max() < 1e-9
        assert np.abs(ours32[i, 0] - ref).max() < 1e-4
    # different sounds give different spectrograms (the comparison is not between constants)
    assert np.abs(ours64[0] - ours64[1]).mean() > 0.1


def test_shape_and_tiling():
    cfg = SpecConfig()
    assert cfg.shape == (257, 1004) and cfg.hop == 159
    x = torch.arange(5.0)[None]
    assert tile_to_length(x, 12).tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]]
    short = SpecConfig(length_samples=16000)
    assert vggsound_spectrogram(torch.zeros(2, 16000) + 0.1, short).shape == (2, 1, 257, 98)
    with pytest.raises(ValueError, match="PCM"):
        vggsound_spectrogram(torch.zeros(1, 1, 16000))


def test_silence_gives_the_official_zeros():
    """Digital silence: the official float64 steps give a constant within 4e-6 of zero (the last bits of
    np.mean over identical values, divided by std + 1e-9); ours gives zeros, in float32 and float64,
    not the constant field of float32 rounding divided by a tiny epsilon (values near +-1)."""
    silence = np.zeros(16000)
    ref = official_spectrogram(silence.copy())
    assert np.abs(ref).max() < 4e-6 and ref.max() == ref.min()
    for dtype in (torch.float32, torch.float64):
        ours = vggsound_spectrogram(torch.zeros(16000, dtype=dtype)).numpy()[0, 0]
        assert np.abs(ours - ref).max() < 4e-6
        assert np.all(ours == 0.0)


@pytest.mark.parametrize("amplitude", [1e-6, 1 / 32768, 1e-4])
def test_near_silence_matches_the_official_steps(amplitude):
    """Near silence (a noise floor of one int16 step, or below): the official steps standardise the
    floor's own pattern (std 0.45 at 1e-6, where S.std() is near the 1e-9 offset; ~1 above);
    ours in float32 equals them to 1e-5 (the log of S + 1e-7 in float32 would lose it entirely)."""
    rng = np.random.default_rng(7)
    pcm = rng.integers(-1, 2, 16000).astype(np.float64) * amplitude
    ref = official_spectrogram(pcm.copy())
    assert ref.std() > 0.4  # a real pattern, not a constant
    for dtype in (torch.float32, torch.float64):
        ours = vggsound_spectrogram(torch.from_numpy(pcm).to(dtype)).numpy()[0, 0]
        assert np.abs(ours - ref).max() < 1e-5, dtype
