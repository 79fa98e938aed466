"""The evaluation protocol's settings (crop | resize, clip | grey gamut) on hand-made images against
skimage, the mismatched-audio derangement, and an evaluation that uses them all (Table 2b, AVE's
in-event and background segments, the protocol and the open choices named in the report)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from skimage.color import lab2rgb, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from support.split_fixtures import write_split_dir

from aiaic.colorize.compose import join_full_resolution, luminance_uint8
from aiaic.eval import mismatch
from aiaic.eval.evaluate import EvalConfig, run_eval
from aiaic.eval.metrics import psnr, ssim
from aiaic.eval.protocol import describe, protocol_image


def _stripes() -> np.ndarray:
    """128 x 256: red left quarter, mid-grey middle half, blue right quarter."""
    img = np.full((128, 256, 3), 128, np.uint8)
    img[:, :64] = (255, 0, 0)
    img[:, 192:] = (0, 0, 255)
    return img


def _skimage_grey_prediction(gt: np.ndarray) -> np.ndarray:
    """The prediction ab = 0 on gt's own L, by skimage: what our grey_input reference must equal."""
    lab = rgb2lab(gt)
    lab[..., 1:] = 0.0
    return np.round(lab2rgb(lab) * 255.0).astype(np.uint8)


@pytest.mark.parametrize("mode", ["crop", "resize"])
def test_protocols_give_the_documented_ground_truth_and_metric_values(mode):
    gt = protocol_image(_stripes(), protocol=mode)
    assert gt.shape == (256, 256, 3)
    if mode == "crop":  # short side 128 -> 256, then the middle 256 of 512 columns: the grey half
        assert np.all(gt[:, 16:240] == 128)
    else:  # the whole frame: red, grey, blue quarters kept
        assert np.all(gt[:, :60] == (255, 0, 0)) and np.all(gt[:, 196:] == (0, 0, 255))
        assert np.all(gt[:, 70:186] == 128)
    L = luminance_uint8(gt[None])
    ours = join_full_resolution(L, torch.zeros(1, 2, 1, 1), "clip")[0]
    ref = _skimage_grey_prediction(gt)
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    want_psnr = peak_signal_noise_ratio(gt, ref, data_range=255)
    want_ssim = structural_similarity(gt, ref, channel_axis=-1, data_range=255)
    got = psnr(ours, gt)
    if mode == "crop":
        assert got > 40.0  # the grey half is grey: nothing to colour (only the bicubic fringe)
    else:
        assert got == pytest.approx(want_psnr, abs=0.05) and got < 15.0  # the red and blue quarters
        assert ssim(ours, gt) == pytest.approx(want_ssim, abs=1e-3)


def test_gamut_clip_is_skimage_and_grey_keeps_luminance():
    """L = 60 with a saturated ab far outside sRGB: "clip" equals skimage's lab2rgb (per-channel clip);
    "grey" keeps L (and so scores differently); in-gamut colours are the same either way."""
    L = torch.full((1, 1, 8, 8), 60.0)
    ab_n = torch.zeros(1, 2, 8, 8)
    ab_n[:, 0, :, :4], ab_n[:, 1, :, :4] = 100 / 110, 100 / 110  # out of gamut (left half)
    ab_n[:, 0, :, 4:], ab_n[:, 1, :, 4:] = 10 / 110, -10 / 110  # in gamut (right half)
    clip = join_full_resolution(L, ab_n, "clip")[0]
    grey = join_full_resolution(L, ab_n, "grey")[0]
    lab = np.zeros((8, 8, 3))
    lab[..., 0] = 60.0
    lab[..., 1:] = ab_n[0].permute(1, 2, 0).numpy() * 110
    ref = np.round(lab2rgb(lab) * 255).astype(np.uint8)
    assert np.abs(clip.astype(int) - ref.astype(int)).max() <= 1
    assert np.abs(rgb2lab(grey[:, :4])[..., 0] - 60.0).max() < 0.5  # luminance kept
    assert np.abs(rgb2lab(clip[:, :4])[..., 0] - 60.0).max() > 3.0  # clipping changes it
    assert np.abs(clip[:, 4:].astype(int) - grey[:, 4:].astype(int)).max() <= 1
    target = ref  # against skimage's own rendering, clip is exact and grey is not
    assert psnr(clip, target) > 45.0 and psnr(grey, target) < 30.0
    with pytest.raises(ValueError, match="gamut"):
        join_full_resolution(L, ab_n, "wrap")


