"""Colorize still images at their full resolution, optionally guided by one second of audio.

An image is read with Pillow (EXIF orientation applied), reduced to its L channel (a colour image
loses its colours, a grey one is used as is), coloured by the model at `image_size`, and written
as PNG (lossless, so the output's L equals the input's up to uint8 rounding).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from aiaic.colorize.guided import AudioInput
from aiaic.colorize.strips import RowJoiner, model_input_from_strips, strip_rows, write_png_strips
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
    with open_picture(path, max_pixels) as pic:
        out = np.empty((pic.height, pic.width, 3), np.uint8)
        for y0, strip in pic.strips():
            out[y0 : y0 + len(strip)] = strip
        return out


class Picture:
    """A decoded image file (EXIF orientation applied) read as strips of uint8 RGB rows: the decoded
    picture is all that is held whole (Pillow's buffer: 1 byte a pixel for grey, 4 for colour)."""

    def __init__(self, im: Image.Image, path: Path):
        self.im, self.path = im, path
        self.width, self.height = im.size
        self.wide = im.mode in ("I", "I;16", "I;16B", "I;16L", "F")
        self.hi = 255.0  # 16-bit and float grey scaled to 0..255 by 65535 when above 255
        if self.wide:
            extrema = im.getextrema()
            self.hi = 65535.0 if float(extrema[1]) > 255 else 255.0  # type: ignore[index, arg-type]

    def strips(self, rows: int | None = None):
        """Yield (y0, uint8 RGB [r, W, 3]) top to bottom."""
        w, h = self.width, self.height
        rows = rows or strip_rows(w)
        for y0 in range(0, h, rows):
            strip = self.im.crop((0, y0, w, min(h, y0 + rows)))
            if self.wide:
                grey = np.asarray(strip, dtype=np.float64)
                arr = np.clip(np.round(grey / self.hi * 255.0), 0, 255).astype(np.uint8)
                yield y0, np.repeat(arr[..., None], 3, axis=-1)
            else:
                yield y0, np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))

    def close(self) -> None:
        self.im.close()

    def __enter__(self) -> Picture:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_picture(path: Path, max_pixels: int | None = MAX_PIXELS) -> Picture:
    """Decode an image file into a `Picture`; InputError for an unreadable file or one of more than
    `max_pixels` pixels (checked from its header, before decoding)."""
    try:
        opened = open_checked(path, max_pixels)
        try:
            opened.load()
            im = ImageOps.exif_transpose(opened, in_place=True) or opened
        except BaseException:
            opened.close()
            raise
        return Picture(im, Path(path))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(path, f"cannot read as an image ({e})") from e


_OPEN_LOCK = threading.Lock()


def open_checked(path: Path, max_pixels: int | None, name: str | Path | None = None) -> Image.Image:
    """`Image.open(path)` (the header only) with our pixel limit instead of Pillow's bomb check, so a
    picture above `max_pixels` gets our message (InputError naming `name`, default the path), not
    Pillow's. Pillow's limit is a module global: it is lifted only while the header is read, under a
    lock, so threads do not see each other's value."""
    with _OPEN_LOCK:
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            opened = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = old
    w, h = opened.size
    if max_pixels is not None and w * h > max_pixels:
        opened.close()
        raise InputError(
            name or path,
            f"picture of {w} x {h} = {w * h:,} pixels is above the limit of {max_pixels:,} pixels "
            "(--max-pixels)",
        )
    return opened


def colorize_image(
    src: Path,
    dst: Path,
    model,
    guidance: AudioInput,
    device: torch.device,
    max_pixels: int | None = MAX_PIXELS,
) -> ImageResult:
    """Colorize one image file into `dst` (PNG unless dst says otherwise), in bounded memory: the model
    input and the join are computed strip by strip from the decoded picture and a PNG is written
    strip by strip (`aiaic.colorize.strips`), so the peak is the decoded picture plus a strip (other
    formats: plus the uint8 output, which Pillow encodes)."""
    with open_picture(Path(src), max_pixels) as pic:
        with torch.inference_mode():
            L_n = model_input_from_strips((s for _, s in pic.strips()), model.image_size).to(device)
            audio = {k: v[None].to(device) for k, v in guidance.audio.items()}
            has_audio = torch.tensor([guidance.has_audio], dtype=torch.bool, device=device)
            ab_n, r = model.predict(L_n, audio, has_audio)
        join = RowJoiner(ab_n[0].float(), pic.height, pic.width)
        dst.parent.mkdir(parents=True, exist_ok=True)
        joined = (join(strip, y0, out=strip if strip.flags.writeable else None) for y0, strip in pic.strips())
        try:
            if dst.suffix.lower() == ".png":
                write_png_strips(dst, pic.width, pic.height, joined)
            else:
                out = np.empty((pic.height, pic.width, 3), np.uint8)
                for y0, strip in pic.strips():
                    join(strip, y0, out=out[y0 : y0 + len(strip)])
                Image.fromarray(out).save(dst)
        except (OSError, ValueError) as e:
            raise InputError(dst, f"cannot write the output image ({e})") from e
        width, height = pic.width, pic.height
    return ImageResult(str(src), str(dst), width, height, float(r.reshape(-1)[0]), guidance.why)
