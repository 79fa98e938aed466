"""ONNX export and the ONNX Runtime engine: matching PyTorch, int8 within its bound, bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from support.colorize_fixtures import shared_tiny_run
from typer.testing import CliRunner

pytest.importorskip("onnxruntime", reason="the onnx extra (onnx, onnxruntime) is not installed")

from aiaic.cli.colorize import app as colorize_app  # noqa: E402
from aiaic.colorize.audio import read_audio_window  # noqa: E402
from aiaic.colorize.image import read_image  # noqa: E402
from aiaic.colorize.strips import model_input_strips  # noqa: E402
from aiaic.engine.export import ExportError, export_onnx  # noqa: E402
from aiaic.engine.ort import load_onnx  # noqa: E402
from aiaic.engine.quantize import int8_cost, quantize_export  # noqa: E402
from aiaic.engine.select import _check_batch  # noqa: E402
from aiaic.errors import InputError  # noqa: E402
from aiaic.runs.inference import load_backbone, load_inference  # noqa: E402

PHOTOS = ("1895BikeMaidens.jpg", "ZebraCarriageLondon1900.jpg", "1909Chicago.jpg")
CHAPLIN = "clips/moviepy/chaplin_bw_film.mp4"
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return shared_tiny_run(tmp_path_factory)


def _photos(shared_data) -> list[np.ndarray]:
    return [read_image(shared_data / "images" / "bw" / "deoldify" / p) for p in PHOTOS]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """DDColor's architecture, small (ddcolor-mini), random weights, exported at 64 px."""
    torch.manual_seed(0)
    model = load_backbone("ddcolor-mini", None, 64, "cpu")
    return model, tmp_path_factory.mktemp("onnx") / "mini"


def test_backbone_exported_and_run_by_onnxruntime_matches_torch(mini, shared_data):
    model, folder = mini
    photos = _photos(shared_data)
    report = export_onnx(model, folder, _check_batch(photos, 64))
    assert report.files == ["color.onnx"] and report.max_diff < 1e-3 and report.frames == 3
    meta = report.metadata
    assert (
        meta["backbone"] == "ddcolor-mini"
        and meta["image_size"] == 64
        and meta["checksum"].startswith("sha256:")
    )
    engine = load_onnx(folder, expect_checksum=meta["checksum"])
    # dynamic batch, height and width: another batch size and a size other than the export's
    for size in (64, 96):
        L_n = torch.cat([model_input_strips(p[None], size) for p in photos])
        ref, _ = model.predict(L_n)
        got, r = engine.predict(L_n)
        assert got.shape == (3, 2, size, size) and torch.equal(r, torch.zeros(3))
        assert (got - ref).abs().max() < 1e-3
        assert ref.abs().mean() > 1e-3  # the model predicts colours: the comparison is not of zeros
    with pytest.raises(ValueError, match="multiples of 32"):
        engine.predict(torch.zeros(1, 1, 40, 64))


def test_export_refused_above_its_bound_writes_nothing(mini, shared_data, tmp_path):
    model, _ = mini
    with pytest.raises(ExportError, match=r"differ from PyTorch's by up to .* above the bound -1 by"):
        export_onnx(model, tmp_path / "never", _check_batch(_photos(shared_data)[:1], 64), tolerance=-1.0)
    assert not (tmp_path / "never").exists() and list(tmp_path.iterdir()) == []


def test_bad_or_mismatched_onnx_refused(mini, shared_data, tmp_path):
    import onnx

    model, folder = mini
    if not (folder / "color.onnx").is_file():
        export_onnx(model, folder, _check_batch(_photos(shared_data)[:1], 64))
    with pytest.raises(InputError, match="holds no color.onnx"):
        load_onnx(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "color.onnx").write_bytes(b"not a model at all")
    with pytest.raises(InputError, match=r"bad/color.onnx: not an ONNX model ONNX Runtime can run"):
        load_onnx(tmp_path / "bad")
    with pytest.raises(InputError, match="exported from other weights"):
        load_onnx(folder, expect_checksum="sha256:0000")
    (tmp_path / "plain").mkdir()  # a valid ONNX model, not from aiaic-export
    proto = onnx.load(str(folder / "color.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain" / "color.onnx"))
    with pytest.raises(InputError, match="has no aiaic metadata: not written by aiaic-export"):
        load_onnx(tmp_path / "plain")


