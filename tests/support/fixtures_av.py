"""Generate tiny test clips with PyAV in which every second has a known colour and a known tone.

Second i of a clip shows `COLOURS[i % len(COLOURS)]` (the lower two thirds of the frame) and sounds
`tone(i)` Hz (a sine at amplitude 0.5 on every channel). The upper third of each frame is a grey
level that encodes the frame's index k: `frame_code_grey(k) = 8 + 16 * (k % 16)`, so a test can tell
which frame was taken, not only which second. Frame k is shown at `frame_times[k]` (seconds, from
the start of the clip); the clip's streams start at `start_time` seconds.

    spec = make_clip(tmp / "a.mp4", seconds=4, fps=Fraction(30000, 1001), start_time=1.5)
    spec.frame_times, spec.colour(2), spec.tone(2)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

COLOURS: tuple[tuple[int, int, int], ...] = (
    (220, 30, 30),
    (30, 200, 40),
    (40, 60, 220),
    (230, 220, 40),
    (210, 40, 210),
    (40, 210, 210),
    (240, 140, 30),
    (140, 40, 230),
)
VFR_STEPS = (0.04, 0.1, 0.2, 0.06, 0.13, 0.03, 0.16)  # seconds between frames of a variable-rate clip

# container suffix -> (video codec, audio codec, pixel format, audio sample format)
CODECS = {
    ".mp4": ("libx264", "aac", "yuv420p", "fltp"),
    ".mkv": ("libx264", "flac", "yuv420p", "s16"),
    ".webm": ("libvpx-vp9", "libopus", "yuv420p", "flt"),
    ".avi": ("mpeg4", "pcm_s16le", "yuv420p", "s16"),
    ".mov": ("libx264", "aac", "yuv420p", "fltp"),
}


def tone(i: int) -> float:
    """Frequency in Hz of second i: 400, 700, 1000, ... (within the 125-7500 Hz mel range)."""
    return 400.0 + 300.0 * (i % 16)


def frame_code_grey(k: int) -> int:
    """The grey level (0-255) of the top strip of frame k."""
    return 8 + 16 * (k % 16)


def decode_frame_code(image: np.ndarray) -> int:
    """k % 16 from the mean grey of the top strip of an RGB image [H, W, 3]."""
    h = image.shape[0]
    strip = image[1 : max(2, h // 3 - 1), 1:-1].astype(np.float64).mean()
    return int(round((strip - 8) / 16)) % 16


@dataclass
class ClipSpec:
    """What a generated clip contains (times in seconds from the clip's own start)."""

    path: Path
    seconds: float
    frame_times: list[float]
    start_time: float  # where the video stream starts (s, as representable in its time base)
    sample_rate: int | None
    channels: int
    audio_seconds: float
    width: int
    height: int
    audio_start: float = 0.0  # where the audio stream starts (s)
    extra: dict = field(default_factory=dict)

    def colour(self, i: int) -> tuple[int, int, int]:
        return COLOURS[i % len(COLOURS)]

    def tone(self, i: int) -> float:
        return tone(i)

    def nearest_frame(self, t: float) -> int:
        """Index of the frame whose time is nearest to t (ties -> earlier)."""
        d = [abs(ft - t) for ft in self.frame_times]
        return int(np.argmin(d))

    def expected_segments(self) -> list[int]:
        """Whole seconds the clip covers (video and audio)."""
        end = self.frame_times[-1] + (self.extra.get("last_dur") or 0.0)
        n = int(np.floor(min(end, self.audio_seconds if self.sample_rate else end) + 0.02))
        return list(range(n))


def make_frame(k: int, t: float, width: int, height: int) -> np.ndarray:
    """RGB uint8 [H, W, 3]: top third grey code of frame k, the rest the colour of second floor(t)."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = COLOURS[int(np.floor(t + 1e-9)) % len(COLOURS)]
    img[: height // 3] = frame_code_grey(k)
    return img


CLICK_AT = 0.25  # seconds into each second where a click sits (audio kind "clicks")


def make_audio(seconds: float, sample_rate: int, kind: str = "tones") -> np.ndarray:
    """float32 [samples]. kind "tones": tone(i) during [i, i+1) s, amplitude 0.5. kind "clicks":
    silence with a 3 kHz burst (Gaussian envelope, sigma 0.5 ms, peak 0.9) centred at i + CLICK_AT s."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    if kind == "clicks":
        out = np.zeros(n)
        for i in range(int(np.ceil(seconds))):
            d = t - (i + CLICK_AT)
            out += 0.9 * np.exp(-0.5 * (d / 0.0005) ** 2) * np.cos(2 * np.pi * 3000 * d)
        return out.astype(np.float32)
    freqs = np.array([tone(int(i)) for i in np.floor(t)]) if n else np.zeros(0)
    return (0.5 * np.sin(2 * np.pi * freqs * t)).astype(np.float32)


def make_clip(
    path: str | Path,
    *,
    seconds: float = 3.0,
    fps: float | Fraction = 10,
    vfr: bool = False,
    width: int = 64,
    height: int = 48,
    start_time: float = 0.0,
    sample_rate: int | None = 16000,
    layout: str = "mono",
    audio_seconds: float | None = None,
    codecs: tuple[str, str, str, str] | None = None,
    audio_kind: str = "tones",
) -> ClipSpec:
    """Write a clip; the container follows the suffix (.mp4 .mkv .webm .avi .mov). `sample_rate=None`
    writes no audio stream. `audio_seconds` (default `seconds`) lets audio end before the video."""
    path = Path(path)
    vcodec, acodec, pix_fmt, sfmt = codecs or CODECS[path.suffix]
    fps = Fraction(fps).limit_denominator(1001)
    if vfr:
        times, t = [], 0.0
        while t < seconds - 1e-9:
            times.append(round(t, 3))
            t += VFR_STEPS[len(times) % len(VFR_STEPS)]
        tb = Fraction(1, 1000)
        last_dur = seconds - times[-1]
    else:
        n = int(np.floor(seconds * fps + 1e-9))
        times = [float(k / fps) for k in range(n)]
        tb = 1 / fps
        last_dur = float(1 / fps)
    audio_seconds = seconds if audio_seconds is None else audio_seconds
    with av.open(str(path), "w") as c:
        vs = c.add_stream(vcodec, rate=fps if not vfr else 25)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if vcodec == "libx264":
            vs.options = {
                "preset": "ultrafast" if path.suffix == ".mov" else "veryfast",
                "crf": "18",
                "bf": "3",
                "g": "12",
            }
        elif vcodec == "libvpx-vp9":
            vs.options = {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b:v": "0"}
        else:
            vs.options = {"qscale": "2"}
            vs.codec_context.qmin, vs.codec_context.qmax = 2, 4
        a_s = None
        channels = 0
        if sample_rate:
            a_s = c.add_stream(acodec, rate=sample_rate)
            a_s.layout = layout
            a_s.format = sfmt
            channels = a_s.codec_context.channels
        v_offset = round(start_time / tb)
        for k, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(make_frame(k, t, width, height), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts = v_offset + round(t / tb)
            frame.time_base = tb
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        if a_s is not None:
            pcm = make_audio(audio_seconds, sample_rate, audio_kind)
            a_offset = round(start_time * sample_rate)
            chunk = sample_rate // 10
            for s0 in range(0, pcm.size, chunk):
                block = np.repeat(pcm[None, s0 : s0 + chunk], channels, axis=0)
                if sfmt == "s16":
                    arr = (block.T.reshape(1, -1) * 32767).astype(np.int16)
                elif sfmt == "flt":
                    arr = np.ascontiguousarray(block.T.reshape(1, -1))
                else:
                    arr = block
                af = av.AudioFrame.from_ndarray(arr, format=sfmt, layout=layout)
                af.sample_rate = sample_rate
                af.pts = a_offset + s0
                af.time_base = Fraction(1, sample_rate)
                for p in a_s.encode(af):
                    c.mux(p)
            for p in a_s.encode(None):
                c.mux(p)
    return ClipSpec(
        path,
        seconds,
        times,
        float(v_offset * tb),
        sample_rate,
        channels,
        audio_seconds,
        width,
        height,
        start_time,
        {"last_dur": last_dur},
    )


def write_garbage(path: str | Path, n: int = 5000, seed: int = 0) -> Path:
    """A file of random bytes with a video suffix."""
    p = Path(path)
    p.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return p


def truncate_copy(src: str | Path, dst: str | Path, fraction: float = 0.5) -> Path:
    """A copy of `src` cut to `fraction` of its bytes (a download that stopped)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def write_video(
    path: str | Path, frames, fps: int = 10, sample_rate: int | None = None, crf: int = 12
) -> Path:
    """Write uint8 RGB frames [N, H, W, 3] (even sizes) as H.264 at `fps` into an .mp4, with a tone(i)
    soundtrack (AAC, mono) as long as the frames when `sample_rate` is given."""
    path = Path(path)
    frames = list(frames)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "veryfast", "crf": str(crf)}
        a_s = None
        if sample_rate:
            a_s = c.add_stream("aac", rate=sample_rate)
            a_s.layout, a_s.format = "mono", "fltp"
        for k, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        if a_s is not None:
            pcm = make_audio(len(frames) / fps, sample_rate)
            for s0 in range(0, pcm.size, 1024):
                af = av.AudioFrame.from_ndarray(pcm[None, s0 : s0 + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = sample_rate, s0, Fraction(1, sample_rate)
                for p in a_s.encode(af):
                    c.mux(p)
            for p in a_s.encode(None):
                c.mux(p)
    return path
