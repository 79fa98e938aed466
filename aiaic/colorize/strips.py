"""Big pictures in bounded memory: the model input and the final join computed strip by strip.

`aiaic.colorize.compose` computes the full-resolution L (float32, 4 bytes a pixel), upsamples ab to
the full size (8 bytes a pixel, several temporaries) and joins them: about 40 bytes a pixel at the
peak, 5.4 GB for a 12000 x 12000 photo. Here the same results come from the uint8 picture alone:

- `model_input_strips`: L of a strip of rows, resized horizontally to the model's width (torch's
  antialiased bilinear resize is separable and does the horizontal pass first, so resizing each
  strip horizontally and then the stacked [H, size] rows vertically gives the same L_n bit for bit);
- `join_into`: one numba pass per pixel that reads the pixel's uint8 RGB, computes its L, samples
  ab_n bilinearly at that pixel (torch's `upsample_bilinear2d` sampling positions and weights,
  align_corners=False, in float32) and writes the joined sRGB uint8, optionally into the input
  buffer itself. It matches `compose.join_full_resolution` within one uint8 level: the same
  float32 operations, but torch's compiled kernel may fuse a multiply-add (FMA) that numba does not,
  so ab can differ in its last bit and a value on a rounding edge can land one level away;
- `write_png`: the PNG written strip by strip (Paeth filter, zlib), without a second copy of the
  picture.

Peak memory is then the uint8 picture (3 bytes a pixel) plus one strip.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import numba
import numpy as np
import torch
import torch.nn.functional as F

from aiaic.colorize.compose import (
    _ENCODE_START,
    _ENCODE_THR,
    _LINEAR_LUT,
    _RGB_FROM_XYZ_NP,
    _WHITE,
    _Y_WEIGHTS,
    _lab_pixel,
    as_uint8_frames,
    luminance_uint8,
)
from aiaic.lab import normalize_l

STRIP_BYTES = 8 << 20  # uint8 RGB bytes of one strip of rows (8 MiB)


def strip_rows(width: int, strip_bytes: int = STRIP_BYTES) -> int:
    """Rows of a strip of a `width`-pixel-wide RGB picture within `strip_bytes` (at least 1)."""
    return max(1, strip_bytes // max(1, 3 * width))


def model_input_strips(frames: np.ndarray, size: int, rows: int | None = None) -> torch.Tensor:
    """uint8 RGB [B, H, W, 3] (or grey [B, H, W]) -> L_n [B, 1, size, size] on the CPU, equal bit for bit
    to `compose.model_input(compose.luminance_uint8(frames), size)`, holding only one strip's L."""
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise ValueError(f"expected uint8 [B, H, W(, 3)], got {arr.dtype} {arr.shape}")
    b, h, w = arr.shape[:3]
    if (h, w) == (size, size):
        return normalize_l(luminance_uint8(arr).clamp(0.0, 100.0))
    rows = rows or strip_rows(w)
    return torch.cat(
        [
            model_input_from_strips((arr[k, y0 : y0 + rows] for y0 in range(0, h, rows)), size)
            for k in range(b)
        ]
    )


def model_input_from_strips(strips: Iterable[np.ndarray], size: int) -> torch.Tensor:
    """One picture given as its strips of rows, top to bottom (uint8 RGB [r, W, 3] or grey [r, W]) ->
    L_n [1, 1, size, size]; as `model_input_strips` (for a picture never held whole as an array)."""
    parts = []
    for strip in strips:
        L = luminance_uint8(strip[None])
        parts.append(_resize(L, (L.shape[-2], size)))
    stacked = torch.cat(parts, dim=-2)
    if stacked.shape[-2:] == (size, size):
        return normalize_l(stacked.clamp(0.0, 100.0))
    return normalize_l(_resize(stacked, (size, size)).clamp(0.0, 100.0))


