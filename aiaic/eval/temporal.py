"""Temporal consistency of a coloured clip: CDC, the colour distribution consistency index.

CDC (Liu et al. 2021, "Temporally Consistent Video Colorization with Deep Feature Propagation and
Self-regularization Learning" (TCVC); also ColorMNet's and the NTIRE 2023 video colorization
challenge's measure), as computed by TCVC's own evaluation code (lyh-18/TCVC-Temporally-Consistent-
Video-Colorization, `codes/eval_results.py`: `JS_divergence`, `compute_JS_bgr`,
`calculate_folders_multiple`; read, not copied):

- each frame [H, W, 3] uint8 gives three 256-bin histograms, one per colour channel (R, G, B), of the
  values 0..255, each divided by H * W (so each sums to 1);
- JS(p, q) = 0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2, natural logarithm (scipy.stats.entropy's
  default), terms with p = 0 count 0; so 0 <= JS <= ln 2;
- for a dilation d and a channel c: the mean over t = 0 .. N - 1 - d of JS(h_c(t), h_c(t + d));
- the clip's CDC: the mean over d in {1, 2, 4} (weights 1/3 each) and over the three channels.
  (Averaging order does not matter inside a clip: every step is a plain mean.) Over several clips
  TCVC reports the mean of the clips' values. A dilation that does not fit the clip (N <= d) is left
  out of the mean; a clip of one frame has no CDC (None).

Lower is better; a still clip has CDC 0. The reference clip's own CDC (motion and cuts give it one) is
the floor a colourization can reach.

`CdcAccumulator` computes it streamed: it holds the last max(d) frames' histograms, the running sums,
and one small record per frame (the JS at d = 1 for the plot), so memory does not grow with frame size.
Shots: pairs (t, t + d) whose frames lie in one shot also count toward that shot's CDC.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

DILATIONS: tuple[int, ...] = (1, 2, 4)
BINS = 256


def channel_histograms(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> float64 [3, 256]: per-channel histograms of 0..255, each summing to 1."""
    if (
        not isinstance(frame, np.ndarray)
        or frame.dtype != np.uint8
        or frame.ndim != 3
        or frame.shape[-1] != 3
    ):
        raise ValueError(f"expected a uint8 frame [H, W, 3], got {getattr(frame, 'shape', None)}")
    h, w, _ = frame.shape
    flat = frame.reshape(-1, 3)
    return np.stack([np.bincount(flat[:, c], minlength=BINS) for c in range(3)]).astype(np.float64) / (h * w)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (nats) of distributions along the last axis: [..., K] x [..., K] -> [...]."""
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log(p / m), 0.0)
        kq = np.where(q > 0, q * np.log(q / m), 0.0)
    return 0.5 * kp.sum(-1) + 0.5 * kq.sum(-1)


def cdc(frames: list[np.ndarray] | np.ndarray, dilations: tuple[int, ...] = DILATIONS) -> float | None:
    """CDC of uint8 RGB frames [N, H, W, 3] (see the module docstring); None for fewer than 2 frames."""
    acc = CdcAccumulator(dilations)
    for f in frames:
        acc.add(f)
    return acc.value()


@dataclass
class _Sums:
    """Running JS sums per dilation (each the sum over pairs of the mean over the 3 channels)."""

    total: dict[int, float] = field(default_factory=dict)
    count: dict[int, int] = field(default_factory=dict)

    def add(self, d: int, js: float) -> None:
        self.total[d] = self.total.get(d, 0.0) + js
        self.count[d] = self.count.get(d, 0) + 1

    def value(self, dilations: tuple[int, ...]) -> float | None:
        means = [self.total[d] / self.count[d] for d in dilations if self.count.get(d)]
        return float(np.mean(means)) if means else None


class CdcAccumulator:
    """Streamed CDC: `add` frames in order (with `cut=True` on a shot's first frame), then `value()`,
    `shot_values()` and `per_frame` (JS between frame t - 1 and t, mean over channels; NaN for t = 0)."""

    def __init__(self, dilations: tuple[int, ...] = DILATIONS):
        if not dilations or min(dilations) < 1:
            raise ValueError(f"dilations must be positive integers, got {dilations}")
        self.dilations = tuple(dilations)
        self._recent: deque[tuple[np.ndarray, int]] = deque(maxlen=max(self.dilations))  # (hist, shot)
        self._sums = _Sums()
        self._shots: list[_Sums] = []
        self.per_frame: list[float] = []
        self.frames = 0

    def add(self, frame: np.ndarray, cut: bool = False) -> None:
        """Add the next uint8 RGB frame [H, W, 3]; `cut`: it starts a new shot (as the first frame does)."""
        hist = channel_histograms(frame)
        if cut or not self._shots:
            self._shots.append(_Sums())
        shot = len(self._shots) - 1
        d1 = math.nan
        for d in self.dilations:
            if d <= len(self._recent):
                prev, prev_shot = self._recent[-d]
                js = float(js_divergence(prev, hist).mean())
                self._sums.add(d, js)
                if prev_shot == shot:
                    self._shots[shot].add(d, js)
                if d == 1:
                    d1 = js
        self.per_frame.append(d1)
        self._recent.append((hist, shot))
        self.frames += 1

    def value(self) -> float | None:
        """The clip's CDC (None for fewer than 2 frames)."""
        return self._sums.value(self.dilations)

    def shot_values(self) -> list[float | None]:
        """CDC of each shot (pairs inside it only; None for a one-frame shot)."""
        return [s.value(self.dilations) for s in self._shots]
