"""Colorize still images at their full resolution, optionally guided by one second of audio.

An image is read with Pillow (EXIF orientation applied), reduced to its L channel (a colour image
loses its colours, a grey one is used as is), coloured by the model at `image_size`, and written
as PNG (lossless, so the output's L equals the input's up to uint8 rounding).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from aiaic.colorize.guided import Guidance
from aiaic.colorize.strips import join_into, model_input_strips, strip_rows, write_png
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


MAX_PIXELS = 250_000_000  # the default largest picture accepted (`ColorizeConfig.max_pixels`)


def read_image(path: Path, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """uint8 RGB [H, W, 3] of an image file (EXIF orientation applied; grey becomes R = G = B).

    Holds at most the decoded picture and the array (no float copy). InputError for a picture of
    more than `max_pixels` pixels (None: no limit), checked before it is decoded.
    """
    try:
        with pixel_limit(max_pixels), Image.open(path) as opened:
            w, h = opened.size
            if max_pixels is not None and w * h > max_pixels:
                raise InputError(
                    path,
                    f"picture of {w} x {h} = {w * h / 1e6:.0f} megapixels is above the limit of "
                    f"{max_pixels / 1e6:.0f} megapixels (--max-pixels)",
                )
            opened.load()
            im = ImageOps.exif_transpose(opened, in_place=True) or opened
            return _uint8_rgb(im)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(path, f"cannot read as an image ({e})") from e


def _uint8_rgb(im: Image.Image) -> np.ndarray:
    """uint8 RGB [H, W, 3] of a decoded image, filled strip by strip (no second full-size copy);
    16-bit and float grey scaled to 0..255 by the picture's range (65535 when above 255)."""
    w, h = im.size
    out = np.empty((h, w, 3), np.uint8)
    wide = im.mode in ("I", "I;16", "I;16B", "I;16L", "F")
    hi = 255.0
    if wide:
        lo_hi = im.getextrema()
        hi = 65535.0 if float(lo_hi[1]) > 255 else 255.0  # type: ignore[index, arg-type]
    rows = strip_rows(w)
    for y0 in range(0, h, rows):
        strip = im.crop((0, y0, w, min(h, y0 + rows)))
        if wide:
            grey = np.asarray(strip, dtype=np.float64)
            out[y0 : y0 + rows] = np.clip(np.round(grey / hi * 255.0), 0, 255).astype(np.uint8)[..., None]
        else:
            out[y0 : y0 + rows] = np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))
    return out


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None):
    """Pillow's own bomb check (an error above 2 x MAX_IMAGE_PIXELS) set to our limit while we read;
    our check above gives the clear message first."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def colorize_image(
    src: Path,
    dst: Path,
    model,
    guidance: Guidance,
    device: torch.device,
    max_pixels: int | None = MAX_PIXELS,
) -> ImageResult:
    """Colorize one image file into `dst` (PNG unless dst says otherwise), in bounded memory: the
    uint8 picture is coloured in place strip by strip (`aiaic.colorize.strips`) and a PNG is
    written strip by strip, so the peak is about the decoded picture plus its uint8 copy."""
    rgb = read_image(Path(src), max_pixels)
    height, width = rgb.shape[:2]
    with torch.inference_mode():
        L_n = model_input_strips(rgb[None], model.image_size).to(device)
        audio = {k: v[None].to(device) for k, v in guidance.audio.items()}
        has_audio = torch.tensor([guidance.has_audio], dtype=torch.bool, device=device)
        ab_n, r = model.predict(L_n, audio, has_audio)
    out = join_into(rgb[None], ab_n.float(), out=rgb[None])[0]  # in place: each pixel read, then written
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        if dst.suffix.lower() == ".png":
            write_png(dst, out)
        else:
            Image.fromarray(out).save(dst)
    except (OSError, ValueError) as e:
        raise InputError(dst, f"cannot write the output image ({e})") from e
    return ImageResult(str(src), str(dst), width, height, float(r.reshape(-1)[0]), guidance.why)