def test_int8_within_its_measured_bound(mini, shared_data, tmp_path):
    """Dynamic int8 (MatMul/Gemm weights) against fp32 on real photos: the colours move by a little,
    measured here as PSNR of the RGB output (bound >= 35 dB; 92.8 dB measured with these random weights,
    whose colours are faint: the real DDColor-T cost is in bench_engines)."""
    model, folder = mini
    photos = _photos(shared_data)
    if not (folder / "color.onnx").is_file():
        export_onnx(model, folder, _check_batch(photos, 64))
    int8_dir = quantize_export(folder, tmp_path / "int8")
    int8 = load_onnx(int8_dir)
    assert json.loads(int8.graphs.color.get_modelmeta().custom_metadata_map["aiaic"])["precision"] == "int8"
    ops = {n.op_type for n in __import__("onnx").load(str(int8_dir / "color.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops  # really quantized
    cost = int8_cost(load_onnx(folder), int8, photos)
    assert 35.0 <= cost.psnr_db < 100.0  # changed, but little
    assert abs(cost.colorfulness_int8 - cost.colorfulness_fp32) < 0.1 * cost.colorfulness_fp32 + 0.5


def test_run_with_audio_guidance_matches_torch(tiny_run, shared_data, tmp_path):
    model = load_inference(tiny_run, "full", "cpu")
    pcm, _ = read_audio_window(shared_data / CHAPLIN, None, model.mel_config)
    photos = _photos(shared_data)
    report = export_onnx(model, tmp_path / "run", _check_batch(photos, model.image_size), pcm)
    assert report.files == ["color.onnx", "guidance.onnx"] and report.max_diff < 1e-3
    engine = load_onnx(tmp_path / "run")
    L_n = torch.cat([model_input_strips(p[None], model.image_size) for p in photos])
    audio = model.audio_input([pcm, pcm, None])
    has = torch.tensor([True, True, False])
    ref_ab, ref_r = model.predict(L_n, audio, has)
    ab, r = engine.predict(L_n, audio, has)
    assert ref_r[0] > 0 and ref_r[2] == 0 and torch.allclose(r, ref_r, atol=1e-5)
    assert (ab - ref_ab).abs().max() < 1e-3
    c_ref, _ = model.guidance(L_n, audio, has)
    c, _ = engine.guidance(L_n, audio, has)
    assert torch.allclose(c, c_ref, atol=1e-5)


@pytest.mark.slow
def test_cli_onnxruntime_colours_the_chaplin_film_with_its_soundtrack(
    tiny_run, shared_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("AIAIC_CACHE", str(tmp_path / "cache"))
    src = shared_data / CHAPLIN
    outs = {}
    for engine in ("onnxruntime", "torch"):
        outs[engine] = tmp_path / f"{engine}.mp4"
        args = [
            str(src),
            "--run",
            str(tiny_run),
            "-o",
            str(outs[engine]),
            "--engine",
            engine,
            "--batch-size",
            "16",
        ]
        result = runner.invoke(colorize_app, args)
        assert result.exit_code == 0, result.output
    assert list((tmp_path / "cache").glob("onnx/*/fp32/color.onnx"))  # exported (and checked) on first use
    with av.open(str(src)) as a, av.open(str(outs["onnxruntime"])) as b, av.open(str(outs["torch"])) as t:
        assert len(b.streams.audio) == 1  # the soundtrack copied
        assert b.streams.audio[0].codec_context.name == a.streams.audio[0].codec_context.name
        assert b.duration == pytest.approx(a.duration, abs=50_000)
        fb = [f.to_ndarray(format="rgb24") for f in b.decode(video=0)]
        ft = [f.to_ndarray(format="rgb24") for f in t.decode(video=0)]
    assert len(fb) == len(ft) == 241
    for k in (0, 120, 240):  # same colours as the torch engine (up to the float rounding and H.264)
        assert np.abs(fb[k].astype(int) - ft[k].astype(int)).mean() < 0.5
    summary = json.loads((tmp_path / "colorize-summary.json").read_text())
    assert summary["config"]["engine"] == "torch"  # the last run's; the film's r per second below
    assert summary["videos"][0]["guided_seconds"] > 0


def test_cli_export_backbone_fp32_and_int8(shared_data, tmp_path):
    from aiaic.cli.export import app as export_app
    from aiaic.models.backbones import build_backbone
    from aiaic.models.config import ModelConfig

    torch.manual_seed(0)
    net = build_backbone("ddcolor-mini", ModelConfig(backbone="ddcolor-mini"))
    weights = tmp_path / "mini.pth"
    torch.save({"params": net.state_dict()}, weights)
    photo = shared_data / "images" / "bw" / "deoldify" / PHOTOS[0]
    base = ["--backbone", "ddcolor-mini", "--backbone-weights", str(weights), "--image-size", "64"]
    result = runner.invoke(export_app, [*base, "-o", str(tmp_path / "fp32"), "--frames", str(photo)])
    assert result.exit_code == 0, result.output
    assert "ONNX vs PyTorch on 1 frames: max |d ab_n|" in " ".join(result.output.split())
    meta = json.loads(load_onnx(tmp_path / "fp32").graphs.color.get_modelmeta().custom_metadata_map["aiaic"])
    assert meta["backbone"] == "ddcolor-mini" and meta["variant"] == "baseline" and meta["image_size"] == 64
    again = runner.invoke(export_app, [*base, "-o", str(tmp_path / "fp32"), "--frames", str(photo)])
    assert again.exit_code == 2 and "exists and is not empty; pass --overwrite" in " ".join(
        again.output.split()
    )
    result = runner.invoke(export_app, [*base, "-o", str(tmp_path / "int8"), "--precision", "int8"])
    assert result.exit_code == 0, result.output
    assert "int8 vs fp32 on 1 frames: PSNR" in " ".join(result.output.split())  # the built-in picture
    assert (tmp_path / "int8" / "color.onnx").is_file()