def test_protocol_is_named():
    assert describe(256, "resize", "clip")["name"] == "resize, clipped gamut"
    assert "whole frame" in describe(256, "resize", "clip")["ground_truth"]
    with pytest.raises(ValueError, match="protocol"):
        EvalConfig(protocol="stretch")
    with pytest.raises(ValueError, match="audio"):
        EvalConfig(audio="random")


# ---- mismatched audio ----------------------------------------------------------------------------------


def test_donors_are_a_derangement_across_classes():
    labels = [i % 5 for i in range(53)] + [0] * 7  # class 0 largest (18 of 60)
    has = [True] * 60
    d = mismatch.donors(labels, has, mismatch.window_rng(3, 0))
    assert sorted(d.tolist()) == list(range(60))  # each second heard exactly once
    assert all(labels[i] != labels[j] for i, j in enumerate(d))  # never its own class (nor itself)
    again = mismatch.donors(labels, has, mismatch.window_rng(3, 0))
    assert np.array_equal(d, again)  # fixed for a seed
    other = mismatch.donors(labels, has, mismatch.window_rng(4, 0))
    assert not np.array_equal(d, other)


def test_donors_without_audio_and_impossible_windows():
    labels = ["a", "a", "b", "b", "c", "c"]
    has = [True, False, True, True, True, True]
    d = mismatch.donors(labels, has, mismatch.window_rng(0, 0))
    assert all(has[j] for j in d) and all(labels[i] != labels[j] for i, j in enumerate(d))
    with pytest.raises(ValueError, match="more than half"):
        mismatch.donors(["a", "a", "a", "b"], [True] * 4, mismatch.window_rng(0, 0))
    with pytest.raises(ValueError, match="none of the 2 samples has audio"):
        mismatch.donors(["a", "b"], [False, False], mismatch.window_rng(0, 0))


def test_windows_join_a_short_tail():
    batches = [list(range(0, 4)), list(range(4, 8)), list(range(8, 10))]
    assert list(mismatch.windows(iter(batches), 4)) == [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]
    assert list(mismatch.windows(iter([[0, 1]]), 4)) == [[0, 1]]


# ---- an evaluation with everything -------------------------------------------------------------------


def _add_ave_test_split(split_dir: Path) -> None:
    """A "test" split made of the val samples relabelled as AVE: odd segments are background."""
    manifest = json.loads((split_dir / "manifest.json").read_text())
    (split_dir / "test").mkdir()
    out = split_dir / "test" / "test-000000.tar"
    n = 0
    with wds.TarWriter(str(out)) as sink:
        for rel in manifest["splits"]["val"]["shards"]:
            for raw in wds.WebDataset(str(split_dir / rel), shardshuffle=False, empty_check=False):
                meta = json.loads(raw["json"])
                meta |= {"dataset": "ave", "in_event": n % 2 == 0}
                raw["json"] = json.dumps(meta).encode()
                sink.write({k: v for k, v in raw.items() if k != "__url__" and k != "__local_path__"})
                n += 1
    manifest["splits"]["test"] = {
        **manifest["splits"]["val"],
        "shards": ["test/test-000000.tar"],
        "samples": n,
    }
    (split_dir / "manifest.json").write_text(json.dumps(manifest))


