"""Colorize still images at their full resolution, optionally guided by one second of audio.

An image is read with Pillow (EXIF orientation applied), reduced to its L channel (a colour image
loses its colours, a grey one is used as is), coloured by the model at `image_size`, and written
as PNG (lossless, so the output's L equals the input's up to uint8 rounding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from aiaic.colorize.guided import AudioInput, colorize_batch
from aiaic.errors import InputError


@dataclass
class ImageResult:
    source: str
    output: str
    width: int
    height: int
    r: float
    guidance: str  # "audio", "silent", "disabled", "missing"

    def to_dict(self) -> dict:
        return asdict(self)


def read_image(path: Path) -> np.ndarray:
    """uint8 RGB [H, W, 3] of an image file (EXIF orientation applied; grey becomes R = G = B)."""
    try:
        with Image.open(path) as opened:
            im = ImageOps.exif_transpose(opened)
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                arr = np.asarray(im, dtype=np.float64)
                hi = 65535.0 if arr.max() > 255 else 255.0
                arr = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=-1)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(path, f"cannot read as an image ({e})") from e


def colorize_image(src: Path, dst: Path, model, guidance: AudioInput, device: torch.device) -> ImageResult:
    """Colorize one image file into `dst` (PNG unless dst says otherwise)."""
    rgb = read_image(Path(src))
    out, r = colorize_batch(model, rgb[None], [guidance], device)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(out[0]).save(dst)
    except (OSError, ValueError) as e:
        raise InputError(dst, f"cannot write the output image ({e})") from e
    return ImageResult(str(src), str(dst), rgb.shape[1], rgb.shape[0], float(r[0]), guidance.why)
