"""ChromaGAN's input and output conventions, and their relation to aiaic's.

ChromaGAN reads OpenCV's 8-bit Lab (`cv2.cvtColor(bgr_uint8, cv2.COLOR_BGR2Lab)`: L8 = L * 255 / 100,
a8 = a + 128, b8 = b + 128): its input is L8 / 255 tiled to 3 channels, [B, 3, 224, 224] in [0, 1],
with no mean subtraction; its sigmoid output ab01 [B, 2, 224, 224] is (a8, b8) / 255. aiaic's are
L_n = (L - 50) / 50 and ab_n = ab / 110, so (before OpenCV's rounding to 8 bits)

    L8 / 255 = L / 100 = (L_n + 1) / 2          ab01 = (ab + 128) / 255 = (110 ab_n + 128) / 255

`colorize_bgr` is the official picture path of ChromaGANPrint.py, for any size: resize the BGR image
to the model's side, take L8 / 255, predict ab01, scale to uint8, resize ab to the picture's size
and join it with the picture's own L8 (cv2's COLOR_Lab2BGR). Needs `opencv-python-headless`.
"""

from __future__ import annotations

import numpy as np
import torch

from aiaic.lab import AB_SCALE
from aiaic.models.backbones.chromagan_arch import ChromaGANGenerator

OPENCV_AB_OFFSET = 128.0  # OpenCV's 8-bit a, b = a + 128, b + 128


def l01_from_L_n(L_n: torch.Tensor) -> torch.Tensor:
    """aiaic L_n [B, 1, H, W] -> ChromaGAN's L8 / 255 = L / 100."""
    return (L_n + 1.0) / 2.0


def L_n_from_l01(l01: torch.Tensor) -> torch.Tensor:
    """L8 / 255 = L / 100 -> aiaic L_n = (L - 50) / 50."""
    return l01 * 2.0 - 1.0


def ab01_from_ab_n(ab_n: torch.Tensor) -> torch.Tensor:
    """aiaic ab_n = ab / 110 -> ChromaGAN's ab01 = (ab + 128) / 255."""
    return (ab_n * AB_SCALE + OPENCV_AB_OFFSET) / 255.0


def ab_n_from_ab01(ab01: torch.Tensor) -> torch.Tensor:
    """ChromaGAN's ab01 = (a8, b8) / 255 -> aiaic ab_n = ab / 110."""
    return (ab01 * 255.0 - OPENCV_AB_OFFSET) / AB_SCALE


def generator_input(l01: torch.Tensor) -> torch.Tensor:
    """L8 / 255 [B, 1, H, W] -> the generator's input [B, 3, H, W] (L tiled, as np.tile does)."""
    return l01.expand(-1, 3, -1, -1)


def colorize_bgr(net: ChromaGANGenerator, bgr: np.ndarray) -> np.ndarray:
    """The official picture path: uint8 BGR [H, W, 3] of any size -> uint8 BGR [H, W, 3] that keeps
    the picture's own L8. `net`: a `ChromaGANGenerator` (or the `ChromaGAN` backbone) in eval mode."""
    import cv2

    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"colorize_bgr takes uint8 BGR [H, W, 3], got {bgr.dtype} {list(bgr.shape)}")
    side = net.size.image_size
    h, w = bgr.shape[:2]
    small = cv2.cvtColor(cv2.resize(bgr, (side, side)), cv2.COLOR_BGR2Lab)
    x = torch.from_numpy(small[:, :, :1].astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        ab01 = net.forward_official(generator_input(x))[0][0].permute(1, 2, 0).cpu().numpy()
    small_ab8 = np.clip(ab01 * 255.0, 0, 255).astype(np.uint8)  # deprocess: scale, truncate (official)
    ab8 = cv2.resize(small_ab8, (w, h))
    L8 = cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab)[:, :, :1]
    return cv2.cvtColor(np.concatenate([L8, ab8], axis=2), cv2.COLOR_Lab2BGR)
