"""The evaluation protocol, in one place, and its written-out description.

Two settings (`EvalConfig.protocol`, `EvalConfig.gamut`; `aiaic-eval --protocol --gamut`):

1. The ground truth is the sample's RGB frame, uint8, 256 x 256, prepared by `protocol`:
   - "crop": resized so its short side is 256 px (area averaging when shrinking, bicubic when
     enlarging; the long side rounded to the nearest pixel) and centre-cropped to 256 x 256 (offsets
     floor((W - 256) / 2), floor((H - 256) / 2)): square pixels, the sides of a wide frame lost.
   - "resize": the whole frame resized to 256 x 256 (area averaging when both sides shrink, else
     bicubic), as DDColor, DISCO and ChromaGAN prepare their inputs: nothing lost, aspect changed.
     The paper's recipes use it.
2. The model sees the L channel of that image, resized to its own input size (`image_size`), as
   L_n = (L - 50) / 50. Its ab_n prediction is upsampled bilinearly to 256 x 256, multiplied by 110,
   clamped to [-110, 110], joined with the image's own L, converted Lab -> sRGB (D65, as skimage), and
   rounded to uint8. Colours outside the sRGB gamut, by `gamut`:
   - "clip": each linear RGB channel clipped to [0, 1] (the usual convention: what
     `skimage.color.lab2rgb` gives); the paper's recipes use it.
   - "grey": mixed (in linear RGB) with the grey of the same luminance just enough to fit, so the
     prediction keeps the ground truth's luminance and hue (what aiaic-colorize does).
3. Metrics on the two uint8 256 x 256 RGB images: PSNR (data range 255, all channels), SSIM
   (skimage `structural_similarity(channel_axis=-1, data_range=255)`), LPIPS (lpips 0.1.4, AlexNet,
   v0.1, inputs x / 127.5 - 1), Hasler-Suesstrunk colourfulness of the prediction. Each metric is
   averaged over the images of a split (arithmetic mean; PSNR too).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

EVAL_SIZE = 256
PROTOCOLS = ("crop", "resize")
GAMUTS = ("clip", "grey")


def resize_short_side(image: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> uint8 RGB with short side `size` (area to shrink, bicubic to enlarge)."""
    h, w = image.shape[:2]
    short = min(h, w)
    if short == size:
        return image
    scale = size / short
    new_w = size if w == short else max(size, int(round(w * scale)))
    new_h = size if h == short else max(size, int(round(h * scale)))
    method = Image.Resampling.BOX if short > size else Image.Resampling.BICUBIC
    out = Image.fromarray(np.ascontiguousarray(image)).resize((new_w, new_h), method)
    return np.asarray(out, dtype=np.uint8)


def center_crop(image: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    """Centre crop [H, W, ...] to [size, size, ...]; offsets floor((H - size) / 2), floor((W - size) / 2)."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError(f"cannot centre-crop {size} x {size} from an image of {h} x {w}")
    top = (h - size) // 2
    left = (w - size) // 2
    return image[top : top + size, left : left + size]


def resize_whole(image: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> uint8 RGB [size, size, 3], the whole frame (area averaging when both sides
    shrink, else bicubic)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    method = Image.Resampling.BOX if min(h, w) >= size else Image.Resampling.BICUBIC
    out = Image.fromarray(np.ascontiguousarray(image)).resize((size, size), method)
    return np.asarray(out, dtype=np.uint8)


def check_setting(protocol: str, gamut: str) -> None:
    """ValueError unless `protocol` is one of PROTOCOLS and `gamut` one of GAMUTS."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    if gamut not in GAMUTS:
        raise ValueError(f"gamut must be one of {list(GAMUTS)}, got {gamut!r}")


def protocol_image(image: np.ndarray, size: int = EVAL_SIZE, protocol: str = "crop") -> np.ndarray:
    """The protocol's ground truth: uint8 RGB [size, size, 3] from uint8 RGB [H, W, 3] or grey [H, W]
    ("crop": short side to `size`, centre crop; "resize": the whole frame to `size` x `size`)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"protocol_image expects uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"protocol_image expects [H, W, 3] or [H, W], got {arr.shape}")
    check_setting(protocol, "clip")
    if protocol == "resize":
        return np.ascontiguousarray(resize_whole(arr, size))
    return np.ascontiguousarray(center_crop(resize_short_side(arr, size), size))


def describe(size: int = EVAL_SIZE, protocol: str = "crop", gamut: str = "grey") -> dict:
    """The protocol as data (written into metrics.json and, as prose, into report.md)."""
    check_setting(protocol, gamut)
    frame = (
        f"the whole frame resized to {size}x{size} (area down / bicubic up; aspect not kept), RGB uint8"
        if protocol == "resize"
        else f"short side resized to {size} (area down / bicubic up), centre crop {size}x{size}, RGB uint8"
    )
    out_of_gamut = (
        "out-of-gamut colours clipped per channel (as skimage lab2rgb)"
        if gamut == "clip"
        else "out-of-gamut colours mixed in linear RGB with the grey of equal luminance (L kept)"
    )
    return {
        "name": f"{protocol}, {'clipped' if gamut == 'clip' else 'grey-mixed'} gamut",
        "ground_truth": frame,
        "model_input": (
            "L of that image resized (bilinear, antialiased) to the model's image_size; L_n = (L - 50) / 50"
        ),
        "prediction": (
            f"ab_n upsampled bilinearly to {size}x{size}, ab = clamp(110 * ab_n, -110, 110), joined with the "
            f"image's L, Lab->sRGB (D65, skimage formulas), {out_of_gamut}, rounded to uint8"
        ),
        "psnr": (
            "10 log10(255^2 / MSE), MSE over all pixels and channels "
            "(skimage peak_signal_noise_ratio, data_range=255)"
        ),
        "ssim": (
            "skimage structural_similarity(channel_axis=-1, data_range=255): 7x7 uniform window, "
            "sample covariance"
        ),
        "lpips": (
            "lpips 0.1.4, net='alex', version 0.1, inputs x/127.5-1; "
            "ImageNet AlexNet trunk from local files only"
        ),
        "colorfulness": "Hasler & Suesstrunk 2003 on 0..255 RGB of the prediction",
        "aggregation": "arithmetic mean over the images of a split",
        "size": size,
        "protocol": protocol,
        "gamut": gamut,
    }
