"""What a user dropped on the page: a photo, a film or a sound, told apart by content, not by name.

Uploaded files are stored under a fixed name in the job's folder (never under the user's file name);
`inspect_media` and `inspect_sound` say what they hold or raise `InputError` naming the user's file
and the reason (not an image or a video; a film without a video stream; a sound without audio).
"""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from aiaic.colorize.image import MAX_PIXELS, open_checked
from aiaic.errors import InputError

# Pillow format -> a suffix `aiaic-colorize` accepts (it reads images by content; the suffix only routes)
IMAGE_FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


@dataclass(frozen=True)
class Media:
    kind: str  # "image" or "video"
    suffix: str  # the suffix the stored file gets
    width: int
    height: int
    frames: int | None  # a film's frame count (from its header, or duration x rate), None if unknown


def safe_name(name: str | None, default: str) -> str:
    """The user's file name reduced to a harmless base name (for display and the download)."""
    base = Path(name or "").name
    base = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")
    return base[:120] or default


def _reason(e: Exception) -> str:
    """The reason of a decoding error, without the stored file's path."""
    return getattr(e, "strerror", None) or type(e).__name__


BIG_PIXELS = 16_000_000  # a picture above this is checked (decoded) by one upload at a time
_BIG_CHECK = threading.Lock()


def _as_image(path: Path, name: str, max_pixels: int) -> Media | None:
    try:
        with open_checked(path, max_pixels, name) as im:  # InputError above the limit (--max-pixels)
            fmt = im.format or ""
            width, height = im.size
            # a truncated or damaged image fails here, not in the worker; big ones one at a time
            with _BIG_CHECK if width * height > BIG_PIXELS else contextlib.nullcontext():
                im.load()
    except Image.DecompressionBombError as e:
        raise InputError(name, f"image has too many pixels to colourize ({e})") from e
    except (UnidentifiedImageError, OSError, ValueError):
        return None  # not an image Pillow reads: perhaps a film
    return Media("image", IMAGE_FORMAT_SUFFIX.get(fmt, ".png"), width, height, 1)


def inspect_media(path: Path, name: str, max_pixels: int = MAX_PIXELS) -> Media:
    """Is the upload at `path` (the user called it `name`) a photo or a film? InputError if neither,
    or for a photo of more than `max_pixels` pixels."""
    if path.stat().st_size == 0:
        raise InputError(name, "is empty")
    image = _as_image(path, name, max_pixels)
    if image is not None:
        return image
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                what = "a sound" if c.streams.audio else "no picture"
                raise InputError(
                    name, f"has no video stream ({what}): drop a photo or a film, and a sound beside it"
                )
            v = c.streams.video[0]
            width, height = v.codec_context.width, v.codec_context.height
            frames = v.frames or None
            if frames is None:
                duration = float(v.duration * v.time_base) if v.duration and v.time_base else None
                if duration is None and c.duration:
                    duration = c.duration / 1e6
                rate = v.average_rate or v.guessed_rate
                frames = int(round(duration * float(rate))) if duration and rate else None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(name, f"is not an image or a video that can be read ({_reason(e)})") from e
    if not width or not height:
        raise InputError(name, "has a video stream without a picture size")
    suffix = Path(name).suffix.lower()
    return Media(
        "video", suffix if re.fullmatch(r"\.[a-z0-9]{2,5}", suffix) else ".mp4", width, height, frames
    )


def inspect_sound(path: Path, name: str) -> None:
    """Check that the upload at `path` holds an audio stream; InputError naming `name` if not."""
    if path.stat().st_size == 0:
        raise InputError(name, "is empty")
    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise InputError(name, "has no audio stream")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(name, f"is not a sound file that can be read ({_reason(e)})") from e
