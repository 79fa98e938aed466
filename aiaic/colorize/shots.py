"""Shot-cut detection on grey frames, streamed one frame at a time.

Each grey frame is reduced to `size` x `size` (area average) and a `bins`-bin histogram of its levels
(summing to 1). The difference of consecutive frames is half the L1 distance of their histograms, in
[0, 1] (0: same distribution of grey levels; 1: disjoint). A frame starts a new shot when its
difference exceeds both `min_diff` and mean + k * std of the differences of the last `window` frames
of the current shot (an adaptive threshold: a shot with much motion needs a larger jump), and the
current shot has at least `min_shot` frames (a flash does not split a shot twice). Histograms ignore
where things are, so motion inside a shot changes them little; a cut to other content changes them
much. The first frame always starts a shot. State: one histogram and `window` floats.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CutConfig:
    """Cut-detector settings: sizes in pixels and frames; differences in [0, 1]."""

    size: int = 64
    bins: int = 32
    window: int = 24
    k: float = 4.0
    min_diff: float = 0.3
    min_shot: int = 6


def grey_histogram(grey: np.ndarray, size: int, bins: int) -> np.ndarray:
    """uint8 grey [H, W] -> float64 [bins] (sums to 1) of the frame reduced to size x size."""
    if grey.dtype != np.uint8 or grey.ndim != 2:
        raise ValueError(f"expected a uint8 grey frame [H, W], got {grey.dtype} {grey.shape}")
    small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
    hist = np.bincount((small.astype(np.int64).ravel() * bins) // 256, minlength=bins).astype(np.float64)
    return hist / hist.sum()


class CutDetector:
    """`update(grey)` -> True when that frame starts a new shot (see the module docstring)."""

    def __init__(self, cfg: CutConfig = CutConfig()):
        self.cfg = cfg
        self._prev: np.ndarray | None = None
        self._diffs: deque[float] = deque(maxlen=cfg.window)
        self._shot_len = 0
        self.frame = -1  # index of the last frame seen
        self.cuts: list[int] = []  # indices of frames that start a shot (after the first)

    def update(self, grey: np.ndarray) -> bool:
        hist = grey_histogram(grey, self.cfg.size, self.cfg.bins)
        self.frame += 1
        prev, self._prev = self._prev, hist
        if prev is None:
            self._shot_len = 1
            return True
        diff = 0.5 * float(np.abs(hist - prev).sum())
        cut = diff > self.cfg.min_diff and self._shot_len >= self.cfg.min_shot
        if cut and len(self._diffs) >= 2:
            past = np.asarray(self._diffs)
            cut = diff > float(past.mean() + self.cfg.k * past.std())
        if cut:
            self._diffs.clear()
            self._shot_len = 1
            self.cuts.append(self.frame)
            return True
        self._diffs.append(diff)
        self._shot_len += 1
        return False


def rgb_to_grey(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> uint8 grey [H, W] (ITU-R BT.601 luma, as OpenCV's RGB2GRAY)."""
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
