"""aiaic-eval on a tiny real run: the protocol, metrics.json / per_image.csv / report.md / grids,
unavailable variants and splits listed, LPIPS reported unavailable without weights, clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from support.split_fixtures import read_split, write_split_dir
from typer.testing import CliRunner

from aiaic.cli.eval import app
from aiaic.colorize.compose import join_full_resolution, luminance_uint8
from aiaic.errors import InputError
from aiaic.eval.evaluate import EvalConfig, run_eval
from aiaic.eval.grid import HEADER, TILE
from aiaic.eval.protocol import center_crop, protocol_image, resize_short_side
from aiaic.runs.inference import load_inference

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def eval_split(tmp_path_factory) -> Path:
    """val and ood splits (no test split); the first video of each split has no audio."""
    return write_split_dir(
        tmp_path_factory.mktemp("evalsplit") / "split",
        classes=3,
        videos_per_class=2,
        seconds=2,
        size=40,
        shards_per_split=2,
        ood_classes=1,
        silent_videos=1,
    )


@pytest.fixture()
def no_lpips_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))


# ---- protocol and composition ------------------------------------------------------------------


def test_protocol_resize_and_centre_crop():
    img = np.zeros((200, 300, 3), np.uint8)
    assert resize_short_side(img).shape == (256, 384, 3)
    tall = np.zeros((512, 300, 3), np.uint8)
    assert resize_short_side(tall).shape == (437, 256, 3)
    coded = np.zeros((256, 300, 3), np.uint8)
    coded[..., 0] = np.arange(300)[None, :] % 256  # column index
    coded[..., 1] = np.arange(256)[:, None]  # row index
    crop = center_crop(coded)
    assert crop.shape == (256, 256, 3)
    assert crop[0, 0, 0] == 22 and crop[0, -1, 0] == (22 + 255) % 256  # offset floor((300 - 256) / 2)
    assert crop[0, 0, 1] == 0 and crop[-1, 0, 1] == 255
    grey = protocol_image(np.full((128, 128), 77, np.uint8))
    assert grey.shape == (256, 256, 3) and np.all(grey == 77)


def test_join_reproduces_a_photo_from_its_own_lab(shared_data):
    """L + the photo's own ab through our Lab->sRGB equals the photo (skimage formulas)."""
    rgb = np.asarray(Image.open(shared_data / "images/color/skimage/coffee.png").convert("RGB"))[:120, :160]
    lab = rgb2lab(rgb)
    L = luminance_uint8(rgb[None])
    np.testing.assert_allclose(L[0, 0].numpy(), lab[..., 0], atol=1e-3)
    ab_n = torch.from_numpy(lab[..., 1:] / 110.0).permute(2, 0, 1)[None].float()
    out = join_full_resolution(L, ab_n)[0]
    assert np.abs(out.astype(int) - rgb).max() <= 1
    # an out-of-gamut colour keeps L (clipping would not): saturated blue on a bright grey
    Lb = torch.full((1, 1, 8, 8), 90.0)
    out = join_full_resolution(Lb, torch.tensor([0.0, -1.0]).reshape(1, 2, 1, 1))[0]
    assert np.abs(rgb2lab(out)[..., 0] - 90.0).max() < 0.5
    assert rgb2lab(out)[..., 2].mean() < -5  # still bluish


# ---- run_eval on a real tiny run ----------------------------------------------------------------


