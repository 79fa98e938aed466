"""Benchmark colorize with DDColor-T alone against the official DDColor inference (same inputs, same weights).

    python -m benchmarks.run ddcolor
    AIAIC_BENCH_DDCOLOR_SIZES=256,512 AIAIC_BENCH_DDCOLOR_FILM_SECONDS=2 python -m benchmarks.run ddcolor

Weights: a randomly initialised `ddcolor-tiny` in the official layout, saved as `{"params": state_dict}`
(the released `.pth` format) and loaded through `load_model(ColorizeConfig(backbone=...,
backbone_weights=...))`, the path `aiaic-colorize --backbone ddcolor-tiny --backbone-weights FILE`
takes (speed does not depend on the values).

"official" is the same network called the way the official pipeline calls it: one frame at a time,
fp32, `torch.no_grad`, contiguous NCHW; the frame's L (CIE Lab) resized to the size, given to the
model as grey RGB (a = b = 0), the predicted ab upsampled bilinearly to the frame's size and joined
with the frame's own L, converted back to RGB. Its film path decodes and encodes with the same
PyAV / libx264 settings as ours (no audio). "aiaic" is `colorize` itself: images through
`colorize_image`, films through `colorize_video` (frames batched, inference mode, soundtrack copied).
Inputs: the 512 x 512 `camera.png` and the first seconds of the Chaplin film (640 x 360, 24 fps) from
../shared/data, or generated stand-ins where that folder is absent. Runs alternate between the two
pipelines and the best of each is kept (the machine is shared). ratio = official time / aiaic time.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data"))
SIZES = tuple(int(s) for s in os.environ.get("AIAIC_BENCH_DDCOLOR_SIZES", "256").split(","))
FILM_SECONDS = float(os.environ.get("AIAIC_BENCH_DDCOLOR_FILM_SECONDS", "1"))
REPEATS = int(os.environ.get("AIAIC_BENCH_DDCOLOR_REPEATS", "2"))
FILM_BATCH = 8


def _official_frame(net, rgb: np.ndarray, size: int) -> np.ndarray:
    """The official per-image pipeline on uint8 RGB [H, W, 3] -> uint8 RGB [H, W, 3]."""
    from aiaic.lab import lab_to_rgb, rgb_to_lab

    img = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255.0
    L_full = rgb_to_lab(img)[:, :1]
    small = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    L = rgb_to_lab(small)[:, :1]
    grey = lab_to_rgb(torch.cat([L, torch.zeros_like(L), torch.zeros_like(L)], dim=1))
    with torch.no_grad():
        ab = net.forward_official(grey)
    ab = F.interpolate(ab, size=rgb.shape[:2], mode="bilinear", align_corners=False)
    out = lab_to_rgb(torch.cat([L_full, ab], dim=1))
    return (out[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


def _official_film(net, src: Path, dst: Path, size: int, seconds: float) -> int:
    """Decode, colour frame by frame the official way, encode (libx264, the same settings as ours)."""
    with av.open(str(src)) as ic, av.open(str(dst), "w") as oc:
        iv = ic.streams.video[0]
        ov = oc.add_stream("libx264", rate=iv.average_rate)
        ov.width, ov.height, ov.pix_fmt = iv.codec_context.width, iv.codec_context.height, "yuv420p"
        ov.time_base = iv.time_base
        ov.options = {"crf": "18", "preset": "veryfast"}
        n = 0
        for frame in ic.decode(iv):
            if frame.time is not None and frame.time >= seconds:
                break
            out = av.VideoFrame.from_ndarray(
                _official_frame(net, frame.to_ndarray(format="rgb24"), size), format="rgb24"
            )
            out.pts, out.time_base = frame.pts, frame.time_base
            oc.mux(ov.encode(out))
            n += 1
        oc.mux(ov.encode(None))
    return n


def _inputs(tmp: Path) -> tuple[Path, Path, str]:
    image = DATA / "images" / "bw" / "skimage" / "camera.png"
    film = DATA / "clips" / "moviepy" / "chaplin_bw_film.mp4"
    if image.is_file() and film.is_file():
        return image, film, "camera.png 512x512, Chaplin film 640x360"
    from PIL import Image

    from benchmarks.bench_colorize import _clip

    rng = np.random.default_rng(0)
    image = tmp / "grey.png"
    Image.fromarray(rng.integers(0, 255, (512, 512), dtype=np.uint8)).save(image)
    return image, _clip(tmp / "film.mp4", 640, 360, max(1, int(np.ceil(FILM_SECONDS)))), "generated stand-ins"


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _weights(tmp: Path) -> tuple[Path, torch.nn.Module]:
    from aiaic.models.backbones import build_backbone
    from aiaic.models.config import ModelConfig

    torch.manual_seed(0)
    net = build_backbone("ddcolor-tiny", ModelConfig(backbone="ddcolor-tiny")).eval()
    path = tmp / "ddcolor_paper_tiny_random.pth"
    torch.save({"params": net.state_dict()}, path)
    return path, net


def _measure(size: int, weights: Path, official, image: Path, film: Path, tmp: Path) -> dict[str, float]:
    """Seconds per image and frames/s per film, for aiaic and the official way (best of REPEATS)."""
    from aiaic.colorize.config import ColorizeConfig
    from aiaic.colorize.guided import no_guidance
    from aiaic.colorize.image import colorize_image, read_image
    from aiaic.colorize.run import load_model
    from aiaic.colorize.video import colorize_video

    cpu = torch.device("cpu")
    cfg = ColorizeConfig(
        backbone="ddcolor-tiny",
        backbone_weights=weights,
        image_size=size,
        batch_size=FILM_BATCH,
        max_seconds=FILM_SECONDS,
        progress=False,
        no_audio=True,
    )
    model = load_model(cfg, cpu)
    guide = no_guidance(model, "disabled")
    rgb = read_image(image)
    frames: dict[str, int] = {}

    def ours_image() -> None:
        colorize_image(image, tmp / f"o{time.perf_counter_ns()}.png", model, guide, cpu)

    def official_image() -> None:
        _official_frame(official, rgb, size)

    def ours_film() -> None:
        frames["ours"] = colorize_video(film, tmp / f"f{time.perf_counter_ns()}.mp4", model, cfg, cpu).frames

    def official_film() -> None:
        frames["official"] = _official_film(
            official, film, tmp / f"g{time.perf_counter_ns()}.mp4", size, FILM_SECONDS
        )

    ours_image()  # warm-up (numba kernels, first-call allocations)
    official_image()
    times: dict[str, list[float]] = {
        k: [] for k in ("ours_image", "official_image", "ours_film", "official_film")
    }
    for _ in range(REPEATS):  # alternate, so both see the same machine load
        for name, fn in (
            ("official_image", official_image),
            ("ours_image", ours_image),
            ("official_film", official_film),
            ("ours_film", ours_film),
        ):
            times[name].append(_seconds(fn))
    best = {k: min(v) for k, v in times.items()}
    return {**best, "ours_frames": frames["ours"], "official_frames": frames["official"]}


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights, official = _weights(tmp)
        image, film, inputs = _inputs(tmp)
        for size in SIZES:
            m = _measure(size, weights, official, image, film, tmp)
            note = (
                f"ddcolor-tiny, {inputs}, CPU {torch.get_num_threads()} threads, best of {REPEATS}; "
                "ratio = official time / aiaic time"
            )
            rows += [
                {
                    "metric": f"image {size}px, aiaic",
                    "value": m["ours_image"],
                    "unit": "s",
                    "ratio": m["official_image"] / m["ours_image"],
                    "note": note,
                },
                {
                    "metric": f"image {size}px, official inference",
                    "value": m["official_image"],
                    "unit": "s",
                    "note": "one frame, fp32, no_grad, NCHW",
                },
                {
                    "metric": f"film {size}px, aiaic",
                    "value": m["ours_frames"] / m["ours_film"],
                    "unit": "frames/s",
                    "ratio": (m["official_film"] / m["official_frames"])
                    / (m["ours_film"] / m["ours_frames"]),
                    "note": (
                        f"{m['ours_frames']} frames, batch {FILM_BATCH}, inference mode, soundtrack copied"
                    ),
                },
                {
                    "metric": f"film {size}px, official inference",
                    "value": m["official_frames"] / m["official_film"],
                    "unit": "frames/s",
                    "note": f"{m['official_frames']} frames, one at a time, x264 encode",
                },
            ]
    for r in rows:
        r["benchmark"] = "ddcolor"
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