def _resize(L: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(L, size=shape, mode="bilinear", align_corners=False, antialias=True)


def _linear_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's bilinear (align_corners=False) source indices i0, i1 [out] and weight of i1 [out]
    (float32 arithmetic, as its CPU kernel: src = max(scale * (i + 0.5) - 0.5, 0))."""
    scale = np.float32(in_size) / np.float32(out_size)
    idx = np.arange(out_size, dtype=np.float32)
    src = np.maximum(scale * (idx + np.float32(0.5)) - np.float32(0.5), np.float32(0.0)).astype(np.float32)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    lam = np.clip(src - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, lam


@numba.njit(cache=True, nogil=True)
def _join_strip_kernel(rgb, ab, ri0, ri1, rlam, ci0, ci1, clam, lut, yw, m, white, thr, start, out):
    # rgb uint8 [R, W, 3]; ab float32 [2, h, w] (ab_n); r*/c*: sampling of the R rows and W columns;
    # out uint8 [R, W, 3] (may be rgb itself: each pixel is read before it is written)
    one, scale = np.float32(1.0), np.float32(110.0)
    d = np.empty(3)
    lab = np.empty(2, np.float32)
    for y in range(rgb.shape[0]):
        a0, a1, wy = ri0[y], ri1[y], rlam[y]
        for x in range(rgb.shape[1]):
            b0, b1, wx = ci0[x], ci1[x], clam[x]
            for ch in range(2):
                t0 = ab[ch, a0, b0] * (one - wx) + ab[ch, a0, b1] * wx
                t1 = ab[ch, a1, b0] * (one - wx) + ab[ch, a1, b1] * wx
                v = (t0 * (one - wy) + t1 * wy) * scale
                lab[ch] = min(max(v, -scale), scale)
            yy = lut[rgb[y, x, 0]] * yw[0] + lut[rgb[y, x, 1]] * yw[1] + lut[rgb[y, x, 2]] * yw[2]
            f = yy ** (1.0 / 3.0) if yy > 0.008856 else 7.787 * yy + 16.0 / 116.0
            lum = np.float32(116.0 * f - 16.0)
            _lab_pixel(lum, lab[0], lab[1], m, white, thr, start, False, d, out[y, x])  # grey-mixed gamut


def join_into(
    frames: np.ndarray, ab_n: torch.Tensor, out: np.ndarray | None = None, rows: int | None = None
) -> np.ndarray:
    """uint8 RGB frames [B, H, W, 3] (their L is kept) + ab_n [B, 2, h, w] -> uint8 RGB [B, H, W, 3].

    The result of `compose.join_full_resolution(luminance_uint8(frames), ab_n)` (within one uint8
    level, see the module docstring) without any full-size float array. `out`: where to write it
    (may be `frames` itself, a writeable uint8 [B, H, W, 3]); default a new array.
    """
    arr = as_uint8_frames(frames)
    b, h, w, _ = arr.shape
    ab = ab_n.detach().to("cpu", torch.float32).numpy()
    if ab.shape[:2] != (b, 2):
        raise ValueError(f"ab_n must be [{b}, 2, h, w], got {list(ab.shape)}")
    if out is None:
        out = np.empty_like(arr)
    rows = rows or strip_rows(w)
    for k in range(b):
        joiner = RowJoiner(ab[k], h, w)
        for y0 in range(0, h, rows):
            joiner(arr[k, y0 : y0 + rows], y0, out[k, y0 : y0 + rows])
    return out


class RowJoiner:
    """Joins strips of rows of one picture (height x width) with its ab_n [2, h, w] (float32 numpy or
    tensor): `joiner(strip uint8 [r, W, 3], y0, out=None) -> uint8 [r, W, 3]` (the strip's rows y0..y0+r)."""

    def __init__(self, ab_n, height: int, width: int):
        ab = ab_n.detach().to("cpu", torch.float32).numpy() if isinstance(ab_n, torch.Tensor) else ab_n
        self.ab = np.ascontiguousarray(ab, dtype=np.float32)
        if self.ab.ndim != 3 or self.ab.shape[0] != 2:
            raise ValueError(f"ab_n must be [2, h, w], got {list(self.ab.shape)}")
        self.rows = _linear_weights(self.ab.shape[1], height)
        self.cols = _linear_weights(self.ab.shape[2], width)

    def __call__(self, strip: np.ndarray, y0: int, out: np.ndarray | None = None) -> np.ndarray:
        rgb = strip if strip.ndim == 3 else np.repeat(strip[..., None], 3, axis=-1)
        out = np.empty(rgb.shape, np.uint8) if out is None else out
        y1 = y0 + rgb.shape[0]
        ri0, ri1, rlam = (x[y0:y1] for x in self.rows)
        ci0, ci1, clam = self.cols
        _join_strip_kernel(
            rgb, self.ab, ri0, ri1, rlam, ci0, ci1, clam, _LINEAR_LUT, _Y_WEIGHTS, _RGB_FROM_XYZ_NP,
            _WHITE, _ENCODE_THR, _ENCODE_START, out,
        )  # fmt: skip
        return out


@numba.njit(cache=True, nogil=True)
def _paeth_rows(rows, prev, out):  # rows uint8 [R, N] (N = 3 W), prev uint8 [N]; out uint8 [R, N + 1]
    for y in range(rows.shape[0]):
        out[y, 0] = 4  # PNG filter type 4: Paeth
        for i in range(rows.shape[1]):
            a = np.int32(rows[y, i - 3]) if i >= 3 else np.int32(0)
            up = np.int32(rows[y - 1, i]) if y > 0 else np.int32(prev[i])
            if i >= 3:
                c = np.int32(rows[y - 1, i - 3]) if y > 0 else np.int32(prev[i - 3])
            else:
                c = np.int32(0)
            p = a + up - c
            pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (up if pb <= pc else c)
            out[y, i + 1] = (np.int32(rows[y, i]) - pred) & 255


def _chunk(f, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data)
    f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))


