"""A synthetic audio-visual corpus where only the sound tells the colour.

`make_disambiguation_corpus` writes a folder layout ``out_dir/<class name>/<video id>.mp4`` (H.264
yuv420p video + AAC 16 kHz mono audio, via PyAV). Every frame is a grey pattern (smooth random texture
plus a few discs and rectangles, new every second, drifting slowly inside the second) whose CIE L values
are drawn from the same distribution for every class; the class only sets the colour, a constant Lab
hue (`CLASS_HUES`, chroma `CHROMA`), and the sound, a class-specific tone with its own timbre
(`CLASS_TONES`) plus white noise. A colorizer that sees only L cannot tell the classes apart; one that
hears the audio can. Extracted with ``aiaic-data extract --layout folder --mode all`` it gives
classes x videos x seconds samples::

    from aiaic.demo.corpus import make_disambiguation_corpus
    make_disambiguation_corpus(Path("data/synth"), classes=4, videos_per_class=4, seconds=10)

Scene groups (``scene_groups``, default 1). With one group every class shares the same kind of grey
content, so the grey frame says nothing about which sound belongs to it: a relevance net
r = sigmoid(w * cos(h_a(audio), h_v(grey frame)) + b), trained to score a true audio-visual pair above
audio taken from another video, cannot do better than r = 0.5 on such data. With ``scene_groups=G`` the
classes are dealt to groups round-robin (class k -> group k % G) and each group has its own kind of grey
content (`SCENE_STYLES`: 0 "blobs" = the smooth texture with discs and rectangles above, 1 "stripes" =
near-horizontal sinusoidal stripes with a 5-7 px period, 2 "grain" = 2 px checker-like random blocks,
3 "rings" = concentric rings with a 10-14 px period), clearly different in spatial frequency and gradient
orientation. Within a group the grey content is drawn by the same class-blind generator, so the frame
tells the group but never the class inside the group: the colour within a group is still audio-only,
while a sound of a class from another group visibly does not belong to the frame. Hues and sounds per
class are unchanged; with the `CLASS_HUES` order and round-robin dealing, the classes of one group have
far-apart hues (4 classes in 2 groups: red/green 125 degrees apart, yellow/blue 160 degrees apart).
At most ``min(classes, len(SCENE_STYLES))`` groups. ``scene_groups=1`` hands the encoder exactly the same
frames and audio as before groups existed (group 0 is the original content, and a group-0 class gets the
same frames and sound for every `scene_groups`).

The frames and audio handed to the encoder are a deterministic function of the arguments, and the video
is coded losslessly (libx264 at qp 0), so the decoded frames are too: with lossy settings libx264's output
varied between processes for identical input frames (a few pixels by up to 7 levels), enough to send a
short training run down a visibly different path.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image
from skimage import color

from aiaic.io import atomic_path

# Lab hue angle (degrees, atan2(b, a)) per class, ordered so that the first n are far apart.
# Every hue is inside the sRGB gamut at chroma CHROMA for L in [L_MIN, L_MAX] (checked by a test).
CLASS_HUES: dict[str, float] = {
    "red": 20.0,
    "yellow": 85.0,
    "green": 145.0,
    "blue": 285.0,
    "orange": 50.0,
    "lime": 115.0,
    "purple": 310.0,
    "magenta": 340.0,
}
CHROMA = 36.0  # Lab chroma sqrt(a^2 + b^2) of every class colour
L_MIN, L_MAX = 35.0, 75.0  # range of the grey content's CIE L, the same for every class

SAMPLE_RATE = 16000  # Hz, audio written at this rate (mono)


@dataclass(frozen=True)
class Tone:
    """A class sound: fundamental `f0` (Hz) with harmonic amplitudes and an optional tremolo (Hz)."""

    f0: float
    harmonics: tuple[float, ...]  # amplitude of harmonic 1, 2, ... (harmonic 1 is the loudest)
    tremolo: float = 0.0


# One tone per class, same order as CLASS_HUES: fundamentals spread over the mel range (about 0.55
# octave apart), timbres differ (pure, odd harmonics, all harmonics, pulsed).
CLASS_TONES: tuple[Tone, ...] = (
    Tone(220.0, (1.0,)),
    Tone(330.0, (1.0, 0.0, 0.33, 0.0, 0.2)),
    Tone(500.0, (1.0, 0.5, 0.33, 0.25)),
    Tone(750.0, (1.0, 0.3), tremolo=4.0),
    Tone(1120.0, (1.0,), tremolo=7.0),
    Tone(1680.0, (1.0, 0.0, 0.33)),
    Tone(2520.0, (1.0, 0.4)),
    Tone(3780.0, (1.0,)),
)


def class_names(n: int) -> list[str]:
    """The first `n` class names (1 <= n <= len(CLASS_HUES))."""
    if not 1 <= n <= len(CLASS_HUES):
        raise ValueError(f"classes must be in 1..{len(CLASS_HUES)}, got {n}")
    return list(CLASS_HUES)[:n]


def class_ab(name: str) -> tuple[float, float]:
    """The Lab (a, b) of class `name`: CHROMA at its hue angle."""
    angle = np.deg2rad(CLASS_HUES[name])
    return float(CHROMA * np.cos(angle)), float(CHROMA * np.sin(angle))


def class_tone(name: str) -> Tone:
    """The sound of class `name`."""
    return CLASS_TONES[list(CLASS_HUES).index(name)]


def _grey_pattern(rng: np.random.Generator, side: int) -> np.ndarray:
    """A smooth random texture with discs and rectangles: CIE L float64 [side, side] in [L_MIN, L_MAX]."""
    cells = int(rng.integers(3, 9))
    coarse = rng.uniform(0.0, 1.0, size=(cells, cells)).astype(np.float32)
    smooth = np.asarray(
        Image.fromarray(coarse, mode="F").resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64
    )
    smooth = np.clip(smooth, 0.0, 1.0)
    yy, xx = np.mgrid[0:side, 0:side]
    for _ in range(int(rng.integers(1, 5))):
        level = rng.uniform(0.0, 1.0)
        cy, cx = rng.uniform(0, side, size=2)
        r = rng.uniform(side * 0.08, side * 0.25)
        if rng.random() < 0.5:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            mask = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r * rng.uniform(0.5, 1.5))
        smooth[mask] = level
    return L_MIN + (L_MAX - L_MIN) * smooth


def _stripes_pattern(rng: np.random.Generator, side: int) -> np.ndarray:
    """Near-horizontal sinusoidal stripes (period 5-7 px, tilt +-15 degrees): CIE L float64 [side, side]."""
    period = rng.uniform(5.0, 7.0)
    tilt = np.deg2rad(rng.uniform(-15.0, 15.0))
    contrast = rng.uniform(0.7, 1.0)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    across = yy * np.cos(tilt) + xx * np.sin(tilt)  # distance across the stripes, px
    wave = np.sin(2 * np.pi * across / period + rng.uniform(0, 2 * np.pi))
    return L_MIN + (L_MAX - L_MIN) * (0.5 + 0.5 * contrast * wave)


def _grain_pattern(rng: np.random.Generator, side: int) -> np.ndarray:
    """Checker-like grain of random 2 px blocks (isotropic, high frequency): CIE L float64 [side, side]."""
    blocks = rng.uniform(0.0, 1.0, size=(side // 2 + 1, side // 2 + 1))
    grain = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)[:side, :side]
    return L_MIN + (L_MAX - L_MIN) * grain


def _rings_pattern(rng: np.random.Generator, side: int) -> np.ndarray:
    """Concentric sinusoidal rings (period 10-14 px) around a random centre: CIE L float64 [side, side]."""
    period = rng.uniform(10.0, 14.0)
    cy, cx = rng.uniform(0, side, size=2)
    contrast = rng.uniform(0.7, 1.0)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    wave = np.sin(2 * np.pi * np.hypot(yy - cy, xx - cx) / period + rng.uniform(0, 2 * np.pi))
    return L_MIN + (L_MAX - L_MIN) * (0.5 + 0.5 * contrast * wave)


# Kinds of grey content, one per scene group (index = group); each maps (rng, side) -> L [side, side].
SCENE_STYLES: tuple[str, ...] = ("blobs", "stripes", "grain", "rings")
_STYLE_FUNCS = (_grey_pattern, _stripes_pattern, _grain_pattern, _rings_pattern)


def class_groups(classes: int, scene_groups: int = 1) -> list[int]:
    """Scene group of each of the first `classes` classes: class k -> group k % scene_groups.

    `scene_groups` must be in 1..min(classes, len(SCENE_STYLES)) so that every group has a class.
    """
    class_names(classes)  # validates classes
    if not 1 <= scene_groups <= min(classes, len(SCENE_STYLES)):
        raise ValueError(
            f"scene_groups must be in 1..{min(classes, len(SCENE_STYLES))} for {classes} classes "
            f"({len(SCENE_STYLES)} scene styles exist), got {scene_groups}"
        )
    return [k % scene_groups for k in range(classes)]


def _lab_lut(name: str, steps: int = 401) -> np.ndarray:
    """RGB uint8 [steps, 3] for L on an even grid over [L_MIN, L_MAX] at the class's (a, b)."""
    grid = np.linspace(L_MIN, L_MAX, steps)
    a, b = class_ab(name)
    lab = np.stack([grid, np.full_like(grid, a), np.full_like(grid, b)], axis=-1)[None]
    rgb = np.clip(color.lab2rgb(lab)[0], 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def _video_frames(
    rng: np.random.Generator, lut: np.ndarray, *, seconds: int, size: int, fps: int, style: int = 0
) -> np.ndarray:
    """uint8 RGB frames [seconds * fps, size, size, 3]: one grey pattern per second, drifting, tinted.

    `style` indexes `SCENE_STYLES` (the kind of grey content); 0 is the original blobs.
    """
    pattern = _STYLE_FUNCS[style]
    margin = max(4, size // 4)
    frames = np.empty((seconds * fps, size, size, 3), np.uint8)
    steps = lut.shape[0]
    for s in range(seconds):
        big = pattern(rng, size + 2 * margin)
        start = rng.integers(0, margin + 1, size=2)
        velocity = rng.uniform(-margin / fps, margin / fps, size=2)
        for f in range(fps):
            oy, ox = np.clip(np.round(start + velocity * f).astype(int), 0, 2 * margin)
            L = big[oy : oy + size, ox : ox + size]
            idx = np.round((L - L_MIN) / (L_MAX - L_MIN) * (steps - 1)).astype(np.int64)
            frames[s * fps + f] = lut[np.clip(idx, 0, steps - 1)]
    return frames


def _audio(rng: np.random.Generator, tone: Tone, seconds: int) -> np.ndarray:
    """float32 mono PCM [seconds * SAMPLE_RATE] in [-1, 1]: the tone (f0 jittered +-2 % per video) + noise."""
    n = seconds * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    f0 = tone.f0 * rng.uniform(0.98, 1.02)
    y = np.zeros(n)
    for h, amp in enumerate(tone.harmonics, start=1):
        if amp > 0 and h * f0 < 0.45 * SAMPLE_RATE:
            y += amp * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
    y /= np.abs(y).max()
    if tone.tremolo > 0:
        y *= 0.6 + 0.4 * np.sin(2 * np.pi * tone.tremolo * t)
    loudness = np.repeat(rng.uniform(0.3, 0.6, size=seconds), SAMPLE_RATE)
    y = loudness * y + rng.normal(0.0, 0.03, size=n)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def _write_mp4(path: Path, frames: np.ndarray, pcm: np.ndarray, fps: int) -> None:
    """Lossless H.264 yuv420p + AAC mono at SAMPLE_RATE, written to a temporary name then renamed."""
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "qp": "0", "threads": "1"})
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        vs.pix_fmt = "yuv420p"
        vs.bit_rate = 0
        aus = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        aus.codec_context.time_base = Fraction(1, SAMPLE_RATE)
        frame_size = 1024
        a_pos = 0
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            out.mux(vs.encode(vf))
            # keep the audio a little ahead of the video so the muxer interleaves
            while a_pos < min(len(pcm), int((i + 1) / fps * SAMPLE_RATE)):
                chunk = pcm[a_pos : a_pos + frame_size]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate = SAMPLE_RATE
                af.pts = a_pos
                af.time_base = Fraction(1, SAMPLE_RATE)
                out.mux(aus.encode(af))
                a_pos += len(chunk)
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))


