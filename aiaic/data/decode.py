"""Decode one video with PyAV into per-second segments: a frame chosen by pts and that second's audio.

The timeline: time 0 is the video stream's own start time (``start_time``, or
the first frame's pts where the stream has none); every time below is in seconds on that timeline,
for the audio too (audio pts are converted to the same absolute clock).

- Segment i covers [i, i+1) s. A video of duration D (end of its last frame) has floor(D + 0.02)
  segments; shorter than one second -> ``too_short``, never padded.
- Frame: the decoded frame whose presentation time is nearest to i + 0.5 s (ties -> the earlier
  one), taken from the pts (never index x fps, so variable frame rate, B-frames and non-zero start
  times are right), and only if it lies within [i, i+1] s.
- Audio: [i, i+1) s resampled by libswresample to 16 kHz, then the mean of the channels (mono,
  float32 in [-1, 1], as librosa.to_mono), by `aiaic.data.pcm` (shared with colorize).
  **Windows are cut by sample count, anchored by timestamp**: the audio is decoded from the
  stream's first frame, whose pts places output sample 0 on the timeline; output sample n is then
  at anchor + n / 16000 s, whatever later packets' pts say. Real clips (two in mini-vggsound) have
  packet timestamps that jitter by up to ~20 ms while the AAC samples themselves are contiguous;
  cutting by timestamp would insert gaps and overlaps there, cutting by count keeps the signal
  intact and its drift on those clips below one AAC frame. Up to ``AUDIO_EDGE_TOLERANCE`` s missing
  at a window's edge (audio that starts a few ms after the video, or ends a few ms early) is filled
  with zeros and counted in ``audio_padded``; more makes the segment unusable (reported).
- Modes: ``all`` decodes the file once, streaming (memory is bounded by a few frames and two
  seconds of audio, not by the length). ``middle`` keeps segment floor(D) // 2 only: the audio is
  decoded from the start up to the end of that second (cheap, and it keeps the sample-count
  anchoring exact), the video is *seeked* to the keyframe before the second and decoded forward,
  skipping the non-reference frames that lie more than 0.5 s before the wanted time.

Errors that make a file yield nothing raise `DecodeFailure(error_class, message)`; segments that
could not be made are listed in `VideoClip.missing` as (segment, error_class, reason).
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from aiaic.data.pcm import AudioCutter, MissingTimestampError

COVER_EPS = 0.02  # seconds: a video ending at 9.98 s still covers segment 9


class DecodeFailure(Exception):
    """A file yields no segment. `error` is a short class (e.g. 'no_audio_stream'), `message` the reason."""

    def __init__(self, error: str, message: str):
        self.error = error
        self.message = message
        super().__init__(f"{error}: {message}")


@dataclass(frozen=True)
class StreamInfo:
    """Facts about the source: size in pixels, fps (average), duration in s (video, on its timeline),
    audio sample rate in Hz and channel count (0 without audio), origin = video start in absolute s."""

    width: int
    height: int
    fps: float
    duration: float
    has_audio: bool
    sample_rate: int
    channels: int
    origin: float


@dataclass
class Segment:
    """One second: `image` uint8 [H, W, 3] (short side resized), `pcm` float32 [16000] or None.

    `frame_time` is the chosen frame's time in s on the video timeline; `audio_padded` the number of
    16 kHz samples zero-filled at the window's edges.
    """

    index: int
    frame_time: float
    image: np.ndarray
    pcm: np.ndarray | None
    audio_padded: int = 0


def target_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) with the short side = `size` (0 keeps the source size), aspect ratio kept."""
    if size <= 0:
        return width, height
    if width <= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


class _AudioCutter(AudioCutter):
    """`aiaic.data.pcm.AudioCutter` whose missing timestamp is this module's decode_error."""

    def push(self, frame: av.AudioFrame | None) -> None:
        try:
            super().push(frame)
        except MissingTimestampError as e:
            raise DecodeFailure("decode_error", str(e)) from None


