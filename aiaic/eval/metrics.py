"""Image-quality metrics of the evaluation protocol (`aiaic.eval.protocol`). Pure functions on uint8 RGB.

Every function takes `pred` and `target` as uint8 arrays [H, W, 3] (RGB, values 0..255) of equal shape.

- `psnr`: peak signal-to-noise ratio in dB over all pixels and channels, data range 255:
  ``10 * log10(255**2 / mean((pred - target)**2))`` (float64), +inf for identical images. Equals
  ``skimage.metrics.peak_signal_noise_ratio(target, pred, data_range=255)``.
- `ssim`: mean structural similarity with scikit-image's conventions, i.e. what
  ``skimage.metrics.structural_similarity(target, pred, channel_axis=-1, data_range=255)`` returns:
  7 x 7 uniform window (scipy ``uniform_filter``, reflect padding), sample covariance
  (N / (N - 1)), K1 = 0.01, K2 = 0.03, the map cropped by 3 pixels at each border, averaged over
  the map and then over the three channels. Computed here in float64 (a test holds it to skimage).
- `hasler_colorfulness` (the report's "colorfulness"): Hasler and Suesstrunk (2003), on the 0..255 scale:
  rg = R - G, yb = (R + G) / 2 - B, M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)
  (population standard deviations). 0 for any grey image. (DDColor's colourfulness loss term,
  `aiaic.train.losses.colorfulness`, is another measure: absolute differences, unbiased std, 0..1.)
- LPIPS lives in `aiaic.eval.perceptual` (it needs ImageNet AlexNet weights) and is re-exported here.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import uniform_filter

from aiaic.eval.perceptual import LpipsMetric, LpipsStatus, load_lpips, to_lpips_tensor

__all__ = [
    "psnr",
    "ssim",
    "hasler_colorfulness",
    "LpipsMetric",
    "LpipsStatus",
    "load_lpips",
    "to_lpips_tensor",
]

DATA_RANGE = 255.0
SSIM_WIN = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    for name, a in (("pred", pred), ("target", target)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
            got = getattr(a, "dtype", type(a)), getattr(a, "shape", None)
            raise ValueError(f"{name} must be a uint8 array [H, W, 3], got {got}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of uint8 RGB [H, W, 3] images, data range 255, MSE over all channels; inf if equal."""
    _check_pair(pred, target)
    diff = pred.astype(np.float64) - target.astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE * DATA_RANGE / mse)


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of two float64 [H, W] planes (skimage's defaults; see the module docstring)."""
    n = SSIM_WIN * SSIM_WIN
    cov_norm = n / (n - 1.0)
    ux = uniform_filter(x, size=SSIM_WIN)
    uy = uniform_filter(y, size=SSIM_WIN)
    uxx = uniform_filter(x * x, size=SSIM_WIN)
    uyy = uniform_filter(y * y, size=SSIM_WIN)
    uxy = uniform_filter(x * y, size=SSIM_WIN)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (SSIM_WIN - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean(dtype=np.float64))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM of uint8 RGB [H, W, 3] images (skimage conventions, data range 255), in [-1, 1]."""
    _check_pair(pred, target)
    if min(pred.shape[:2]) < SSIM_WIN:
        raise ValueError(f"ssim needs images of at least {SSIM_WIN} x {SSIM_WIN} pixels, got {pred.shape}")
    p = pred.astype(np.float64)
    t = target.astype(np.float64)
    return float(np.mean([_ssim_channel(t[..., c], p[..., c]) for c in range(3)]))


def hasler_colorfulness(image: np.ndarray) -> float:
    """Hasler-Suesstrunk colourfulness of a uint8 RGB [H, W, 3] image (0..255 scale; 0 for grey)."""
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[-1] != 3
    ):
        got = getattr(image, "shape", None)
        raise ValueError(f"hasler_colorfulness expects a uint8 array [H, W, 3], got {got}")
    rgb = image.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = math.sqrt(float(rg.std()) ** 2 + float(yb.std()) ** 2)
    mean = math.sqrt(float(rg.mean()) ** 2 + float(yb.mean()) ** 2)
    return std + 0.3 * mean
