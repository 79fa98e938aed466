"""One audio decoding path and one log-mel: extraction and colorize hear a file the same way, and the
numpy log-mel equals librosa's for any recipe settings."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from support.audio_reference import librosa_log_mel
from support.fixtures_av import make_clip

from aiaic.colorize.audio import Soundtrack, read_audio_window
from aiaic.config import build_config, load_recipe, recipe_section
from aiaic.data.audio import MelConfig, log_mel
from aiaic.data.decode import VideoClip


def _extracted(path: Path) -> dict[int, np.ndarray]:
    with VideoClip(str(path)) as clip:
        return {s.index: s.pcm for s in clip.segments("all", 32)}


def _write_audio(path: Path, pcm: np.ndarray, rate: int, layout: str) -> None:
    """A lossless (pcm_s16le) wav whose every channel is `pcm`."""
    channels = 2 if layout == "stereo" else 1
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=rate)
        s.layout = layout
        s.format = "s16"
        data = np.round(np.tile(pcm[None], (channels, 1)).T.reshape(1, -1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        for packet in s.encode(frame):
            c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)


def test_stereo_with_equal_channels_is_its_mono_twin(tmp_path):
    # video clips (extraction) whose 44.1 kHz sound is the same tone on one or on two channels
    clips = {}
    for layout in ("mono", "stereo"):
        spec = make_clip(tmp_path / f"{layout}.avi", seconds=3, fps=10, sample_rate=44100, layout=layout)
        assert spec.channels == (2 if layout == "stereo" else 1)
        clips[layout] = spec.path
    ext = {k: _extracted(p) for k, p in clips.items()}
    assert sorted(ext["mono"]) == sorted(ext["stereo"]) == [0, 1, 2]
    for i in ext["mono"]:
        mono, stereo = ext["mono"][i], ext["stereo"][i]
        assert np.sqrt(np.mean(mono**2)) > 0.2  # the tone is there (amplitude 0.5)
        np.testing.assert_allclose(stereo, mono, atol=1e-6)
        np.testing.assert_allclose(log_mel(stereo), log_mel(mono), atol=1e-4)
    # colorize reads the video's soundtrack second by second: the same samples as extraction
    for layout, path in clips.items():
        track = Soundtrack(path, 0.0, MelConfig(), keep_packets=False)
        try:
            for i in (0, 1):
                np.testing.assert_allclose(track.second(i), ext[layout][i], atol=1e-6)
        finally:
            track.close()
    # and a separate audio file (--audio): stereo twin == mono twin, neither 3 dB louder
    rng = np.random.default_rng(0)
    n = 3 * 48000
    pcm = 0.4 * np.sin(2 * np.pi * 330 * np.arange(n) / 48000) + 0.05 * rng.standard_normal(n)
    for layout in ("mono", "stereo"):
        _write_audio(tmp_path / f"{layout}.wav", pcm.astype(np.float32), 48000, layout)
    win = {k: read_audio_window(tmp_path / f"{k}.wav", 1.0, MelConfig())[0] for k in ("mono", "stereo")}
    np.testing.assert_allclose(win["stereo"], win["mono"], atol=1e-6)
    ratio = np.sqrt(np.mean(win["stereo"] ** 2) / np.mean(win["mono"] ** 2))
    assert abs(ratio - 1.0) < 1e-4
    np.testing.assert_allclose(log_mel(win["stereo"]), log_mel(win["mono"]), atol=1e-4)


def test_log_mel_matches_librosa_on_real_audio_and_other_settings(shared_data):
    real = [
        read_audio_window(f, None, MelConfig())[0]
        for f in sorted((shared_data / "audio" / "clipsep").glob("*.wav"))[:2]
    ]
    noise = (0.3 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    for y in [*real, noise]:
        ours = log_mel(y)
        assert ours.shape == (64, 97)
        assert np.abs(ours - librosa_log_mel(y)).max() < 1e-4
    other = MelConfig(
        n_fft=1024,
        win_length=800,
        hop_length=320,
        n_mels=40,
        fmin=50.0,
        fmax=8000.0,
        power=2.0,
        log_offset=1e-3,
    )
    for y in [real[0], noise]:
        ours = log_mel(y, other)
        assert ours.shape == (40, other.frames) == (40, 47)
        assert np.abs(ours - librosa_log_mel(y, other)).max() < 1e-3


def test_mel_settings_come_from_the_recipe():
    root = Path(__file__).resolve().parents[1] / "pipelines"
    for name in ("vggsound", "ave"):
        mel = build_config(MelConfig, recipe_section(load_recipe(root / f"{name}.toml"), "extract.mel"))
        assert mel == MelConfig()  # the documented VGGish front end: shards made before keep their hash
    custom = build_config(MelConfig, {"n_mels": 40, "hop_length": 320})
    assert (custom.n_mels, custom.frames) == (40, 49)
    with pytest.raises(ValueError, match="fmax"):
        MelConfig(fmax=9000.0)