class _AudioPuller:
    """The audio side of a one-pass decode: frames pulled as far as second i's window needs, then cut."""

    def __init__(self, frames: Generator[av.AudioFrame, None, None], sample_rate: int):
        self.frames, self.sample_rate = frames, sample_rate
        self.cutter: _AudioCutter | None = None  # made at the first window (the origin is known by then)
        self.error = ""  # "; audio decoding failed: ..." once the audio stream failed

    def window(self, i: int, origin: float) -> tuple[np.ndarray | None, int, str]:
        """(pcm of second i or None, samples padded, why it is None) as `AudioCutter.window`."""
        if self.cutter is None:
            self.cutter = _AudioCutter(origin, self.sample_rate)
        try:
            while not self.cutter.ready(i):
                self.cutter.push(next(self.frames, None))
        except av.FFmpegError as e:
            self.cutter.ended = True
            self.error = f"; audio decoding failed: {e}"
        pcm, padded, why = self.cutter.window(i)
        self.cutter.discard_before(i + 1)
        return pcm, padded, why + (self.error if pcm is None else "")


@dataclass
class _Progress:
    """Where a streaming decode is: next segment to emit, end of the video so far, latest frame time."""

    next: int = 0
    max_end: float = -math.inf
    last_t: float = -math.inf


