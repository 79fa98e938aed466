"""Colorize a video frame by frame, guided second by second by its own soundtrack, keeping that soundtrack.

    frames (PyAV decode, streamed in batches)  ->  L -> model -> ab -> joined with the frame's own L
    soundtrack (decoded lazily)                ->  second i's log-mel -> guidance for frames in [i, i+1)
    output: H.264, the input's size, frame count, timestamps (so frame rate and length), and the
            original audio packets remuxed unchanged (re-encoded to AAC only where the container
            refuses the codec; the result says which).

Times are seconds from the video stream's start. A frame at time t belongs to second floor(t).
Second i's guidance (c_i, r_i) comes from its audio and its key frame (the frame nearest i + 0.5 s,
the pairing the model was trained on) through `InferenceModel.guidance`, once per second. Near a
second boundary k (|t - k| < smooth_seconds / 2) a frame's guidance is the linear mix of seconds
k-1 and k, so colours do not jump from one second to the next. Seconds that are silent
(RMS <= silence_db) or have no audio have r = 0 (the backbone alone).
With `temporal="stable"` (the default) the guidance is interpolated linearly between second centres
and each frame's ab is stabilised along the optical flow, reset at shot cuts (`aiaic.colorize.temporal`).
Memory holds one batch of frames, a few seconds of audio and the encoder's own buffers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from aiaic.colorize.audio import Soundtrack
from aiaic.colorize.config import ColorizeConfig
from aiaic.colorize.guided import AudioInput, colorize_guided, no_guidance
from aiaic.colorize.keyframes import KeyFrames, open_video
from aiaic.colorize.prefetch import prefetch
from aiaic.colorize.seconds import SecondGuide, frame_weights, mix_guidance
from aiaic.colorize.strips import frame_batch
from aiaic.colorize.temporal import Stabiliser, colorize_guided_stable
from aiaic.errors import InputError

log = logging.getLogger(__name__)

MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"})  # audio MP4 players take


@dataclass
class VideoResult:
    """What one video colorize produced (written into the summary)."""

    source: str
    output: str
    frames: int
    width: int
    height: int
    fps: float
    duration: float  # seconds, last frame end - first frame start
    audio: str  # "copied (<codec>)", "re-encoded to aac (<reason>)", "none (...)"
    guided_seconds: int
    silent_seconds: int
    unguided_seconds: int
    mean_r: float
    frames_per_second: float
    r_per_second: list[float] = field(default_factory=list)  # r of second i (0 where unguided)
    temporal: str = "none"  # "stable": ab stabilised over time (aiaic.colorize.temporal)
    shot_cuts: list[int] = field(default_factory=list)  # frames that start a shot (stable mode only)

    def to_dict(self) -> dict:
        return asdict(self)


def audio_codec_name(stream) -> str:
    """The codec's canonical name ("mp3", not the decoder's "mp3float")."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def output_suffix(src: Path) -> str:
    """ ".mp4", or ".mkv" where the input's audio codec is not one MP4 players expect (e.g. Vorbis,
    PCM), so the soundtrack can be copied unchanged into a file that plays. An input that cannot
    be probed gets ".mp4" (colorizing it reports the real error)."""
    try:
        with av.open(str(src)) as c:
            if not c.streams.audio:
                return ".mp4"
            return ".mp4" if audio_codec_name(c.streams.audio[0]) in MP4_AUDIO else ".mkv"
    except (av.error.FFmpegError, OSError):
        return ".mp4"


def _rate(stream) -> Fraction:
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r:
            return Fraction(r)
    return Fraction(25, 1)


def _open_output(dst: Path, in_v, in_a, cfg: ColorizeConfig, copy_audio: bool):
    """Open `dst` with an H.264 stream like `in_v` and an audio stream (copied, or AAC); header written."""
    oc = av.open(str(dst), "w")
    width, height = in_v.codec_context.width, in_v.codec_context.height
    ov = oc.add_stream("libx264", rate=_rate(in_v))
    ov.width, ov.height = width, height
    ov.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    ov.time_base = in_v.time_base
    ov.codec_context.time_base = in_v.time_base
    ov.options = {"crf": str(cfg.crf), "preset": cfg.preset}
    oa = None
    try:
        if in_a is not None:
            if copy_audio:
                oa = oc.add_stream_from_template(in_a)
            else:
                layout = "mono" if in_a.layout.nb_channels == 1 else "stereo"
                oa = oc.add_stream("aac", rate=in_a.rate, layout=layout)
        oc.start_encoding()
    except (av.error.FFmpegError, ValueError):
        oc.close()
        raise
    return oc, ov, oa


