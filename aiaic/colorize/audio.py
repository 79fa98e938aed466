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
from typing import Any

import av
import numpy as np

from aiaic.data.audio import MelConfig
from aiaic.data.pcm import AudioCutter
from aiaic.errors import InputError

log = logging.getLogger(__name__)


def open_first_stream(path: Path, kind: str) -> tuple[av.container.InputContainer, Any]:
    """Open `path` and return (container, its first `kind` stream: "audio" or "video"); InputError naming
    the file when it cannot be opened or has no such stream."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(path, f"cannot open as {'audio/video' if kind == 'audio' else 'video'} ({e})") from e
    streams = container.streams.audio if kind == "audio" else container.streams.video
    if not streams:
        container.close()
        raise InputError(path, f"has no {kind} stream")
    return container, streams[0]


def open_audio(path: Path) -> tuple[av.container.InputContainer, av.audio.stream.AudioStream]:
    """Open `path` and return (container, first audio stream); InputError if unreadable or without audio."""
    return open_first_stream(path, "audio")


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
    [i, i + 1) of the picture's timeline, cut by `aiaic.data.pcm.AudioCutter` as extraction cuts it
    (sample count from the first frame's timestamp; audio missing before the soundtrack starts is
    silence). `second(i)` returns PCM [segment_samples] or None where the audio does not cover that
    second (a final partial second holding at least half a second of audio uses the last full second
    of audio; a shorter tail counts as no audio). Memory holds only the seconds not yet consumed plus
    a few packets.
    """

    def __init__(self, path: Path, origin: float, cfg: MelConfig, keep_packets: bool):
        self.path = Path(path)
        self.cfg = cfg
        self.origin = origin
        self.keep_packets = keep_packets
        self.container, self.stream = open_audio(self.path)
        self._packets = self.container.demux(self.stream)
        # any gap before the soundtrack starts is silence here (extraction rejects > 0.1 s instead)
        self._cutter = AudioCutter(origin, cfg.sample_rate, tolerance=math.inf)
        self._eof = False
        self._draining = False
        self.last_time = -math.inf  # time of the last demuxed packet, seconds from origin
        self.pending: deque[av.Packet] = deque()  # packets decoded but not yet remuxed
        self.decoded_frames: deque[av.AudioFrame] = deque()  # original frames, for re-encoding
        self.keep_frames = False

    # ---- decoding -------------------------------------------------------------------------
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
            if frame is not None and self.keep_frames:
                self.decoded_frames.append(frame)
            if self._draining:  # after the last frame only the packets matter
                continue
            try:
                self._cutter.push(frame)
            except ValueError as e:  # a frame without a timestamp
                raise InputError(self.path, f"audio cannot be placed in time ({e})") from e
        return not self._eof

    def ensure(self, seconds: float) -> None:
        """Decode until audio covers `seconds` from the origin (or the stream ends)."""
        rate = self.cfg.sample_rate
        while not self._eof and (
            self._cutter.anchor is None or self._cutter.end_time() * rate < math.ceil(seconds * rate)
        ):
            self._pump()

    def second(self, i: int) -> np.ndarray | None:
        """PCM of second i (float32 [segment_samples]) or None where there is no audio for it."""
        n = self.cfg.segment_samples
        self.ensure(i + 1 + 1e-9)
        c = self._cutter
        if c.anchor is None:
            return None
        start = c.start_of(i)
        if start + n <= c.total:
            return c.samples(start, n)[0]
        # final partial second (>= 0.5 s of audio, and a whole second decoded): the last window
        if self._eof and c.total - start >= n // 2 and c.total >= c.start_of(0) + n:
            first = max(c.total - n, c.buf_start)
            if c.total - first == n:
                return c.samples(first, n)[0]
        return None

    def release_before(self, i: int) -> None:
        """Forget samples before second i (keeps memory bounded; the last window stays for a final
        partial second)."""
        self._cutter.discard_before(i)

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
