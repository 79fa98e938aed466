"""The VGGSound spectrogram front end: per-sample cost of ours (torch, batched) and of scipy's.

    python -m benchmarks.run spectrogram

Input: 32 one-second windows of noise at 16 kHz, each tiled to the official 10 s ([257, 1004] out).
Measured side by side in one run: scipy's `spectrogram` + log + standardisation per clip (the
official loader's steps), ours in float32 one clip at a time (what a loader worker does), ours on a
batch of 32, and the 64-band log-mel for scale. Then the training loader (64 px, in-process, the
shards of aiaic.demo.shards.write_split_dir with pcm) with and without `spectrogram`, as
samples/s and ratio.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal
import torch

from aiaic.data.audio import MelConfig, log_mel
from aiaic.data.loader import LoaderConfig, make_loader, open_split
from aiaic.data.spectrogram import SpecConfig, vggsound_spectrogram
from aiaic.demo.shards import write_split_dir
from benchmarks.bench_loader import _epochs_rate

N = 32


def _official(pcm: np.ndarray) -> np.ndarray:
    s = np.clip(np.tile(pcm, 10)[:160000], -1.0, 1.0)
    _, _, spec = scipy.signal.spectrogram(s, 16000, nperseg=512, noverlap=353)
    spec = np.log(spec + 1e-7)
    return (spec - spec.mean()) / (spec.std() + 1e-9)


def _per_sample(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / N


def _loader_rate(source, spectrogram: SpecConfig | None) -> float:
    cfg = LoaderConfig(image_size=64, batch_size=16, workers=0, spectrogram=spectrogram)
    with make_loader(source, cfg) as loader:
        _epochs_rate(loader, range(1))  # warm-up
        return _epochs_rate(loader, range(1, 3))[0]


def _loader_rows() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench_spec_") as tmp:
        root = write_split_dir(
            Path(tmp) / "split",
            classes=2,
            videos_per_class=5,
            seconds=12,
            size=128,
            shards_per_split=2,
            image_format="jpg",
            with_pcm=True,
        )
        source = open_split(root, "train")
        plain = _loader_rate(source, None)
        spec = _loader_rate(source, SpecConfig())
    note = f"64 px, workers=0, batch 16, {source.samples} samples x 2 epochs"
    return [
        dict(
            benchmark="spectrogram",
            metric="loader train samples/s, log-mel only",
            value=plain,
            unit="samples/s",
            note=note,
        ),
        dict(
            benchmark="spectrogram",
            metric="loader train samples/s, + VGGSound spectrogram",
            value=spec,
            unit="samples/s",
            ratio=spec / plain,
            note=note + "; ratio to log-mel only",
        ),
    ]


def run() -> list[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure()
    finally:
        torch.set_num_threads(threads)  # the benchmarks that run after this one keep the process's threads


def _measure() -> list[dict]:
    pcm = (np.random.default_rng(0).standard_normal((N, 16000)) * 0.1).astype(np.float32)
    batch = torch.from_numpy(pcm)
    scipy_s = _per_sample(lambda: [_official(x) for x in pcm])
    one_s = _per_sample(lambda: [vggsound_spectrogram(batch[i]) for i in range(N)])
    batched_s = _per_sample(lambda: vggsound_spectrogram(batch))
    mel_s = _per_sample(lambda: [log_mel(x, MelConfig()) for x in pcm])
    note = "one thread; one-second window tiled to 10 s -> [257, 1004]"
    return [
        dict(
            benchmark="spectrogram",
            metric="scipy (official steps), per sample",
            value=scipy_s * 1e3,
            unit="ms",
            note=note,
        ),
        dict(
            benchmark="spectrogram",
            metric="torch float32, one at a time, per sample",
            value=one_s * 1e3,
            unit="ms",
            ratio=scipy_s / one_s,
            note="ratio = scipy time / this",
        ),
        dict(
            benchmark="spectrogram",
            metric=f"torch float32, batch of {N}, per sample",
            value=batched_s * 1e3,
            unit="ms",
            ratio=scipy_s / batched_s,
            note="ratio = scipy time / this",
        ),
        dict(
            benchmark="spectrogram",
            metric="64-band log-mel (library front end), per sample",
            value=mel_s * 1e3,
            unit="ms",
            note="[64, 97] of the same second, for scale",
        ),
        *_loader_rows(),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