def test_eval_with_mismatched_audio_resize_clip_and_ave_segments(tmp_path, tiny_run, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))  # LPIPS unavailable, no download
    split = write_split_dir(
        tmp_path / "split",
        classes=4,
        videos_per_class=2,
        seconds=2,
        size=40,
        shards_per_split=1,
        ood_classes=1,
    )
    _add_ave_test_split(split)
    cfg = EvalConfig(
        run=tiny_run,
        shards=split,
        out=tmp_path / "e",
        splits=("val", "ood", "test"),
        variants=("baseline", "full", "full_missing_audio"),
        protocol="resize",
        gamut="clip",
        audio="mismatched",
        seed=5,
        save_images=0,
        progress=False,
        device="cpu",
    )
    metrics = run_eval(cfg)
    assert metrics["mismatched"] == {"seed": 5, "window": mismatch.WINDOW, "variants": ["full"]}
    for s in ("val", "test"):
        assert set(metrics[s]) == {"baseline", "full", "full_missing_audio", "full_mismatched_audio"}
        assert metrics[s]["full_mismatched_audio"]["n"] == metrics[s]["full"]["n"]
    assert "one class holds" in metrics["unavailable"]["mismatched"]["ood"]  # one OOD class only
    assert "full_mismatched_audio" not in metrics["ood"]
    rows = [line.split(",") for line in (tmp_path / "e" / "per_image.csv").read_text().splitlines()[1:]]
    own = {r[2]: float(r[6]) for r in rows if r[0] == "val" and r[1] == "full"}
    other = {r[2]: float(r[6]) for r in rows if r[0] == "val" and r[1] == "full_mismatched_audio"}
    assert own.keys() == other.keys() and any(not math.isclose(own[k], other[k]) for k in own)
    seg = metrics["segments"]["test"]
    assert set(seg) == {"background", "in_event"} and "val" not in metrics["segments"]
    n = metrics["test"]["full"]["n"]
    assert seg["in_event"]["full"]["n"] + seg["background"]["full"]["n"] == n
    assert seg["in_event"]["full"]["n"] == (n + 1) // 2
    assert metrics["protocol"]["name"] == "resize, clipped gamut"
    assert metrics["setting"]["insertion_point"] is not None
    text = (tmp_path / "e" / "report.md").read_text()
    assert "- Protocol: resize, clipped gamut" in text
    assert "## Table 2b: mismatched audio" in text and "### Table 2b on VGGSound (val)" in text
    assert "| Full (r from the relevance net) (`full`) |" in text.split("### Table 2b on AVE (test)")[1]
    assert "## AVE segments: in-event and background" in text
    assert "## Setting: the choices the paper leaves open" in text and "Common.txt" in text

    again = run_eval(EvalConfig(**{**cfg.__dict__, "out": tmp_path / "e2", "splits": ("val",)}))
    assert (
        again["val"]["full_mismatched_audio"] == metrics["val"]["full_mismatched_audio"]
    )  # fixed for a seed


def test_cli_flags_reach_the_config(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import aiaic.eval.evaluate as evaluate
    from aiaic.cli.eval import app

    seen = {}

    def fake_run_eval(cfg):
        seen["cfg"] = cfg
        raise evaluate.ConfigError("stop here")

    monkeypatch.setattr(evaluate, "run_eval", fake_run_eval)
    args = ["--run", str(tmp_path), "--shards", str(tmp_path), "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(
        app, [*args, "--protocol", "resize", "--gamut", "clip", "--audio", "mismatched", "--seed", "3"]
    )
    assert res.exit_code != 0 and "stop here" in res.output
    cfg = seen["cfg"]
    assert (cfg.protocol, cfg.gamut, cfg.audio, cfg.seed) == ("resize", "clip", "mismatched", 3)
    res = CliRunner().invoke(app, [*args, "--protocol", "stretch"])
    assert res.exit_code == 2 and "protocol must be one of ['crop', 'resize']" in res.output
