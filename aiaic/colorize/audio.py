"""Audio for colorize: a one-second window from any file PyAV reads; a video's soundtrack second by second.

All audio is decoded with PyAV from the first audio stream and turned into `MelConfig.sample_rate`
(16 kHz) mono float32 in [-1, 1] by `aiaic.data.pcm`, the path extraction uses (the channel mean, so a
stereo file whose two channels are equal gives exactly its mono twin, as in training). Windows are cut
by sample count from the time of the first decoded audio frame (its presentation time anchors sample
0), so irregular packet timestamps inside a stream do not shift later seconds; a video's soundtrack
starting after (before) the picture's origin is padded with (trimmed by) that many samples of silence.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from aiaic.data.audio import MelConfig
from aiaic.data.pcm import AudioCutter, mono_resampler, to_mono
from aiaic.errors import InputError

log = logging.getLogger(__name__)


def open_audio(path: Path) -> tuple[av.container.InputContainer, av.audio.stream.AudioStream]:
    """Open `path` and return (container, first audio stream); InputError if unreadable or without audio."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(path, f"cannot open as audio/video ({e})") from e
    if not container.streams.audio:
        container.close()
        raise InputError(path, "has no audio stream")
    return container, container.streams.audio[0]


def read_audio_window(path: Path, start: float | None, cfg: MelConfig) -> tuple[np.ndarray, float]:
    """One `cfg.segment_seconds` window of mono PCM [cfg.segment_samples] at `cfg.sample_rate` Hz.

    start: seconds from the stream's first sample; None takes the window from the middle of the audio.
    Returns (pcm, start used). Raises InputError for a file without audio, audio shorter than the
    window, or a start that leaves less than one window.
    """
    path = Path(path)
    need = cfg.segment_samples
    rate = cfg.sample_rate
    container, stream = open_audio(path)
    cutter = AudioCutter(None, rate)  # sample 0 = the first decoded sample
    stop_at = None if start is None else int(round(start * rate)) + need
    try:
        for frame in container.decode(stream):
            cutter.push(frame)
            if stop_at is not None and cutter.total >= stop_at:
                break
        else:
            cutter.push(None)
    except av.error.FFmpegError as e:
        raise InputError(path, f"audio cannot be decoded ({e})") from e
    except ValueError as e:  # a frame without a timestamp
        raise InputError(path, f"audio cannot be placed in time ({e})") from e
    finally:
        container.close()
    n_samples = cutter.total
    total = n_samples / rate
    if n_samples < need:
        raise InputError(
            path, f"audio is {total:.2f} s long, shorter than the {cfg.segment_seconds:g} s window"
        )
    if start is None:
        first = (n_samples - need) // 2
    else:
        if start < 0:
            raise InputError(path, f"--audio-start {start} is negative")
        first = int(round(start * rate))
        if first + need > n_samples:
            raise InputError(
                path,
                f"--audio-start {start:g} s leaves less than {cfg.segment_seconds:g} s "
                f"(audio is {total:.2f} s)",
            )
    return cutter.samples(first, need)[0], first / rate


