"""`--engine onnxruntime` for aiaic-colorize and aiaic-app: the loaded model exported once (cached by
its weights' checksum and image size), checked against PyTorch, quantized for `--precision int8`
(with its quality cost printed), and returned as an `OrtModel`.

The cache is `$AIAIC_CACHE` or `$XDG_CACHE_HOME/aiaic` (default ~/.cache/aiaic), under `onnx/`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av
import numpy as np
import torch

from aiaic.errors import InputError

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    root = (
        os.environ.get("AIAIC_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aiaic"
    )
    return Path(root) / "onnx"


def check_pattern(size: int = 320) -> np.ndarray:
    """A deterministic grey test picture [1, size, size, 3] (ramps, discs, fine noise) for the export's
    check where no frames of the user's are at hand (the app at start-up)."""
    y, x = np.mgrid[0:size, 0:size] / size
    grey = 0.5 + 0.3 * np.sin(9 * x) * np.cos(7 * y) + 0.15 * ((x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.05)
    grey += np.random.default_rng(0).normal(0, 0.03, grey.shape)
    g = np.clip(grey * 255, 0, 255).astype(np.uint8)
    return np.repeat(g[None, ..., None], 3, axis=-1)


def sample_frames(paths: list[Path], count: int = 4, max_pixels: int | None = None) -> list[np.ndarray]:
    """Up to `count` uint8 RGB frames [H, W, 3] from the user's inputs: images, and frames spread over
    the first seconds of films (the check and the int8 cost are measured on them), reduced to at most
    `CHECK_SIDE` pixels a side."""
    return [_reduced(f) for f in _frames(paths, count, max_pixels)]


CHECK_SIDE = 1024


def _reduced(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    if max(h, w) <= CHECK_SIDE:
        return frame
    im = Image.fromarray(frame)
    im.thumbnail((CHECK_SIDE, CHECK_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(im)


def _frames(paths: list[Path], count: int, max_pixels: int | None) -> list[np.ndarray]:
    from aiaic.colorize.config import IMAGE_SUFFIXES
    from aiaic.colorize.image import read_image

    frames: list[np.ndarray] = []
    for p in paths:
        if len(frames) >= count:
            break
        if p.suffix.lower() in IMAGE_SUFFIXES:
            frames.append(read_image(p, max_pixels))
            continue
        try:
            with av.open(str(p)) as c:
                for k, f in enumerate(c.decode(video=0)):
                    if k % 25 == 0:
                        frames.append(f.to_ndarray(format="rgb24"))
                    if len(frames) >= count or k > 100:
                        break
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(p, f"cannot decode frames for the ONNX check ({e})") from e
    return frames


def _check_batch(frames: list[np.ndarray], size: int) -> np.ndarray:
    """The frames resized to a common size (the check runs them as one batch at the model's input)."""
    from PIL import Image

    side = max(size, 64)
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((side, side), Image.Resampling.BILINEAR)) for f in frames]
    )


def onnx_engine(model, precision: str = "fp32", frames: list[np.ndarray] | None = None, pcm=None):
    """The `OrtModel` of a loaded `InferenceModel` (exported into the cache on first use)."""
    from aiaic.engine.export import export_metadata, export_onnx
    from aiaic.engine.ort import load_onnx
    from aiaic.engine.quantize import int8_cost, quantize_export

    if model.device.type != "cpu":  # exported and checked on the CPU; ORT picks its own provider
        model.model.to("cpu")
        model.device = torch.device("cpu")
    meta = export_metadata(model)
    key = f"{meta['checksum'].split(':')[-1][:20]}-{meta['variant']}-{meta['image_size']}"
    fp32_dir = cache_dir() / key / "fp32"
    frames = frames or list(check_pattern())
    try:
        engine = load_onnx(fp32_dir, expect_checksum=meta["checksum"])
        log.info("ONNX export from the cache: %s", fp32_dir)
    except InputError:
        report = export_onnx(model, fp32_dir, _check_batch(frames, model.image_size), pcm, overwrite=True)
        log.info(
            "exported to ONNX: %s (check on %d frames: max |d ab_n| %.2g, mean %.2g)",
            fp32_dir,
            report.frames,
            report.max_diff,
            report.mean_diff,
        )
        engine = load_onnx(fp32_dir, expect_checksum=meta["checksum"])
    if precision == "fp32":
        return engine
    int8_dir = quantize_export(fp32_dir, cache_dir() / key / "int8")
    int8 = load_onnx(int8_dir, expect_checksum=meta["checksum"])
    cost = int8_cost(engine, int8, frames)
    log.warning("%s", cost.line())
    return int8