def test_eval_writes_tables_csv_grid_and_lists_what_is_missing(
    tmp_path, tiny_run, eval_split, no_lpips_weights
):
    out = tmp_path / "eval"
    metrics = run_eval(
        EvalConfig(
            run=tiny_run,
            shards=eval_split,
            out=out,
            device="cpu",
            batch_size=3,
            save_images=3,
            progress=False,
        )
    )
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["splits"] == ["val", "ood"] == metrics["splits"]
    # the tiny run trained the main chain only: the w/o-r model and e2e are listed with the stage they need
    assert on_disk["variants"] == ["baseline", "full", "full_missing_audio"] and on_disk["backbone"] == "unet"
    missing = on_disk["unavailable"]["variants"]
    assert "'e2e'" in missing["e2e"] and "--stage e2e" in missing["e2e"]
    for v in ("no_r", "no_r_missing_audio"):
        assert "'no_r_stage3'" in missing[v] and "--stage no_r" in missing[v]
    assert "test" in on_disk["unavailable"]["splits"]
    assert on_disk["lpips"]["available"] is False and "--lpips-weights" in on_disk["lpips"]["reason"]
    assert on_disk["protocol"]["size"] == 256
    assert on_disk["provenance"]["code"]["commit"]  # the repo's HEAD
    manifest = json.loads((eval_split / "manifest.json").read_text())
    for split in ("val", "ood"):
        for variant in on_disk["variants"]:
            m = on_disk[split][variant]
            assert set(m) >= {"psnr", "ssim", "lpips", "colorfulness", "n"}
            assert m["lpips"] is None and m["n"] == manifest["splits"][split]["samples"] == 4

    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 2 * 4 * 4  # splits x images x (3 variants + grey reference)
    for split in ("val", "ood"):
        for variant in on_disk["variants"]:
            sel = [r for r in rows if r["split"] == split and r["variant"] == variant]
            assert np.mean([float(r["psnr"]) for r in sel]) == pytest.approx(on_disk[split][variant]["psnr"])
            assert np.mean([float(r["ssim"]) for r in sel]) == pytest.approx(on_disk[split][variant]["ssim"])
            r_vals = {r["key"]: (float(r["r"]), r["has_audio"] == "True") for r in sel}
            if variant in ("baseline", "full_missing_audio"):
                assert all(r == 0.0 for r, _ in r_vals.values())
            else:  # full: relevance net, 0 without audio
                assert all((0.0 < r < 1.0) if has else r == 0.0 for r, has in r_vals.values())
        assert {r["has_audio"] for r in rows if r["split"] == split} == {"True", "False"}

    # independent check of one number: the grey reference (ab = 0) recomputed with skimage only
    samples = read_split(eval_split, "val")
    key, sample = sorted(samples.items())[0]
    gt = protocol_image(sample.image)
    lab = rgb2lab(gt)
    lab[..., 1:] = 0
    grey = np.round(lab2rgb(lab) * 255).astype(np.uint8)
    row = next(r for r in rows if r["split"] == "val" and r["variant"] == "grey_input" and r["key"] == key)
    assert float(row["psnr"]) == pytest.approx(peak_signal_noise_ratio(gt, grey, data_range=255), abs=0.05)
    assert float(row["ssim"]) == pytest.approx(
        structural_similarity(gt, grey, channel_axis=-1, data_range=255), abs=2e-3
    )
    # and the full model's prediction for that sample, recomputed through load_inference + predict
    model = load_inference(tiny_run, "full", "cpu")
    L = luminance_uint8(gt[None])
    L_n = torch.nn.functional.interpolate(
        L, size=(32, 32), mode="bilinear", antialias=True, align_corners=False
    )
    mel = model.normalize_mel(sample.mel)[None, None].float()
    ab_n, r = model.predict((L_n.clamp(0, 100) - 50) / 50, mel, torch.tensor([True]))
    pred = join_full_resolution(L, ab_n)[0]
    row = next(r for r in rows if r["split"] == "val" and r["variant"] == "full" and r["key"] == key)
    # batch of 1 here vs the evaluation's batch: float32 sums in another order can move a pixel across a
    # rounding boundary (seen: 1.2e-6 dB), so the tolerance allows a few pixel levels, nothing more
    assert float(row["psnr"]) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=255), abs=1e-3)
    assert float(row["r"]) == pytest.approx(float(r[0]), abs=1e-6)

    report = (out / "report.md").read_text()
    assert "## Table 1" in report and "## Table 2" in report and "## Protocol" in report
    # Table 1: the paper's three columns in its order (AVE = test was not in this split directory)
    assert (
        "| Method | VGGSound (val) LPIPS↓ | VGGSound (val) PSNR↑ | VGGSound (val) SSIM↑ | "
        "AVE (test) LPIPS↓ | AVE (test) PSNR↑ | AVE (test) SSIM↑ | VGGSound_OOD (ood) LPIPS↓ |"
    ) in report
    base, ood = on_disk["val"]["baseline"], on_disk["ood"]["baseline"]
    assert (
        f"| Visual-only backbone | n/a | {base['psnr']:.2f} | {base['ssim']:.4f} | n/a | n/a | n/a | "
        f"n/a | {ood['psnr']:.2f} | {ood['ssim']:.4f} |"
    ) in report
    # Table 2: one table per split, the paper's five rows, each naming its variant
    assert "### Table 2 on VGGSound (val)" in report and "### Table 2 on VGGSound_OOD (ood)" in report
    fm = on_disk["val"]["full_missing_audio"]
    assert (
        f"| Full (missing audio) (`full_missing_audio`) | n/a | {fm['psnr']:.2f} | {fm['ssim']:.4f} | "
        f"{fm['colorfulness']:.2f} | 0.00 |"
    ) in report
    assert "| w/o r (missing audio) (`no_r_missing_audio`) | n/a | n/a | n/a | n/a | n/a |" in report
    assert "variant e2e" in report and "split test" in report and "Paper (" not in report
    assert "LPIPS: ImageNet AlexNet weights not found" in report
    assert on_disk["provenance"]["code"]["commit"] in report

    grid = Image.open(out / "grids" / "val.png")
    assert grid.size == (4 * TILE, 2 * HEADER + 3 * (TILE + 18))
    g = np.asarray(grid.convert("RGB"))
    first_tile = g[2 * HEADER : 2 * HEADER + TILE, :TILE].astype(int)  # the grey input column
    assert np.abs(first_tile[..., 0] - first_tile[..., 1]).max() <= 2  # grey


