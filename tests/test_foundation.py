"""Foundation contracts: the log-mel front end, the sample layout, Lab vs skimage, recipes."""

from __future__ import annotations

import dataclasses
import warnings

import librosa
import numpy as np
import pytest
import torch
from skimage import color

from aiaic.config import build_config, recipe_hash, recipe_section
from aiaic.data.audio import MelConfig, log_mel
from aiaic.data.sample import decode_sample, encode_sample, sample_key
from aiaic.errors import ConfigError
from aiaic.lab import lab_to_rgb, rgb_to_lab


def test_log_mel_is_the_documented_librosa_front_end():
    t = np.arange(16000) / 16000
    y = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    got = log_mel(y)
    ref = np.log(
        librosa.feature.melspectrogram(
            y=y,
            sr=16000,
            n_fft=512,
            win_length=400,
            hop_length=160,
            n_mels=64,
            fmin=125,
            fmax=7500,
            power=1.0,
            htk=True,
            norm=None,
            center=False,
        )
        + 0.01
    )
    assert got.shape == (64, 97) == (MelConfig().n_mels, MelConfig().frames)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # a 440 Hz tone peaks in the mel band that holds 440 Hz
    centres = librosa.mel_frequencies(n_mels=66, fmin=125, fmax=7500, htk=True)[1:-1]
    assert abs(centres[got.mean(axis=1).argmax()] - 440) < 60


def test_sample_roundtrip_keeps_content():
    img = np.zeros((16, 24, 3), np.uint8)
    img[..., 0] = 200
    mel = np.random.default_rng(0).normal(size=(64, 97)).astype(np.float32)
    pcm = np.linspace(-1, 1, 16000, dtype=np.float32)
    key = sample_key("-abc.d", 30, 4)
    assert key == "-abc_d_000030_s04"
    s = encode_sample(key, img, {"label_id": 7, "label": "x"}, mel=mel, pcm=pcm, image_format="png")
    d = decode_sample(s)
    assert d.key == key and d.label_id == 7 and d.meta["label"] == "x"
    np.testing.assert_array_equal(d.image, img)
    np.testing.assert_allclose(d.mel, mel, atol=1e-2)
    np.testing.assert_array_equal(d.pcm, pcm)


def test_lab_matches_skimage_both_ways():
    rng = np.random.default_rng(1)
    img = rng.random((20, 30, 3))
    img[0, :3] = [[0, 0, 0], [1, 1, 1], [0.01, 0.02, 0.03]]
    lab = rgb_to_lab(torch.from_numpy(img).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(lab, color.rgb2lab(img), atol=1e-3)
    ref_lab = np.stack(
        [rng.uniform(0, 100, (20, 20)), rng.uniform(-110, 110, (20, 20)), rng.uniform(-110, 110, (20, 20))],
        -1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_rgb = color.lab2rgb(ref_lab)
    rgb = lab_to_rgb(torch.from_numpy(ref_lab).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(rgb, ref_rgb, atol=1e-3)


@dataclasses.dataclass(frozen=True)
class _Cfg:
    size: int = 256
    name: str = "a"
    ratio: float = 0.5


def test_build_config_recipe_then_flags_and_unknown_keys():
    recipe = {"extract": {"size": 128, "name": "b"}, "train": {"lr": 1.0, "stage1": {"lr": 2.0}}}
    cfg = build_config(_Cfg, recipe_section(recipe, "extract"), {"name": "c", "ratio": None})
    assert cfg == _Cfg(size=128, name="c", ratio=0.5)
    assert recipe_section(recipe, "train") == {"lr": 1.0}
    assert recipe_section(recipe, "train.stage1") == {"lr": 2.0}
    with pytest.raises(ConfigError, match="unknown"):
        build_config(_Cfg, {"sise": 3})
    with pytest.raises(ConfigError, match="integer"):
        build_config(_Cfg, {"size": "big"})
    assert recipe_hash(cfg) == recipe_hash(_Cfg(size=128, name="c")) != recipe_hash(_Cfg())