def write_png(path: Path, rgb: np.ndarray, level: int = 6, rows: int | None = None) -> None:
    """Write uint8 RGB [H, W, 3] as an 8-bit RGB PNG, strip by strip (memory: one filtered strip and
    zlib's window). Raises OSError as `open` does."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected uint8 [H, W, 3], got {arr.dtype} {arr.shape}")
    h, w, _ = arr.shape
    rows = rows or strip_rows(w)
    write_png_strips(path, w, h, (arr[y0 : y0 + rows] for y0 in range(0, h, rows)), level)


def write_png_strips(
    path: Path, width: int, height: int, strips: Iterable[np.ndarray], level: int = 6
) -> None:
    """Write an 8-bit RGB PNG from its strips of rows (uint8 [r, width, 3], top to bottom, `height` rows
    in all), each compressed as it comes: the picture is never held whole."""
    w, h, done = width, height, 0
    comp = zlib.compressobj(level)
    prev = np.zeros(3 * w, np.uint8)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        _chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        for rgb_strip in strips:
            if rgb_strip.shape[1:] != (w, 3):
                raise ValueError(f"a strip of {list(rgb_strip.shape)} in a {w}-pixel-wide RGB picture")
            done += rgb_strip.shape[0]
            strip = np.ascontiguousarray(rgb_strip).reshape(-1, 3 * w)
            filtered = np.empty((strip.shape[0], 3 * w + 1), np.uint8)
            _paeth_rows(strip, prev, filtered)
            prev = strip[-1].copy()
            data = comp.compress(filtered.tobytes())
            if data:
                _chunk(f, b"IDAT", data)
        if done != h:
            raise ValueError(f"{done} rows given for a picture of {h}")
        _chunk(f, b"IDAT", comp.flush())
        _chunk(f, b"IEND", b"")


FRAME_BATCH_PIXELS = 8 * 1920 * 1080  # pixels of a film's frame batch: 8 frames of 1080p


def frame_batch(batch_size: int, width: int, height: int, budget: int = FRAME_BATCH_PIXELS) -> int:
    """Frames per batch for `width` x `height` frames: `batch_size`, fewer where the batch would hold
    more than `budget` pixels (so an 8K film takes the memory of a 1080p one), at least 1."""
    return max(1, min(batch_size, budget // max(1, width * height)))