def test_eval_cli_reads_eval_table_and_reports_errors(tmp_path, tiny_run, eval_split, no_lpips_weights):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[eval]\nvariants = ["baseline", "e2e"]\nsave_images = 1\nbatch_size = 2\n')
    out = tmp_path / "cli"
    r = runner.invoke(
        app,
        [
            "--run",
            str(tiny_run),
            "--shards",
            str(eval_split),
            "--split",
            "ood",
            "--out",
            str(out),
            "--config",
            str(recipe),
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["splits"] == ["ood"] and m["variants"] == ["baseline"] and "e2e" in m["unavailable"]["variants"]
    assert m["config"]["save_images"] == 1 and m["config"]["batch_size"] == 2
    assert Image.open(out / "grids" / "ood.png").size[1] == 2 * HEADER + TILE + 18

    r = runner.invoke(app, ["--run", str(tiny_run), "--shards", str(tmp_path), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "manifest.json" in _flat(r.output) and "not found" in _flat(r.output)
    empty = tmp_path / "empty_run"
    empty.mkdir()
    r = runner.invoke(app, ["--run", str(empty), "--shards", str(eval_split), "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "none of the variants" in _flat(r.output) and "stage3" in _flat(r.output)
    r = runner.invoke(
        app,
        [
            "--run",
            str(tiny_run),
            "--shards",
            str(eval_split),
            "--split",
            "test",
            "--out",
            str(tmp_path / "z"),
        ],
    )
    assert r.exit_code == 2 and "test" in _flat(r.output) and "not in" in _flat(r.output)
    r = runner.invoke(
        app,
        [
            "--run",
            str(tiny_run),
            "--shards",
            str(eval_split),
            "--variants",
            "colour",
            "--out",
            str(tmp_path / "w"),
        ],
    )
    assert r.exit_code == 2 and "unknown variants" in _flat(r.output)


def test_report_marks_lpips_from_unofficial_weights(tmp_path, tiny_run, eval_split, monkeypatch):
    """With an AlexNet-shaped file of random values, LPIPS is computed but marked as not comparable."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    weights = tmp_path / "alexnet-random.pth"
    torch.manual_seed(0)
    torch.save(
        {
            k: v
            for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
            if k.startswith("features")
        },
        weights,
    )
    out = tmp_path / "lp"
    m = run_eval(
        EvalConfig(
            run=tiny_run,
            shards=eval_split,
            out=out,
            splits=("val",),
            variants=("baseline",),
            lpips_weights=weights,
            save_images=0,
            progress=False,
            device="cpu",
        )
    )
    assert m["lpips"]["available"] and m["lpips"]["official_checksum"] is False
    assert 0.0 < m["val"]["baseline"]["lpips"] < 1.0
    report = (out / "report.md").read_text()
    assert f"{m['val']['baseline']['lpips']:.4f}†" in report and "not comparable" in report
    assert not (out / "grids").exists()


def test_eval_names_a_missing_shard(tmp_path, tiny_run, eval_split):
    broken = tmp_path / "split"
    broken.mkdir()
    manifest = json.loads((eval_split / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="val-000000.tar"):
        run_eval(EvalConfig(run=tiny_run, shards=broken, out=tmp_path / "o", splits=("val",), progress=False))


def test_report_prints_the_papers_numbers_beside_a_paper_backbone(
    tmp_path, tiny_run, eval_split, no_lpips_weights
):
    """A run on DDColor (the paper's "DDC") gets the paper's rows in Table 1, columns in Table 2 (Table 2
    has no OOD column: "-") and deltas beside ours. The old variant name missing_audio still works."""
    from aiaic.eval.report import render_report

    cfg = EvalConfig(
        run=tiny_run,
        shards=eval_split,
        out=tmp_path / "e",
        splits=("val",),
        variants=("baseline", "missing_audio", "full"),
        save_images=0,
        progress=False,
        device="cpu",
    )
    assert cfg.variants == ("baseline", "full_missing_audio", "full")
    metrics = run_eval(cfg)
    assert "Paper (" not in render_report(metrics)  # the U-Net is not a backbone of the paper

    metrics["backbone"] = "ddcolor-tiny"
    text = render_report(metrics)
    assert "| Paper (DDC): Visual-only backbone | 0.1450 | 23.91 | 0.9250 | 0.1320 |" in text
    assert (
        "| Row (variant) | val LPIPS↓ | val PSNR↑ | val SSIM↑ | val colour | val mean r | paper DDC LPIPS↓"
    ) in text
    row = next(line for line in text.splitlines() if line.startswith("| w/o r (missing audio) (`"))
    assert row.endswith("| 0.2010 | 23.40 | 0.8900 |")
    delta = next(line for line in text.splitlines() if line.startswith("| Audio-infused"))
    assert "| +0.54 |" in delta  # the paper's DDC full - baseline PSNR on VGGSound
