"""From full-resolution frames to the model's input and back (the colour conventions of `aiaic.lab`).

The model sees L_n = (L - 50) / 50 at `size` x `size` (the frame's full-resolution L resized
bilinearly with antialiasing; a grey frame has R = G = B). It predicts ab_n at that size;
`join_full_resolution` upsamples ab bilinearly to the frame's own H x W, joins it with the frame's
own full-resolution L and converts to sRGB uint8. Colours outside the sRGB gamut are desaturated
toward the grey of the same luminance (in linear RGB), so the output's luminance equals the input's
up to the uint8 rounding (|dL| < 0.5 or so), instead of being changed by per-channel clipping.

The per-pixel conversions at full resolution run as numba kernels (one pass per pixel, no
temporaries; several times faster than the same formulas as torch tensor operations on a CPU).
The formulas are those of `aiaic.lab` (skimage's: sRGB, D65, 2-degree observer).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F

from aiaic.lab import _RGB_FROM_XYZ, _WHITE_D65, _XYZ_FROM_RGB, denormalize_ab, normalize_l

_Y_WEIGHTS = np.asarray(_XYZ_FROM_RGB[1], dtype=np.float64)  # Y of linear sRGB (white Y = 1)
_RGB_FROM_XYZ_NP = np.asarray(_RGB_FROM_XYZ, dtype=np.float64)
_WHITE = np.asarray(_WHITE_D65, dtype=np.float64)
_v = np.arange(256, dtype=np.float64) / 255.0
_LINEAR_LUT = np.where(_v > 0.04045, ((_v + 0.055) / 1.055) ** 2.4, _v / 12.92)  # sRGB code -> linear


def _encode_tables(bins: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact sRGB encoding to uint8 without a power per pixel: code(v) = #{k: v >= thr[k]} with
    thr[k] the linear value of sRGB level (k + 0.5) / 255 (i.e. round(255 * srgb(v)), halves up);
    start[j] = code(j / bins) is where the search begins for v in [j / bins, (j + 1) / bins)."""
    s = (np.arange(255, dtype=np.float64) + 0.5) / 255.0
    thr = np.where(s > 0.04045, ((s + 0.055) / 1.055) ** 2.4, s / 12.92)
    start = np.searchsorted(thr, np.arange(bins + 1) / bins, side="right").astype(np.int64)
    return thr, start


_ENCODE_THR, _ENCODE_START = _encode_tables()


