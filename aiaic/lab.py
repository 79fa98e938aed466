"""CIE Lab (D65, 2 degree observer) in torch, matching `skimage.color.rgb2lab` / `lab2rgb`.

Tensors are channel-first: RGB in [0, 1] as [B, 3, H, W] (or [3, H, W]); Lab as L in [0, 100],
a and b roughly in [-110, 110]. Differentiable. Network conventions:
L_n = (L - 50) / 50 and ab_n = ab / 110.
"""

from __future__ import annotations

import torch

# skimage.color.colorconv.xyz_from_rgb and the D65 / 2-degree white point
_XYZ_FROM_RGB = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
    dtype=torch.float64,
)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)

L_CENTER = 50.0
L_SCALE = 50.0
AB_SCALE = 110.0


def _mix(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    m = matrix.to(dtype=x.dtype, device=x.device)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def _channel_view(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(dtype=x.dtype, device=x.device).view(3, 1, 1)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """RGB [..., 3, H, W] in [0, 1] -> Lab [..., 3, H, W]."""
    lin = torch.where(rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _mix(lin, _XYZ_FROM_RGB) / _channel_view(_WHITE_D65, rgb)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(-3)
    L = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return torch.stack([L, a, b], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab [..., 3, H, W] -> RGB [..., 3, H, W] clipped to [0, 1] (as skimage does)."""
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp_min(0.0)
    f = torch.stack([fx, fy, fz], dim=-3)
    xyz = torch.where(f > 0.2068966, f.clamp_min(0.2068966) ** 3, (f - 16.0 / 116.0) / 7.787)
    xyz = xyz * _channel_view(_WHITE_D65, lab)
    lin = _mix(xyz, _RGB_FROM_XYZ)
    rgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * lin)
    return rgb.clamp(0.0, 1.0)


def normalize_l(L: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> L_n = (L - 50) / 50 in [-1, 1]."""
    return (L - L_CENTER) / L_SCALE


def denormalize_l(L_n: torch.Tensor) -> torch.Tensor:
    return L_n * L_SCALE + L_CENTER


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """ab -> ab_n = ab / 110."""
    return ab / AB_SCALE


def denormalize_ab(ab_n: torch.Tensor) -> torch.Tensor:
    """ab_n -> ab, clamped to the valid range [-110, 110]."""
    return (ab_n * AB_SCALE).clamp(-AB_SCALE, AB_SCALE)


def lab_from_normalized(L_n: torch.Tensor, ab_n: torch.Tensor) -> torch.Tensor:
    """Join L_n [..., 1, H, W] and ab_n [..., 2, H, W] into Lab [..., 3, H, W] (ab clamped)."""
    return torch.cat([denormalize_l(L_n), denormalize_ab(ab_n)], dim=-3)


def grey_rgb(L_n: torch.Tensor) -> torch.Tensor:
    """L_n [B, 1, H, W] -> the grey image as RGB [B, 3, H, W] in [0, 1] (Lab with a = b = 0)."""
    zeros = torch.zeros_like(L_n).expand(-1, 2, -1, -1)
    return lab_to_rgb(lab_from_normalized(L_n, zeros))
