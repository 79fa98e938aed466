"""Colour a film as one film: the predicted ab stabilised over time along the motion, reset at cuts.

Per frame t, at the model's resolution S x S (the model's own input L_n and prediction ab_n):

1. grey g_t = the model input L_n as uint8 (0..255); a cut (`aiaic.colorize.shots.CutDetector` on g_t)
   or the film's first frame resets the state: the output is the prediction itself.
2. Optical flow on the grey frames (OpenCV DIS, "fast" preset), both ways: b = flow(g_t -> g_{t-1}),
   f = flow(g_{t-1} -> g_t). The previous *stabilised* ab (and g_{t-1}) is warped into frame t by b
   (bilinear, border replicated).
3. Confidence per pixel in [0, 1]: forward-backward consistency (e = |b(x) + f(x + b(x))|, pixels;
   conf_flow = exp(-(e / flow_tol)^2)) times grey agreement (d = |g_t - warped g_{t-1}|, levels 0..255;
   conf_L = exp(-(d / grey_tol)^2)), times `strength`. Occluded or newly visible pixels, and pixels
   where the flow is wrong, get low confidence and keep the current prediction: moving objects do not
   smear.
4. Blend: ab = (1 - w) ab_pred + w ab_warped with w = strength * conf; then the chroma magnitude is set
   to (1 - w) |ab_pred| + w |ab_warped| (same hue as the blend), so averaging two hues does not
   desaturate the colours (no dulling).

So within a shot the output is an exponential moving average along motion trajectories (strength 0.8
weighs roughly the last 5 frames). State: one S x S grey frame and one [2, S, S] ab; memory does not
grow with the film's length. `--temporal none` skips all of this (frame-by-frame output).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from aiaic.colorize.compose import join_full_resolution, luminance_uint8, model_input
from aiaic.colorize.shots import CutConfig, CutDetector

TEMPORAL_MODES = ("none", "stable")


@dataclass(frozen=True)
class StabiliserConfig:
    """strength: weight of the warped past at full confidence (0 = off, < 1);
    flow_tol: forward-backward error (pixels at S x S) where conf_flow falls to 1/e;
    grey_tol: grey-level difference (0..255) where conf_L falls to 1/e."""

    strength: float = 0.8
    flow_tol: float = 1.0
    grey_tol: float = 10.0
    cuts: CutConfig = CutConfig()

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise ValueError(f"strength must be in [0, 1), got {self.strength}")
        if self.flow_tol <= 0 or self.grey_tol <= 0:
            raise ValueError("flow_tol and grey_tol must be > 0")


def grey_from_model_input(L_n: torch.Tensor) -> np.ndarray:
    """L_n [B, 1, S, S] ((L - 50) / 50) -> uint8 grey [B, S, S] (L scaled to 0..255)."""
    g = (L_n[:, 0].float() * 50.0 + 50.0) * 2.55
    return g.round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def _remap(img: np.ndarray, flow: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """img [S, S] or [S, S, C] sampled at x + flow(x) (bilinear, border replicated)."""
    m = grid + flow
    return cv2.remap(img, m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class Stabiliser:
    """Streams frames of one film: `step(grey [S, S] uint8, ab [2, S, S] float32) -> ab [2, S, S]`."""

    def __init__(self, cfg: StabiliserConfig = StabiliserConfig()):
        self.cfg = cfg
        self.cuts = CutDetector(cfg.cuts)
        self._flow = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_FAST)
        self._prev_grey: np.ndarray | None = None
        self._prev_ab: np.ndarray | None = None  # [S, S, 2] float32, the last stabilised output
        self._grid: np.ndarray | None = None
        self.last_confidence: np.ndarray | None = None  # [S, S], for inspection

    def reset(self) -> None:
        self._prev_grey = self._prev_ab = None

    def step(self, grey: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """One frame: grey uint8 [S, S], predicted ab float32 [2, S, S] -> stabilised ab [2, S, S]."""
        ab_hwc = np.ascontiguousarray(np.moveaxis(ab.astype(np.float32, copy=False), 0, -1))
        cut = self.cuts.update(grey)
        prev_grey, prev_ab = self._prev_grey, self._prev_ab
        if cut or prev_grey is None or prev_ab is None or prev_grey.shape != grey.shape:
            out = ab_hwc
            self.last_confidence = np.zeros(grey.shape, np.float32)
        else:
            out = self._blend(grey, ab_hwc, prev_grey, prev_ab)
        self._prev_grey, self._prev_ab = grey, out
        return np.moveaxis(out, -1, 0)

    def _confidence(
        self, grey: np.ndarray, prev_grey: np.ndarray, back: np.ndarray, fwd: np.ndarray, grid: np.ndarray
    ) -> np.ndarray:
        fwd_at = _remap(fwd, back, grid)  # f(x + b(x))
        err = np.sqrt(((back + fwd_at) ** 2).sum(-1))
        warped_grey = _remap(prev_grey.astype(np.float32), back, grid)
        dl = np.abs(grey.astype(np.float32) - warped_grey)
        return np.exp(-((err / self.cfg.flow_tol) ** 2) - (dl / self.cfg.grey_tol) ** 2).astype(np.float32)

    def _blend(
        self, grey: np.ndarray, ab: np.ndarray, prev_grey: np.ndarray, prev_ab: np.ndarray
    ) -> np.ndarray:
        h, w = grey.shape
        if self._grid is None or self._grid.shape[:2] != (h, w):
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
            self._grid = np.stack([xs, ys], axis=-1)
        back = self._flow.calc(grey, prev_grey, np.zeros((h, w, 2), np.float32))  # output (no initial flow)
        fwd = self._flow.calc(prev_grey, grey, np.zeros((h, w, 2), np.float32))
        conf = self._confidence(grey, prev_grey, back, fwd, self._grid)
        self.last_confidence = conf
        warped = _remap(prev_ab, back, self._grid)
        wgt = (self.cfg.strength * conf)[..., None]
        mixed = (1.0 - wgt) * ab + wgt * warped
        target = (1.0 - wgt[..., 0]) * np.linalg.norm(ab, axis=-1) + wgt[..., 0] * np.linalg.norm(
            warped, axis=-1
        )
        norm = np.linalg.norm(mixed, axis=-1)
        scale = np.where(norm > 1e-6, target / np.maximum(norm, 1e-6), 1.0)[..., None]
        return (mixed * scale).astype(np.float32)


@torch.inference_mode()
def colorize_guided_stable(
    model,
    frames: np.ndarray,
    c: torch.Tensor | None,
    r: torch.Tensor,
    device: torch.device,
    stabiliser: Stabiliser,
) -> np.ndarray:
    """As `aiaic.colorize.guided.colorize_guided` (uint8 RGB [B, H, W, 3] in, same out with the input's
    L), with each frame's ab_n passed through `stabiliser` in order before joining with the full L."""
    L_full = luminance_uint8(frames, device)
    L_n = model_input(L_full, model.image_size)
    ab_n = model.predict_guided(L_n, None if c is None else c.to(device), r.to(device)).float().cpu().numpy()
    greys = grey_from_model_input(L_n)
    stable = np.stack([stabiliser.step(g, a) for g, a in zip(greys, ab_n, strict=True)])
    return join_full_resolution(L_full, torch.from_numpy(stable).to(device))