def as_uint8_frames(images: np.ndarray) -> np.ndarray:
    """Check and normalise uint8 RGB [B, H, W, 3] (grey [B, H, W] is repeated to 3 channels)."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {arr.dtype}")
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected [B, H, W, 3] or [B, H, W], got {arr.shape}")
    return np.ascontiguousarray(arr)


@numba.njit(cache=True, nogil=True)
def _luminance_kernel(rgb, lut, w, out):  # rgb uint8 [N, 3], lut [256], w [3] float64; out float32 [N]
    for k in range(rgb.shape[0]):
        y = lut[rgb[k, 0]] * w[0] + lut[rgb[k, 1]] * w[1] + lut[rgb[k, 2]] * w[2]
        f = y ** (1.0 / 3.0) if y > 0.008856 else 7.787 * y + 16.0 / 116.0
        out[k] = 116.0 * f - 16.0


@numba.njit(cache=True, nogil=True)
def _finv(f):
    return f * f * f if f > 0.2068966 else (f - 16.0 / 116.0) / 7.787


@numba.njit(cache=True, nogil=True)
def _encode(v, thr, start):  # linear v in [0, 1] -> sRGB code 0..255, exact (see _encode_tables)
    bins = start.shape[0] - 1
    code = start[int(v * bins)]
    while code < 255 and v >= thr[code]:
        code += 1
    return code


@numba.njit(cache=True, nogil=True)
def _lab_pixel(lum, a, b, m, white, thr, start, clip, d, px):  # one Lab pixel -> sRGB codes px u8 [3]
    fy = (lum + 16.0) / 116.0
    x = _finv(a / 500.0 + fy) * white[0]
    y = _finv(fy) * white[1]
    z = _finv(max(fy - b / 200.0, 0.0)) * white[2]
    if clip:  # per channel, as skimage lab2rgb
        for c in range(3):
            v = m[c, 0] * x + m[c, 1] * y + m[c, 2] * z
            px[c] = _encode(min(max(v, 0.0), 1.0), thr, start)
        return
    t = 1.0  # largest mix with the grey (y, y, y) that stays inside [0, 1]^3
    for c in range(3):  # d [3]: scratch space of the caller's loop
        d[c] = m[c, 0] * x + m[c, 1] * y + m[c, 2] * z - y
        if d[c] > 1e-12:
            t = min(t, (1.0 - y) / d[c])
        elif d[c] < -1e-12:
            t = min(t, y / -d[c])
    t = max(t, 0.0)
    for c in range(3):
        px[c] = _encode(min(max(y + t * d[c], 0.0), 1.0), thr, start)


@numba.njit(cache=True, nogil=True)
def _join_kernel(lab_l, lab_a, lab_b, m, white, thr, start, clip, out):  # L, a, b f32 [N]; out u8 [N, 3]
    d = np.empty(3)
    for k in range(lab_l.shape[0]):
        _lab_pixel(lab_l[k], lab_a[k], lab_b[k], m, white, thr, start, clip, d, out[k])


def luminance_uint8(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 RGB [B, H, W, 3] (or grey [B, H, W]) -> CIE L [B, 1, H, W] in [0, 100] (D65, as skimage).

    Same formulas as `aiaic.lab.rgb_to_lab` (sRGB decoding through a 256-entry table, then
    Y = 0.212671 R + 0.715160 G + 0.072169 B, L = 116 f(Y) - 16), without computing a and b.
    """
    arr = as_uint8_frames(images)
    b, h, w, _ = arr.shape
    out = np.empty(b * h * w, np.float32)
    _luminance_kernel(arr.reshape(-1, 3), _LINEAR_LUT, _Y_WEIGHTS, out)
    return torch.from_numpy(out.reshape(b, 1, h, w)).to(device)


def model_input(L: torch.Tensor, size: int) -> torch.Tensor:
    """Full-resolution L [B, 1, H, W] -> L_n [B, 1, size, size]: bilinear, antialiased, then (L - 50) / 50."""
    if L.shape[-2:] != (size, size):
        L = F.interpolate(L, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return normalize_l(L.clamp(0.0, 100.0))


def join_full_resolution(L: torch.Tensor, ab_n: torch.Tensor, gamut: str = "grey") -> np.ndarray:
    """Full-resolution L [B, 1, H, W] (0..100) + ab_n [B, 2, h, w] -> uint8 RGB [B, H, W, 3].

    ab_n is upsampled bilinearly (align_corners=False) to H x W and denormalised (x 110, clamped);
    Lab -> linear sRGB; an out-of-gamut colour is, with gamut "grey", mixed with the grey of the same
    luminance (Y, Y, Y): Y is linear in linear RGB, so the mix keeps Y (hence L) and the hue (the
    direction from the white point), with the largest weight that fits [0, 1]^3 (closed form per
    channel); with gamut "clip", clipped per channel to [0, 1] (what skimage's lab2rgb does); then
    sRGB-encoded and rounded.
    """
    if gamut not in ("grey", "clip"):
        raise ValueError(f"gamut must be 'grey' or 'clip', got {gamut!r}")
    b, _, h, w = L.shape
    ab_n = ab_n.to(L.device, torch.float32)
    if ab_n.shape[-2:] != (h, w):
        ab_n = F.interpolate(ab_n, size=(h, w), mode="bilinear", align_corners=False)
    ab = denormalize_ab(ab_n).cpu().numpy()
    lab_l = np.ascontiguousarray(L.detach().to(torch.float32).cpu().numpy()).reshape(-1)
    out = np.empty((b * h * w, 3), np.uint8)
    lab_a = np.ascontiguousarray(ab[:, 0]).reshape(-1)
    lab_b = np.ascontiguousarray(ab[:, 1]).reshape(-1)
    clip = gamut == "clip"
    _join_kernel(lab_l, lab_a, lab_b, _RGB_FROM_XYZ_NP, _WHITE, _ENCODE_THR, _ENCODE_START, clip, out)
    return out.reshape(b, h, w, 3)