def make_disambiguation_corpus(
    out_dir: Path,
    *,
    classes: int = 4,
    videos_per_class: int = 4,
    seconds: int = 10,
    size: int = 64,
    fps: int = 10,
    seed: int = 0,
    scene_groups: int = 1,
) -> Path:
    """Write `classes` x `videos_per_class` synthetic videos to ``out_dir/<class>/<class>_<nnn>.mp4``.

    Args:
        out_dir: folder to create (existing files of the same name are replaced).
        classes: number of classes (1..8), named by `class_names`.
        videos_per_class: videos per class.
        seconds: length of each video in seconds (one new grey pattern per second).
        size: frame width and height in pixels (even, >= 16).
        fps: video frame rate (frames per second).
        seed: the corpus is a deterministic function of the arguments.
        scene_groups: number of scene groups (1..min(classes, 4)); class k gets the grey content of
            group k % scene_groups (`SCENE_STYLES`), so the grey frame tells the group, never the class
            within it. 1 (the default) gives one kind of content for all classes, as before.
    Returns:
        `out_dir`.
    """
    names = class_names(classes)
    if videos_per_class < 1 or seconds < 1 or fps < 1:
        raise ValueError("videos_per_class, seconds and fps must be >= 1")
    if size < 16 or size % 2:
        raise ValueError(f"size must be even and >= 16 (yuv420p), got {size}")
    groups = class_groups(classes, scene_groups)
    out_dir = Path(out_dir)
    for k, name in enumerate(names):
        class_dir = out_dir / name
        class_dir.mkdir(parents=True, exist_ok=True)
        lut = _lab_lut(name)
        for v in range(videos_per_class):
            # the grey content's generator does not see the class, only its group's style (same
            # statistics for all classes of a group); the audio's generator does, so noise and jitter differ
            grey_rng = np.random.default_rng([seed, 1, k * videos_per_class + v])
            audio_rng = np.random.default_rng([seed, 2, k, v])
            frames = _video_frames(grey_rng, lut, seconds=seconds, size=size, fps=fps, style=groups[k])
            pcm = _audio(audio_rng, class_tone(name), seconds)
            _write_mp4(class_dir / f"{name}_{v:03d}.mp4", frames, pcm, fps)
    return out_dir