class VideoClip:
    """An opened video. Use as a context manager; `segments(mode, size)` yields `Segment`s.

    Raises `DecodeFailure` on open for: empty_file, unreadable, no_video_stream, no_audio_stream
    (unless `allow_missing_audio`).
    """

    def __init__(self, path: str, *, allow_missing_audio: bool = False, sample_rate: int = 16000):
        self.path = path
        self.sample_rate = sample_rate
        self.missing: list[tuple[int, str, str]] = []
        if os.path.getsize(path) == 0:
            raise DecodeFailure("empty_file", "file is empty (0 bytes)")
        try:
            self.container = av.open(path, metadata_errors="ignore")
        except av.FFmpegError as e:
            raise DecodeFailure("unreadable", f"cannot open as a media file: {e}") from None
        try:
            self._init_streams(allow_missing_audio)
        except BaseException:
            self.container.close()
            raise

    def _init_streams(self, allow_missing_audio: bool) -> None:
        c = self.container
        vs = [s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        if not vs:
            raise DecodeFailure("no_video_stream", "the file has no video stream")
        self.vstream = v = vs[0]
        self.astream = c.streams.audio[0] if c.streams.audio else None
        if self.astream is None and not allow_missing_audio:
            raise DecodeFailure("no_audio_stream", "the file has no audio stream (use --allow-missing-audio)")
        v.thread_type = "AUTO"
        v.thread_count = 1
        tb = v.time_base or Fraction(1, 1)
        self.vtb = tb
        self.origin: float | None = float(v.start_time * tb) if v.start_time is not None else None
        # only the stream's own duration is trusted: containers differ on whether theirs includes the start
        meta = float(v.duration * tb) if v.duration else None
        self.meta_duration = meta
        # the container's end (absolute s), for spotting truncated files only; formats disagree on
        # whether their duration includes the start time, so the earlier reading is taken
        self.container_end = None
        if c.duration:
            d = c.duration / av.time_base
            self.container_end = min(d, d + (c.start_time or 0) / av.time_base)
        rate = v.average_rate or v.guessed_rate
        self.fps = float(rate) if rate else 0.0
        a = self.astream
        self.info = StreamInfo(
            width=v.codec_context.width,
            height=v.codec_context.height,
            fps=self.fps,
            duration=meta if meta is not None else float("nan"),
            has_audio=a is not None,
            sample_rate=int(a.rate or 0) if a else 0,
            channels=int(a.channels or 0) if a else 0,
            origin=self.origin if self.origin is not None else float("nan"),
        )

    def __enter__(self) -> VideoClip:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    # -- helpers -------------------------------------------------------------------------------
    def _frame_time(self, frame: av.VideoFrame, prev: float | None) -> float:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            step = 1.0 / self.fps if self.fps else 0.0
            t_abs = (prev + (self.origin or 0.0) + step) if prev is not None else (self.origin or 0.0)
        else:
            t_abs = float(pts * self.vtb)
        if self.origin is None:
            self.origin = t_abs
        return t_abs - self.origin

    def _frame_dur(self, frame: av.VideoFrame) -> float:
        if frame.duration:
            return float(frame.duration * self.vtb)
        return 1.0 / self.fps if self.fps else 0.0

    def _image(self, frame: av.VideoFrame, size: int) -> np.ndarray:
        w, h = target_size(frame.width, frame.height, size)
        out = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA")
        return out.to_ndarray()

    def _update_info(self, duration: float) -> None:
        i = self.info
        self.info = StreamInfo(
            i.width,
            i.height,
            i.fps,
            duration,
            i.has_audio,
            i.sample_rate,
            i.channels,
            self.origin if self.origin is not None else 0.0,
        )

    # -- modes ---------------------------------------------------------------------------------
    def probe_duration(self) -> float | None:
        """The video's duration in s from the packets of its last GOP (demuxed, not decoded).

        Used where the stream states no duration (Matroska/WebM): a second handle on the file seeks to
        the last keyframe and takes the end of the latest packet (the main handle is not moved, so the
        audio is still read from its start). None where that fails.
        """
        if self.origin is None:
            return None
        end = None
        try:
            with av.open(self.path, metadata_errors="ignore") as c:
                v = c.streams[self.vstream.index]
                c.seek(2**62, stream=v, backward=True)
                for packet in c.demux(v):
                    if packet.pts is None:
                        continue
                    e = float((packet.pts + (packet.duration or 0)) * self.vtb)
                    end = e if end is None else max(end, e)
        except av.FFmpegError:
            return None
        return None if end is None else end - self.origin

    def segments(self, mode: str, size: int) -> Iterator[Segment]:
        """Yield the segments of `mode` ('all' or 'middle'); see the module docstring."""
        if mode == "middle" and self.meta_duration is None and self.origin is not None:
            self.meta_duration = self.probe_duration()
        if mode == "middle" and self.meta_duration is not None and self.origin is not None:
            yield from self._middle(size)
        elif mode in ("all", "middle"):
            yield from self._all(size, only_middle=(mode == "middle"))
        else:
            raise ValueError(f"mode {mode!r} is not 'all' or 'middle'")

    def _audio_frames(self) -> Generator[av.AudioFrame, None, None]:
        """The audio stream's frames from its start, through a second handle on the file: audio is
        pulled as far as each window needs, whatever the interleaving of the file (audio muxed
        seconds after its video, or all at the end, costs no memory)."""
        assert self.astream is not None
        with av.open(self.path, metadata_errors="ignore") as c:
            for packet in c.demux(c.streams[self.astream.index]):
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):
                        yield frame

    def _all(self, size: int, only_middle: bool = False) -> Iterator[Segment]:
        """One pass over the video; audio pulled on demand from `_audio_frames`."""
        v = self.vstream
        best: dict[int, tuple[float, float, av.VideoFrame]] = {}
        state = _Progress()
        decode_error = None
        collected: list[Segment] = []
        audio = _AudioPuller(self._audio_frames(), self.sample_rate) if self.astream is not None else None

        def emit(final: bool) -> Iterator[Segment]:
            while True:
                i = state.next
                if state.max_end < i + 1 - COVER_EPS:  # the video does not (yet) cover second i
                    return
                if not final and state.last_t < i + 0.5:  # a later frame could still be nearer
                    return
                state.next = i + 1
                cand = best.pop(i, None)
                if cand is None:
                    self.missing.append((i, "video_gap", f"no video frame within 0.5 s of {i + 0.5:.1f} s"))
                    continue
                pcm, padded = None, 0
                if audio is not None:
                    assert self.origin is not None
                    pcm, padded, why = audio.window(i, self.origin)
                    if pcm is None:
                        self.missing.append((i, "audio_gap", why))
                        continue
                seg = Segment(i, cand[1], self._image(cand[2], size), pcm, padded)
                if only_middle:
                    collected.append(seg)
                else:
                    yield seg

        try:
            try:
                for packet in self.container.demux(v):
                    for frame in packet.decode():
                        if isinstance(frame, av.VideoFrame):
                            self._consider(frame, state, best)
                    yield from emit(final=False)
            except av.FFmpegError as e:
                decode_error = f"decoding stopped at {max(state.last_t, 0):.2f} s: {e}"
            yield from emit(final=True)
        finally:
            if audio is not None:
                audio.frames.close()
        n = self._finish(state, decode_error)
        if only_middle:
            m = n // 2
            self.missing = [x for x in self.missing if x[0] == m or x[1] in ("decode_error", "truncated")]
            yield from (seg for seg in collected if seg.index == m)

    def _consider(self, frame: av.VideoFrame, state: _Progress,
                  best: dict[int, tuple[float, float, av.VideoFrame]]) -> None:  # fmt: skip
        """Advance `state` past `frame`; keep it as the frame of each second whose centre it is nearest."""
        t = self._frame_time(frame, state.last_t if state.last_t > -math.inf else None)
        state.last_t = max(state.last_t, t)
        state.max_end = max(state.max_end, t + self._frame_dur(frame))
        base = math.floor(t - 0.5)
        for i in (base, base + 1):
            d = abs(t - (i + 0.5))
            if i >= state.next and d <= 0.5 + 1e-9 and (i not in best or d < best[i][0] - 1e-9):
                best[i] = (d, t, frame)

    def _finish(self, state: _Progress, decode_error: str | None) -> int:
        """After the last frame: record the duration and a decode error or truncation; the whole seconds.

        Raises DecodeFailure when no segment at all can be made (decode_error before any, too_short).
        """
        duration = state.max_end if state.max_end > -math.inf else 0.0
        self._update_info(duration)
        n = math.floor(duration + COVER_EPS)
        if decode_error is not None:
            if state.next == 0 and not self.missing:
                raise DecodeFailure("decode_error", decode_error)
            self.missing.append((state.next, "decode_error", decode_error))
        else:
            expected = self.meta_duration
            if expected is None and self.container_end is not None and self.origin is not None:
                expected = self.container_end - self.origin
            if expected is not None and duration < expected - 1.0:
                self.missing.append(
                    (n, "truncated", f"decoded {duration:.2f} s of a {expected:.2f} s stream")
                )
        if n == 0 and decode_error is None:
            raise DecodeFailure("too_short", f"video is {duration:.3f} s long; a segment needs 1 s")
        return n

    def _middle(self, size: int) -> Iterator[Segment]:
        assert self.meta_duration is not None and self.origin is not None
        n = math.floor(self.meta_duration + COVER_EPS)
        if n < 1:
            raise DecodeFailure("too_short", f"video is {self.meta_duration:.3f} s long; a segment needs 1 s")
        m = n // 2
        c, _v, a = self.container, self.vstream, self.astream
        pcm, padded = None, 0
        try:
            if a is not None:
                cutter = _AudioCutter(self.origin, self.sample_rate)
                for packet in c.demux(a):
                    for frame in packet.decode():
                        cutter.push(frame)
                    if cutter.anchor is not None:
                        cutter.discard_before(m)
                        if cutter.ready(m):
                            break
                else:
                    cutter.push(None)
                pcm, padded, why = cutter.window(m)
                if pcm is None:
                    raise DecodeFailure("audio_gap", f"segment {m}: {why}")
            chosen = self._seek_frame(m)
        except av.FFmpegError as e:
            raise DecodeFailure("decode_error", f"segment {m}: {e}") from None
        if chosen is None:
            raise DecodeFailure(
                "truncated",
                f"no video frame within 0.5 s of {m + 0.5:.1f} s (stream said {self.meta_duration:.2f} s)",
            )
        t, vframe = chosen
        self._update_info(self.meta_duration)
        yield Segment(m, t, self._image(vframe, size), pcm, padded)

    def _seek_frame(self, m: int) -> tuple[float, av.VideoFrame] | None:
        """Nearest frame to m + 0.5 s: seek to the keyframe before it and decode forward.

        A packet whose presentation time is more than 0.5 s before the wanted time cannot hold the
        answer, so non-reference frames among those are not decoded at all (decided per packet, from
        its pts, before decoding: the decoder's reordering delay does not matter). If the seek lands
        after the wanted time (a poor index), decoding restarts from the stream's start.
        """
        c, v = self.container, self.vstream
        assert self.origin is not None
        want = m + 0.5
        skip_before = want - 0.5 - 1e-3
        ctx = v.codec_context
        for attempt in range(2):
            seek_to = want if attempt == 0 else -1.0
            c.seek(max(0, int(math.floor((self.origin + seek_to) / self.vtb))), stream=v, backward=True)
            best: tuple[float, float, av.VideoFrame] | None = None
            first, overshoot, prev = True, False, None
            try:
                for packet in c.demux(v):
                    early = (
                        packet.pts is not None and float(packet.pts * self.vtb) - self.origin < skip_before
                    )
                    ctx.skip_frame = "NONREF" if early else "DEFAULT"
                    done = False
                    for frame in packet.decode():
                        t = self._frame_time(frame, prev)
                        prev = t
                        if first and attempt == 0 and t > want + 1e-9:
                            overshoot = done = True
                            break
                        first = False
                        d = abs(t - want)
                        if d <= 0.5 + 1e-9 and (best is None or d < best[0] - 1e-9):
                            best = (d, t, frame)
                        if t >= want:
                            done = True
                            break
                    if done:
                        break
            finally:
                ctx.skip_frame = "DEFAULT"
            if best is not None and not overshoot:
                return best[1], best[2]
        return None
