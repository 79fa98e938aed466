"""The key frame of each second of a video: the frame nearest i + 0.5 s (the pairing the model trained on)."""

from __future__ import annotations

import math
from pathlib import Path

import av
import torch

from aiaic.colorize.audio import open_first_stream
from aiaic.colorize.compose import luminance_uint8, model_input


def open_video(src: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """(container, its first video stream decoded with threads); InputError naming `src` if unreadable."""
    container, stream = open_first_stream(src, "video")
    stream.thread_type = "AUTO"
    return container, stream


class KeyFrames:
    """The key frame of each second (decoded frame whose time is nearest to i + 0.5 s, by pts), as
    L_n [1, 1, S, S] at the model's size. A second decoder reads ahead of the colouring pass; only
    one candidate frame per second is held."""

    def __init__(self, src: Path, origin: float, size: int, device: torch.device):
        self.container, stream = open_video(src)
        self._frames = self.container.decode(stream)
        self.origin, self.size, self.device = origin, size, device
        self.done: dict[int, torch.Tensor] = {}
        self._cur: tuple[int, float, av.VideoFrame] | None = None  # (second, distance, frame)
        self._eof = False

    def _finish(self) -> None:
        if self._cur is not None:
            sec, _, frame = self._cur
            L = luminance_uint8(frame.to_ndarray(format="rgb24")[None], self.device)
            self.done[sec] = model_input(L, self.size)
            self._cur = None

    def get(self, i: int) -> torch.Tensor | None:
        """L_n of second i's key frame, or None when the video has no frame in [i, i + 1)."""
        while i not in self.done and not self._eof:
            try:
                frame = next(self._frames)
            except StopIteration:
                self._eof = True
                self._finish()
                break
            if frame.time is None:
                continue
            t = float(frame.time) - self.origin
            sec = max(0, int(math.floor(t)))
            if self._cur is not None and sec != self._cur[0]:
                self._finish()
            dist = abs(t - (sec + 0.5))
            if self._cur is None or dist < self._cur[1]:
                self._cur = (sec, dist, frame)
            if sec > i:
                break
        for k in [k for k in self.done if k < i - 1]:
            del self.done[k]
        return self.done.get(i)

    def close(self) -> None:
        self.container.close()