def colorize_video(
    src: Path,
    dst: Path,
    model,
    cfg: ColorizeConfig,
    device: torch.device,
    fixed: AudioInput | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> VideoResult:
    """Colorize `src` into `dst` (see the module docstring).

    `fixed`: one guidance for every second (`run.colorize` builds it once from --audio or --no-audio);
    None uses the video's own soundtrack, or no audio at all when `cfg.no_audio` is set.
    """
    src, dst = Path(src), Path(dst)
    with contextlib.ExitStack() as stack:
        ic, in_v = open_video(src)
        stack.callback(ic.close)
        return _colorize_open_video(src, dst, ic, in_v, model, cfg, device, fixed, on_frames, stack)


@dataclass(frozen=True)
class _Timeline:
    """Facts of the input read once (stream objects must not be touched after the container closes)."""

    width: int
    height: int
    rate: Fraction
    tb: Fraction
    origin: float  # seconds: the video stream's start time
    last_second: int | None  # the last whole second that has frames (None: unknown length)
    audio_codec: str | None


def _timeline(ic: av.container.InputContainer, in_v, in_a, cfg: ColorizeConfig) -> _Timeline:
    tb = in_v.time_base or Fraction(1, 90000)
    origin = float(in_v.start_time * tb) if in_v.start_time is not None else 0.0
    if in_v.duration:
        video_end = float(in_v.duration * tb)
    elif ic.duration:
        video_end = ic.duration / 1e6
    else:
        video_end = None
    if cfg.max_seconds is not None:
        video_end = cfg.max_seconds if video_end is None else min(video_end, cfg.max_seconds)
    return _Timeline(
        width=in_v.codec_context.width,
        height=in_v.codec_context.height,
        rate=_rate(in_v),
        tb=tb,
        origin=origin,
        last_second=None if video_end is None else max(0, math.ceil(video_end - 1e-6) - 1),
        audio_codec=audio_codec_name(in_a) if in_a is not None else None,
    )


def _second_guide(
    src: Path,
    in_a,
    line: _Timeline,
    model,
    cfg: ColorizeConfig,
    device: torch.device,
    fixed: AudioInput | None,
    stack: contextlib.ExitStack,
) -> tuple[Soundtrack | None, SecondGuide]:
    """The soundtrack reader (None without audio) and the per-second guidance."""
    soundtrack = None
    if in_a is not None:
        soundtrack = Soundtrack(src, line.origin, model.mel_config, keep_packets=True)
    if soundtrack is not None:
        stack.callback(soundtrack.close)
    if fixed is None and cfg.no_audio:
        fixed = no_guidance(model, "disabled")
    if cfg.no_audio:
        log.info("%s: --no-audio: the visual backbone alone colours it (r = 0); its audio is still kept", src)
    elif fixed is None and soundtrack is None:
        log.info("%s has no audio stream: the visual backbone alone colours it (r = 0)", src)
    keys = KeyFrames(src, line.origin, model.image_size, device)
    stack.callback(keys.close)
    guide = SecondGuide(model, None if fixed is not None else soundtrack, fixed, keys, cfg, device)
    return soundtrack, guide


def _output_with_audio(
    dst: Path, in_v, in_a, cfg: ColorizeConfig, line: _Timeline, soundtrack: Soundtrack | None
):
    """(container, video stream, audio stream or None, audio mode): the soundtrack copied where the
    container takes its codec, else re-encoded to AAC (then the soundtrack keeps decoded frames)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        oc, ov, oa = _open_output(dst, in_v, in_a, cfg, copy_audio=True)
    except (av.error.FFmpegError, ValueError) as e:
        if in_a is None:
            raise InputError(dst, f"cannot write video output ({e})") from e
        dst.unlink(missing_ok=True)
        try:
            oc, ov, oa = _open_output(dst, in_v, in_a, cfg, copy_audio=False)
        except (av.error.FFmpegError, ValueError) as e2:
            raise InputError(dst, f"cannot write video output ({e2})") from e2
        mode = f"re-encoded to aac ({line.audio_codec} cannot be copied into {dst.suffix}: {e})"
        log.warning("%s: audio %s", dst, mode)
        soundtrack.keep_frames = True  # type: ignore[union-attr]
        return oc, ov, oa, mode
    mode = f"copied ({line.audio_codec})" if oa is not None else "none (the input has no audio stream)"
    return oc, ov, oa, mode


class _FrameWriter:
    """Colours batches of decoded frames with their time-smoothed guidance, encodes them at their
    own pts and muxes the soundtrack alongside; counts frames and the r they got."""

    def __init__(
        self,
        model,
        cfg: ColorizeConfig,
        device: torch.device,
        line: _Timeline,
        guide: SecondGuide,
        soundtrack: Soundtrack | None,
        output: tuple,
        copy_audio: bool,
    ):
        self.model, self.cfg, self.device, self.line, self.guide = model, cfg, device, line, guide
        self.soundtrack = soundtrack
        self.oc, self.ov, self.oa = output
        self.copy_audio = copy_audio
        self.frames_done, self.r_sum = 0, 0.0
        self.last_pts: int | None = None
        self.stabiliser = Stabiliser() if cfg.temporal == "stable" else None
        # stable: guidance interpolated linearly between second centres (continuous inside a shot)
        self.smooth = 1.0 if self.stabiliser is not None else cfg.smooth_seconds

    def mux_audio(self, limit: float | None) -> None:
        """Mux the soundtrack read so far (packets or frames starting before `limit` seconds)."""
        st, origin = self.soundtrack, self.line.origin
        if st is None:
            return
        if self.copy_audio:
            while st.pending:
                p = st.pending.popleft()
                if limit is not None and p.pts is not None and float(p.pts * p.time_base) - origin >= limit:
                    continue
                p.stream = self.oa
                self.oc.mux(p)
        else:
            st.pending.clear()
            while st.decoded_frames:
                f = st.decoded_frames.popleft()
                if limit is not None and f.time is not None and f.time - origin >= limit:
                    continue
                f.pts = None
                self.oc.mux(self.oa.encode(f))

    def _guidance(self, times: list[float]) -> tuple[torch.Tensor | None, np.ndarray]:
        """(c [B, cond_dim] or None, r [B]) of frames at `times`; frames without guidance get c = 0 and
        r = 0, which DSG turns into the backbone alone."""
        mixes = [
            mix_guidance(frame_weights(t, self.smooth, self.line.last_second), self.guide) for t in times
        ]
        r = np.array([m[1] for m in mixes], dtype=np.float64)
        if all(m[0] is None for m in mixes):
            return None, r
        dim = next(m[0] for m in mixes if m[0] is not None).shape[-1]
        zeros = torch.zeros(dim, device=self.device)
        return torch.stack([m[0] if m[0] is not None else zeros for m in mixes]), r

    def _next_pts(self, pts: int | None) -> int:
        last = self.last_pts
        if pts is None or (last is not None and pts <= last):
            pts = 0 if last is None else last + max(1, int(round(1 / (self.line.rate * self.line.tb))))
        self.last_pts = pts
        return pts

    def write(self, batch: list[tuple[av.VideoFrame, float]]) -> None:
        """Colour, encode and mux one batch of (frame, seconds from the stream's start)."""
        if not batch:
            return
        rgbs = np.stack([f.to_ndarray(format="rgb24") for f, _ in batch])
        if self.soundtrack is not None:
            self.soundtrack.ensure(batch[-1][1] + 2.0)  # decode audio a little ahead for muxing
        c, r = self._guidance([t for _, t in batch])
        r_t = torch.tensor(r, dtype=torch.float32)
        if self.stabiliser is not None:
            out = colorize_guided_stable(self.model, rgbs, c, r_t, self.device, self.stabiliser)
        else:
            out = colorize_guided(self.model, rgbs, c, r_t, self.device)
        for (frame, _), rgb in zip(batch, out, strict=True):
            of = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            of.pts, of.time_base = self._next_pts(frame.pts), self.line.tb
            self.oc.mux(self.ov.encode(of))
        self.frames_done += len(batch)
        self.r_sum += float(r.sum())
        self.guide.forget_before(int(batch[-1][1]))
        if self.soundtrack is not None:  # decoded for muxing even when --audio/--no-audio guides instead
            self.soundtrack.release_before(int(batch[-1][1]) - 1)
        self.mux_audio(self.cfg.max_seconds)

    def finish(self) -> None:
        """Flush the encoder, then mux the rest of the soundtrack (up to max_seconds)."""
        self.oc.mux(self.ov.encode(None))
        st, limit = self.soundtrack, self.cfg.max_seconds
        if st is None:
            return
        for _ in st.drain():
            self.mux_audio(limit)
            if limit is not None and st.last_time >= limit:
                break
        self.mux_audio(limit)
        if not self.copy_audio:
            self.oc.mux(self.oa.encode(None))


def _decode_and_write(
    ic: av.container.InputContainer,
    in_v,
    writer: _FrameWriter,
    cfg: ColorizeConfig,
    on_frames: Callable[[int], None] | None,
) -> tuple[float | None, float]:
    """Decode every frame (up to max_seconds) into batches for `writer`; (first, last) frame time."""
    first_t, last_t = None, 0.0
    batch: list[tuple[av.VideoFrame, float]] = []
    batch_size = frame_batch(cfg.batch_size, writer.line.width, writer.line.height)

    def flush() -> None:
        writer.write(batch)
        if on_frames is not None and batch:
            on_frames(len(batch))
        batch.clear()

    # decoding runs on a thread while the model computes; closed (thread joined) on any exit
    with contextlib.closing(prefetch(ic.decode(in_v), 2 * batch_size)) as frames:
        for frame in frames:
            t = frame.time if frame.time is not None else writer.frames_done / float(writer.line.rate)
            t = float(t) - writer.line.origin
            if cfg.max_seconds is not None and t >= cfg.max_seconds:
                break
            first_t = t if first_t is None else first_t
            last_t = t
            batch.append((frame, t))
            if len(batch) >= batch_size:
                flush()
    flush()
    writer.finish()
    return first_t, last_t


def _colorize_open_video(
    src: Path,
    dst: Path,
    ic: av.container.InputContainer,
    in_v,
    model,
    cfg: ColorizeConfig,
    device: torch.device,
    fixed: AudioInput | None,
    on_frames: Callable[[int], None] | None,
    stack: contextlib.ExitStack,
) -> VideoResult:
    """The body of `colorize_video`; every container opened here is closed by `stack`."""
    in_a = ic.streams.audio[0] if ic.streams.audio else None
    line = _timeline(ic, in_v, in_a, cfg)
    soundtrack, guide = _second_guide(src, in_a, line, model, cfg, device, fixed, stack)
    oc, ov, oa, audio_mode = _output_with_audio(dst, in_v, in_a, cfg, line, soundtrack)
    stack.callback(oc.close)
    writer = _FrameWriter(
        model, cfg, device, line, guide, soundtrack, (oc, ov, oa), copy_audio=audio_mode.startswith("copied")
    )
    t_start = time.perf_counter()
    try:
        first_t, last_t = _decode_and_write(ic, in_v, writer, cfg, on_frames)
    except av.error.FFmpegError as e:
        raise InputError(src, f"video cannot be decoded or encoded ({e})") from e
    oc.close()  # finish the file before it is checked (closing twice is harmless)
    frames = writer.frames_done
    if frames == 0:
        dst.unlink(missing_ok=True)
        raise InputError(src, "no video frames could be decoded")
    elapsed = time.perf_counter() - t_start
    fps = float(line.rate)
    counts = guide.counts
    return VideoResult(
        source=str(src),
        output=str(dst),
        frames=frames,
        width=line.width,
        height=line.height,
        fps=fps,
        duration=(last_t - (first_t or 0.0)) + 1.0 / fps,
        audio=audio_mode,
        guided_seconds=counts["audio"],
        silent_seconds=counts["silent"],
        unguided_seconds=counts["missing"] + counts["disabled"],
        mean_r=writer.r_sum / frames,
        frames_per_second=frames / elapsed if elapsed > 0 else float("inf"),
        r_per_second=[guide.r_by_second.get(i, 0.0) for i in range(max(guide.r_by_second, default=-1) + 1)],
        temporal=cfg.temporal,
        shot_cuts=list(writer.stabiliser.cuts.cuts) if writer.stabiliser is not None else [],
    )
