"""16 kHz mono PCM from a PyAV audio stream: the one downmix and the one window cutter, shared by
extraction (`aiaic.data.decode`) and colorize (`aiaic.colorize.audio`).

- **Downmix**: libswresample resamples every channel to the target rate (planar float), then the
  channels are averaged (float32, as `librosa.to_mono`). libswresample's own mono downmix sums a
  stereo pair at -3 dB each, so two equal channels would come out 3 dB louder (x 1.41) than their
  mono twin; the mean gives exactly the mono twin.
- **Windows are cut by sample count, anchored by timestamp**: the first decoded frame's time places
  output sample 0 on the timeline; output sample n is then at anchor + n / rate s, whatever later
  packets' timestamps say (real clips have packet timestamps that jitter by ~20 ms while their samples
  are contiguous). Up to `tolerance` s missing at a window's edge is zero-filled and counted.
"""

from __future__ import annotations

import av
import numpy as np

AUDIO_EDGE_TOLERANCE = 0.1  # seconds of audio that may be missing at a window's edge (zero-filled)


class MissingTimestampError(ValueError):
    """The first audio frame has no timestamp, so the window cannot be placed on the timeline."""


def mono_resampler(rate: int) -> av.AudioResampler:
    """A resampler to `rate` Hz that keeps the channels (planar float32); average them with `to_mono`."""
    return av.AudioResampler(format="fltp", rate=rate)


def to_mono(resampler: av.AudioResampler, frame: av.AudioFrame | None) -> list[np.ndarray]:
    """Resample one decoded frame (None flushes) -> float32 mono chunks [samples], the channel mean."""
    out = []
    for f in resampler.resample(frame):
        a = f.to_ndarray().mean(axis=0, dtype=np.float32)
        if a.size:
            out.append(a)
    return out


class AudioCutter:
    """Resamples an audio stream to `rate` Hz mono and hands out windows by sample count.

    `origin`: the timeline time (s, on the stream's clock) of second 0; None puts second 0 at the first
    decoded frame. Feed decoded frames with `push` (None at the end of the stream).
    """

    def __init__(self, origin: float | None, rate: int, tolerance: float = AUDIO_EDGE_TOLERANCE):
        self.origin = origin
        self.rate = rate
        self.tolerance = tolerance
        self.resampler = mono_resampler(rate)
        self.anchor: float | None = None  # timeline time of output sample 0
        self.chunks: list[np.ndarray] = []
        self.buf_start = 0  # output index of the first buffered sample
        self.buffered = 0
        self.ended = False

    @property
    def total(self) -> int:
        """Output samples so far (including discarded ones)."""
        return self.buf_start + self.buffered

    def push(self, frame: av.AudioFrame | None) -> None:
        if frame is None:
            outs = to_mono(self.resampler, None)
            self.ended = True
        else:
            if self.anchor is None:
                if frame.pts is None or frame.time_base is None:
                    raise MissingTimestampError("audio frame without a timestamp")
                t0 = float(frame.pts * frame.time_base)
                self.anchor = 0.0 if self.origin is None else t0 - self.origin
            outs = to_mono(self.resampler, frame)
        for a in outs:
            self.chunks.append(a)
            self.buffered += a.size

    def end_time(self) -> float:
        return (self.anchor or 0.0) + self.total / self.rate

    def start_of(self, i: int) -> int:
        """Output sample index where second i of the timeline starts."""
        return round((i - (self.anchor or 0.0)) * self.rate)

    def _bounds(self, i: int) -> tuple[int, int]:
        start = self.start_of(i)
        return start, start + self.rate

    def ready(self, i: int) -> bool:
        """Window i ([i, i+1) s) can be cut now: its samples are here, or the audio has ended."""
        return self.ended or (self.anchor is not None and self.total >= self._bounds(i)[1])

    def window(self, i: int) -> tuple[np.ndarray | None, int, str]:
        """Second i: (pcm [rate] float32 in [-1, 1], zero-filled samples, '') or (None, 0, reason)
        when more than `tolerance` s is missing at an edge."""
        if self.anchor is None:
            return None, 0, "the audio stream decoded to no samples"
        start, end = self._bounds(i)
        tol = int(self.tolerance * self.rate)
        if start < 0 and -start > tol:
            return None, 0, f"audio starts at {self.anchor:.3f} s"
        if end > self.total and (end - self.total > tol or not self.ended):
            return None, 0, f"audio ends at {self.end_time():.3f} s"
        return self.samples(start, end - start)

    def samples(self, start: int, n: int) -> tuple[np.ndarray, int, str]:
        """Output samples [start, start + n) clipped to [-1, 1], zeros outside the decoded audio:
        (pcm [n] float32, zero-filled samples, '')."""
        if max(start, 0) < self.buf_start:
            raise RuntimeError(f"audio samples from {start} were already discarded")
        buf = self._joined()
        lo, hi = max(start, 0), min(start + n, self.total)
        pcm = np.zeros(n, dtype=np.float32)
        if hi > lo:
            pcm[lo - start : hi - start] = buf[lo - self.buf_start : hi - self.buf_start]
        return np.clip(pcm, -1.0, 1.0), n - max(0, hi - lo), ""

    def _joined(self) -> np.ndarray:
        """The buffered samples as one array, kept as the only chunk (no copy when it already is)."""
        buf = np.concatenate(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks = [buf] if buf.size else []
        return buf

    def discard_before(self, i: int) -> None:
        """Drop buffered samples that no window >= i needs (keeps memory at about one second)."""
        if self.anchor is None or not self.chunks:
            return
        keep_from = max(self._bounds(i)[0], self.buf_start)
        drop = keep_from - self.buf_start
        if drop <= 0:
            return
        buf = self._joined()
        drop = min(drop, buf.size)
        self.chunks = [buf[drop:]] if buf.size > drop else []
        self.buf_start += drop
        self.buffered -= drop
