"""`aiaic-data inspect`: counts per split and category, failure classes, a contact sheet (right pixels)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from support.split_fixtures import make_raw, raw_video
from typer.testing import CliRunner

from aiaic.cli.data import app
from aiaic.data.inspect import InspectConfig, grey_of, inspect_data
from aiaic.data.split import SplitConfig, run_split
from aiaic.errors import InputError


@pytest.fixture
def raw(tmp_path):
    vids = [raw_video("ave", f"a{c}{s}{i}", f"Cat{c}", s, seconds=2) for c in range(3)
            for s in ("train", "test") for i in range(3)]  # fmt: skip
    vids.append(raw_video("ave", "quiet", "Cat0", "train", seconds=2, audio=False))
    root = make_raw(tmp_path / "raw", vids)
    (root / "failures-00000.jsonl").write_text(
        "\n".join(json.dumps(r) for r in [
            {"source": "Cat0/x.mp4", "error": "too_short", "message": "video is 0.4 s long"},
            {"source": "Cat1/y.mp4", "error": "too_short", "message": "video is 0.2 s long"},
            {"source": "Cat2/z.mp4", "error": "decode_error", "message": "invalid data"},
        ]) + "\n"
    )  # fmt: skip
    return root


def test_inspect_raw_counts_failures_and_sheet_pixels(raw, tmp_path):
    rep = inspect_data(InspectConfig(dir=raw, output=tmp_path / "sheet.png", samples=4, seed=1))
    assert rep.kind == "raw"
    assert rep.counts.loc["Cat0", "train"] == 3 * 2 + 2 and rep.counts.loc["Cat1", "test"] == 6
    assert rep.split_totals["train"] == {"samples": 20, "videos": 10, "categories": 3}
    assert dict(rep.failures) == {"too_short": 2, "decode_error": 1}
    assert "invalid data" in rep.failure_examples["decode_error"]
    assert len(rep.sheet_keys) == 4 == len(set(rep.sheet_keys))
    sheet = np.asarray(Image.open(rep.sheet).convert("RGB")).astype(int)
    assert sheet.shape[0] > 4 * 100 and sheet.shape[1] > 400
    # each drawn frame's colour (make_raw: R = 40 + 30 * label id, G = 40 + 20 * segment) is on the sheet,
    # and so is its grey version (CIE L as a grey level)
    for key in rep.sheet_keys:
        label_id = int(key[1]) if key.startswith("a") else 0  # a<c>...: Cat<c>; 'quiet' is Cat0
        colour = np.array([40 + 30 * label_id, 40 + 20 * int(key[-2:]), 120])
        assert (np.abs(sheet - colour).max(axis=-1) <= 2).sum() > 200, key
        grey = round(grey_of(colour[None, None].astype(np.uint8))[0, 0] / 100 * 255)
        assert (np.abs(sheet - grey).max(axis=-1) <= 2).sum() > 200, key
    # another seed draws other samples; the same seed the same ones
    again = inspect_data(InspectConfig(dir=raw, output=tmp_path / "s2.png", samples=4, seed=1))
    other = inspect_data(InspectConfig(dir=raw, output=tmp_path / "s3.png", samples=4, seed=2))
    assert again.sheet_keys == rep.sheet_keys != other.sheet_keys


def rep_index(out):
    import pandas as pd

    return pd.read_csv(out / "index.csv", dtype=str, keep_default_na=False)


def test_grey_is_cie_l():
    img = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], np.uint8)
    np.testing.assert_allclose(grey_of(img)[0], [100.0, 0.0, 53.24], atol=0.01)


def test_inspect_split_folder_and_cli(raw, tmp_path):
    out = tmp_path / "split"
    run_split(SplitConfig(src=(raw,), out=out, ood=1, seed=0, ranks=1, workers=1))
    manifest = json.loads((out / "manifest.json").read_text())
    rep = inspect_data(InspectConfig(dir=out, samples=3, split="test"))
    assert rep.kind == "split" and rep.sheet == out / "contact_sheet.png" and rep.sheet.is_file()
    for name, info in manifest["splits"].items():
        assert rep.split_totals[name]["samples"] == info["samples"]
        assert rep.split_totals[name]["videos"] == info["videos"]
    assert sum(rep.failures.values()) == 3  # read from the source extraction folder
    test_keys = {
        k for k, sp in zip(rep_index(out)["key"], rep_index(out)["split"], strict=True) if sp == "test"
    }
    assert set(rep.sheet_keys) <= test_keys and len(rep.sheet_keys) == 3
    res = CliRunner().invoke(app, ["inspect", str(out), "-o", str(tmp_path / "cli.png"), "-n", "2"])
    assert res.exit_code == 0, res.output
    assert "too_short: 2" in res.output and "contact sheet (2 samples)" in res.output
    assert (tmp_path / "cli.png").is_file()
    res = CliRunner().invoke(app, ["inspect", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "folder not found" in " ".join(res.output.split())
    with pytest.raises(InputError, match="no samples in split 'val'"):
        inspect_data(InspectConfig(dir=out, samples=2, split="val"))