class Soundtrack:
    """A video's own audio, decoded lazily one second at a time, its packets kept for remuxing.

    Times are seconds from `origin` (the video stream's start time), so second i is
    [i, i + 1) of the picture's timeline. `second(i)` returns PCM [segment_samples] or None where
    the audio does not cover that second (a final partial second holding at least half a
    second of audio uses the last full second of audio; a shorter tail counts as no audio).
    Memory holds only the seconds not yet consumed plus a few packets.
    """

    def __init__(self, path: Path, origin: float, cfg: MelConfig, keep_packets: bool):
        self.path = Path(path)
        self.cfg = cfg
        self.origin = origin
        self.keep_packets = keep_packets
        self.container, self.stream = open_audio(self.path)
        self._packets = self.container.demux(self.stream)
        self._resampler = mono_resampler(cfg.sample_rate)
        self._buf: deque[np.ndarray] = deque()
        self._buf_start = 0  # global sample index of the first buffered sample
        self._buf_len = 0
        self._anchor: int | None = None  # samples to drop (>0) or pad (<0) before sample 0
        self._eof = False
        self._draining = False
        self.last_time = -math.inf  # time of the last demuxed packet, seconds from origin
        self.pending: deque[av.Packet] = deque()  # packets decoded but not yet remuxed
        self.decoded_frames: deque[av.AudioFrame] = deque()  # original frames, for re-encoding
        self.keep_frames = False

    # ---- decoding -------------------------------------------------------------------------
    def _push(self, samples: np.ndarray) -> None:
        if self._draining:  # after the last frame only the packets matter
            return
        if self._anchor is not None and self._anchor > 0:  # audio starts before origin: drop
            drop = min(self._anchor, samples.size)
            samples = samples[drop:]
            self._anchor -= drop
        if samples.size:
            self._buf.append(samples)
            self._buf_len += samples.size

    def _pump(self) -> bool:
        """Demux and decode one packet; False at end of stream."""
        if self._eof:
            return False
        try:
            packet = next(self._packets)
        except StopIteration:
            packet = None
        except av.error.FFmpegError as e:
            raise InputError(self.path, f"audio cannot be demuxed ({e})") from e
        frames: list = []
        if packet is None:
            self._eof = True
            frames = [None]  # flush the resampler
        else:
            try:
                frames = list(packet.decode())  # an empty packet at the end flushes the decoder
            except av.error.InvalidDataError as e:  # a damaged packet: keep going, say so
                log.warning("%s: skipping an undecodable audio packet (%s)", self.path, e)
            if self.keep_packets and packet.size > 0:
                self.pending.append(packet)
            if packet.pts is not None and packet.time_base is not None:
                self.last_time = float(packet.pts * packet.time_base) - self.origin
        for frame in frames:
            if frame is not None and self._anchor is None:
                t0 = float(frame.time) if frame.time is not None else 0.0
                shift = int(round((t0 - self.origin) * self.cfg.sample_rate))
                self._anchor = -shift  # >0: drop that many; <0: pad with silence
                if shift > 0:
                    self._buf.append(np.zeros(shift, np.float32))
                    self._buf_len += shift
            if frame is not None and self.keep_frames:
                self.decoded_frames.append(frame)
            for s in to_mono(self._resampler, frame):
                self._push(s)
        return not self._eof

    def ensure(self, seconds: float) -> None:
        """Decode until audio covers `seconds` from the origin (or the stream ends)."""
        want = int(math.ceil(seconds * self.cfg.sample_rate))
        while not self._eof and self._buf_start + self._buf_len < want:
            self._pump()

    def _slice(self, first: int, n: int) -> np.ndarray:
        out = np.empty(n, np.float32)
        pos = self._buf_start
        filled = 0
        for chunk in self._buf:
            lo = max(first, pos)
            hi = min(first + n, pos + chunk.size)
            if hi > lo:
                out[lo - first : hi - first] = chunk[lo - pos : hi - pos]
                filled += hi - lo
            pos += chunk.size
        if filled != n:
            raise RuntimeError(f"internal: audio window [{first}, {first + n}) not buffered")
        return out

    def second(self, i: int) -> np.ndarray | None:
        """PCM of second i (float32 [segment_samples]) or None where there is no audio for it."""
        n = self.cfg.segment_samples
        self.ensure(i + 1 + 1e-9)
        end = self._buf_start + self._buf_len
        first = i * n
        if first + n <= end and first >= self._buf_start:
            return self._slice(first, n)
        if self._eof and end - first >= n // 2 and end >= n:  # final partial second (>= 0.5 s): last window
            first = max(end - n, self._buf_start)
            if end - first == n:
                return self._slice(first, n)
        return None

    def release_before(self, i: int) -> None:
        """Forget samples before second i (keeps memory bounded)."""
        keep_from = i * self.cfg.segment_samples
        while self._buf and self._buf_start + self._buf[0].size <= keep_from:
            if self._eof and self._buf_len - self._buf[0].size < self.cfg.segment_samples:
                break  # keep one window for the final partial second
            self._buf_len -= self._buf[0].size
            self._buf_start += self._buf.popleft().size

    def drain(self) -> Iterator[None]:
        """Demux to the end (to mux the remaining packets after the last frame); PCM is no longer kept."""
        self._draining = True
        while self._pump():
            yield None

    def close(self) -> None:
        self.container.close()


def is_silent(pcm: np.ndarray, silence_db: float) -> bool:
    """True when the RMS level of `pcm` is below `silence_db` dBFS (full scale = 1.0)."""
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    return rms <= 10.0 ** (silence_db / 20.0)
