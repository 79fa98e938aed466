"""Benchmark `aiaic-colorize` on videos: frames/s for 256 x 256 and 1280 x 720 input, and the real film.

    python -m benchmarks.run colorize

The model is the default `ModelConfig()` (compact U-Net, ResNet-18 audio encoder) at image_size 128
with untrained weights (speed does not depend on the values), wrapped in the real `InferenceModel`,
on the CPU, batch 8. Each clip has a soundtrack (a tone per second), so the whole path runs:
decode, per-second audio guidance, model, full-resolution Lab join, H.264 encode, audio remux.
Rows also give the speed outside the model (decode + colour conversion + encode), measured with a
zero-cost stand-in of the same interface. After one warm-up run, the best of two runs is kept.
"""

from __future__ import annotations

import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _clip(path: Path, width: int, height: int, seconds: int, fps: int = 25) -> Path:
    """A grey video with moving texture and a tone per second (AAC), H.264."""
    rng = np.random.default_rng(0)
    tex = rng.integers(40, 220, (height // 8 + 2, width // 8 + 2), dtype=np.uint8)
    tex = np.kron(tex, np.ones((8, 8), np.uint8))
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "23"}
        a_s = c.add_stream("aac", rate=16000, layout="mono")
        for k in range(seconds * fps):
            g = tex[(k % 8) : (k % 8) + height, (k % 8) : (k % 8) + width]
            frame = av.VideoFrame.from_ndarray(np.repeat(g[..., None], 3, axis=-1), format="rgb24")
            frame.pts = k
            frame.time_base = Fraction(1, fps)
            c.mux(vs.encode(frame))
        c.mux(vs.encode(None))
        t = np.arange(seconds * 16000) / 16000
        pcm = (0.4 * np.sin(2 * np.pi * (300 + 200 * np.floor(t)) * t)).astype(np.float32)
        for s0 in range(0, pcm.size, 1600):
            af = av.AudioFrame.from_ndarray(pcm[None, s0 : s0 + 1600], format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = 16000, s0, Fraction(1, 16000)
            c.mux(a_s.encode(af))
        c.mux(a_s.encode(None))
    return path


def _model():
    from aiaic.data.audio import MelConfig
    from aiaic.models.colorizer import build_colorizer
    from aiaic.models.config import ModelConfig
    from aiaic.runs.inference import InferenceModel

    torch.manual_seed(0)
    net = build_colorizer(ModelConfig()).eval()
    return InferenceModel(
        model=net,
        variant="full",
        image_size=128,
        mel_mean=torch.zeros(64),
        mel_std=torch.ones(64),
        mel_config=MelConfig(),
        device=torch.device("cpu"),
        stage_dir=Path("untrained"),
    )


class _NoModel:
    """Same interface, zero cost: ab = 0.3 everywhere (measures everything but the network)."""

    image_size = 128

    def __init__(self, real):
        self.mel_config = real.mel_config
        self.audio_input = real.audio_input  # the audio front end runs as for the real model

    def guidance(self, L_n, mel=None, has_audio=None):
        return torch.zeros(L_n.shape[0], 8), torch.ones(L_n.shape[0])

    def predict_guided(self, L_n, c, r):
        return torch.full((L_n.shape[0], 2, *L_n.shape[-2:]), 0.3)


def _fps(src: Path, out_dir: Path, model) -> tuple[float, int]:
    from aiaic.colorize.config import ColorizeConfig
    from aiaic.colorize.video import colorize_video

    cfg = ColorizeConfig(batch_size=8, progress=False)
    t0 = time.perf_counter()
    res = colorize_video(src, out_dir / f"out-{time.perf_counter_ns()}.mp4", model, cfg, torch.device("cpu"))
    return res.frames / (time.perf_counter() - t0), res.frames


def run() -> list[dict]:
    rows = []
    model = _model()
    bare = _NoModel(model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {
            "256x256": _clip(tmp / "c256.mp4", 256, 256, 4),
            "1280x720": _clip(tmp / "c720.mp4", 1280, 720, 2),
        }
        chaplin = DATA / "clips" / "moviepy" / "chaplin_bw_film.mp4"
        if chaplin.is_file():
            clips["chaplin 640x360"] = chaplin
        _fps(_clip(tmp / "warm.mp4", 64, 64, 1), tmp, model)  # warm-up: numba kernels, torch first call
        for name, path in clips.items():  # best of two (the machine is shared)
            fps, frames = max(_fps(path, tmp, model), _fps(path, tmp, model))
            bare_fps, _ = max(_fps(path, tmp, bare), _fps(path, tmp, bare))
            rows.append(
                {
                    "benchmark": "colorize",
                    "metric": f"video frames/s {name}",
                    "value": fps,
                    "unit": "frames/s",
                    "note": f"{frames} frames, default model at 128 px, CPU, "
                    f"{torch.get_num_threads()} threads, audio guidance + remux",
                }
            )
            rows.append(
                {
                    "benchmark": "colorize",
                    "metric": f"video frames/s {name}, I/O + colour only",
                    "value": bare_fps,
                    "unit": "frames/s",
                    "ratio": bare_fps / fps,
                    "note": "zero-cost model stand-in; ratio = how much faster than with the model",
                }
            )
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
