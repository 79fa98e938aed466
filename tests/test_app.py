"""aiaic-app over plain HTTP, against a real server process: `POST /api/colorize` gives the PNG
`aiaic-colorize` writes (byte for byte) and r in a header; films keep frames, size and soundtrack;
jobs queue in order and can be cancelled; bad inputs get a clear message and the server keeps serving."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest
from support.app_fixtures import (
    APP_FLAGS,
    LIMIT_MB,
    AppServer,
    lab,
    mean_chroma,
    reference_colorize,
    shared_server,
    write_audio_only,
)
from support.fixtures_av import make_clip

requests = pytest.importorskip("requests", reason="the app tests need requests (pip install requests)")
pytest.importorskip("fastapi", reason='aiaic-app needs its extra: pip install "aiaic[app]"')

PHOTO = "images/bw/skimage/camera.png"
SOUND = "audio/gcompris/farm_animals/cow.ogg"
CHAPLIN = "clips/moviepy/chaplin_bw_film.mp4"


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory, pytestconfig):
    return shared_server(pytestconfig, tiny_run, tmp_path_factory.mktemp("app"), *APP_FLAGS)


def _post(url: str, files: dict, data: dict | None = None, endpoint: str = "api/colorize"):
    opened = {k: (Path(v).name, open(v, "rb")) for k, v in files.items()}  # noqa: SIM115
    try:
        return requests.post(url + endpoint, files=opened, data=data or {}, timeout=300)
    finally:
        for _, f in opened.values():
            f.close()


def _wait(url: str, job_id: str, states: tuple[str, ...], timeout: float = 120.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        job = requests.get(f"{url}api/jobs/{job_id}", timeout=10).json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {states}: {job}")


def test_photo_with_sound_is_the_png_aiaic_colorize_writes(server, shared_data, tiny_run, tmp_path):
    photo, sound = shared_data / PHOTO, shared_data / SOUND
    resp = _post(server.url, {"image": photo, "audio": sound})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    ref = reference_colorize(tiny_run, photo, tmp_path / "ref.png", "--audio", str(sound))
    # PNG bytes, not only pixels: the same pixels through the same writer, nothing re-encoded on the way
    assert resp.content == ref.read_bytes()
    summary = json.loads((tmp_path / "colorize-summary.json").read_text())
    assert float(resp.headers["X-Aiaic-R"]) == pytest.approx(summary["images"][0]["r"], abs=1e-6)
    assert resp.headers["X-Aiaic-Guidance"] == "audio"
    assert 0.0 < float(resp.headers["X-Aiaic-R"]) <= 1.0

    out = tmp_path / "app.png"
    out.write_bytes(resp.content)
    got, grey = lab(out), lab(photo)
    assert got.shape == grey.shape
    assert np.abs(got[..., 0] - grey[..., 0]).max() < 0.6  # luminance kept (uint8 rounding only)
    assert mean_chroma(got) > mean_chroma(grey) + 2.0


def test_audio_off_is_aiaic_colorize_no_audio(server, shared_data, tiny_run, tmp_path):
    photo, sound = shared_data / PHOTO, shared_data / SOUND
    resp = _post(server.url, {"image": photo, "audio": sound}, {"no_audio": "true"})
    assert resp.status_code == 200, resp.text
    assert float(resp.headers["X-Aiaic-R"]) == 0.0
    assert resp.headers["X-Aiaic-Guidance"] == "disabled"
    ref = reference_colorize(tiny_run, photo, tmp_path / "ref.png", "--no-audio")
    assert resp.content == ref.read_bytes()
    with_sound = _post(server.url, {"image": photo, "audio": sound})
    assert with_sound.content != resp.content  # the sound does change the colours


def test_film_keeps_frames_size_and_soundtrack_with_r_per_second(server, tmp_path):
    spec = make_clip(tmp_path / "film.mp4", seconds=3, fps=10, width=96, height=64)
    resp = _post(server.url, {"video": spec.path})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "video/mp4"
    assert 'filename="film_colorized.mp4"' in resp.headers["content-disposition"]
    per_second = [float(x) for x in resp.headers["X-Aiaic-R-Per-Second"].split(",")]
    assert len(per_second) == 3 and all(0.0 < r <= 1.0 for r in per_second)
    assert float(resp.headers["X-Aiaic-R"]) == pytest.approx(np.mean(per_second), abs=0.05)
    out = tmp_path / "out.mp4"
    out.write_bytes(resp.content)
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1
        assert sum(1 for p in c.demux(c.streams.audio[0]) if p.size) > 0
    assert len(frames) == len(spec.frame_times)
    assert frames[0].shape == (spec.height, spec.width, 3)


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def test_film_with_a_dropped_sound_is_aiaic_colorize_with_audio(server, shared_data, tiny_run, tmp_path):
    spec = make_clip(tmp_path / "film.mp4", seconds=2, fps=10, width=96, height=64)
    sound = shared_data / SOUND
    resp = _post(server.url, {"video": spec.path, "audio": sound})
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Aiaic-Guidance"] == "audio"
    assert len(resp.headers["X-Aiaic-R-Per-Second"].split(",")) == 2
    out = tmp_path / "app.mp4"
    out.write_bytes(resp.content)
    ref = reference_colorize(tiny_run, spec.path, tmp_path / "ref" / "film.mp4", "--audio", str(sound))
    got, want = _decoded(out), _decoded(ref)
    assert len(got) == len(want) == len(spec.frame_times)
    # the colours fed to the encoder are the same, but libx264's output is not byte-stable from one run
    # to the next (two runs of aiaic-colorize itself differ by up to ~11 levels in a few blocks)
    for a, b in zip(got, want, strict=True):
        assert np.abs(a.astype(np.int16) - b).mean() < 0.5


def test_film_without_a_soundtrack_is_coloured_by_the_picture_alone(server, tmp_path):
    spec = make_clip(tmp_path / "silent.mp4", seconds=2, fps=10, width=64, height=48, sample_rate=None)
    resp = _post(server.url, {"video": spec.path})
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Aiaic-Guidance"] == "missing"
    assert [float(r) for r in resp.headers["X-Aiaic-R-Per-Second"].split(",")] == [0.0, 0.0]
    out = tmp_path / "out.mp4"
    out.write_bytes(resp.content)
    with av.open(str(out)) as c:
        assert not c.streams.audio
    assert len(_decoded(out)) == len(spec.frame_times)


def test_second_upload_is_queued_and_a_running_film_can_be_cancelled(server, shared_data):
    film = _post(server.url, {"media": shared_data / CHAPLIN}, endpoint="api/jobs")
    assert film.status_code == 202, film.text
    film_id = film.json()["id"]
    photo = _post(server.url, {"media": shared_data / PHOTO}, endpoint="api/jobs").json()
    third = _post(server.url, {"media": shared_data / PHOTO}, endpoint="api/jobs").json()
    running = _wait(server.url, film_id, ("running",))
    assert running["total_frames"] == 241
    queued = requests.get(f"{server.url}api/jobs/{photo['id']}", timeout=10).json()
    assert queued["state"] == "queued" and queued["position"] == 1
    assert requests.get(f"{server.url}api/jobs/{third['id']}", timeout=10).json()["position"] == 2

    dropped = requests.post(f"{server.url}api/jobs/{third['id']}/cancel", timeout=10).json()
    assert dropped["state"] == "cancelled"
    t0 = time.monotonic()
    while requests.get(f"{server.url}api/jobs/{film_id}", timeout=10).json()["done_frames"] == 0:
        assert time.monotonic() - t0 < 60
        time.sleep(0.05)
    requests.post(f"{server.url}api/jobs/{film_id}/cancel", timeout=10)
    stopped = _wait(server.url, film_id, ("cancelled", "done", "failed"))
    assert stopped["state"] == "cancelled"
    assert 0 < stopped["done_frames"] < 241
    assert requests.get(f"{server.url}api/jobs/{film_id}/result", timeout=10).status_code == 400

    done = _wait(server.url, photo["id"], ("done", "failed", "cancelled"))  # the queued photo still runs
    assert done["state"] == "done"
    png = requests.get(server.url + done["result_url"].lstrip("/"), timeout=10)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert _wait(server.url, third["id"], ("cancelled",))["done_frames"] == 0


def test_server_listens_on_localhost_and_refuses_a_chunked_upload_over_the_limit(server):
    assert server.url.startswith("http://127.0.0.1:")

    def chunks():  # no Content-Length: the limit is enforced as the body streams in
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'
        for _ in range(int(LIMIT_MB) + 2):
            yield b"\0" * 2**20
        yield b"\r\n--x--\r\n"

    resp = requests.post(
        server.url + "api/colorize",
        data=chunks(),
        timeout=60,
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert resp.status_code == 413
    assert (
        resp.json()["error"]
        == "upload too large: larger, over the limit of 3 MiB (aiaic-app --max-upload-mb)"
    )
    assert requests.get(server.url + "api/info", timeout=10).status_code == 200

    resp = requests.post(
        server.url + "api/colorize",
        data=b"\0" * 100,
        timeout=10,
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert resp.status_code == 400 and resp.json()["error"].startswith("upload: the form cannot be read")


def test_cli_without_a_model_says_what_is_missing():
    from typer.testing import CliRunner

    from aiaic.cli.app import app

    res = CliRunner().invoke(app, ["--port", "0"])
    assert res.exit_code == 2
    out = " ".join(res.output.split())
    assert "--run RUN (a training run directory) or --backbone NAME" in out and "is required" in out


def test_bad_inputs_get_a_clear_message_and_the_server_keeps_serving(server, shared_data, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a picture\n" * 50)
    resp = _post(server.url, {"image": text})
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("notes.txt: is not an image or a video")
    assert str(tmp_path) not in resp.text and "upload.bin" not in resp.text

    sound_only = write_audio_only(tmp_path / "tone.m4a")
    resp = _post(server.url, {"video": sound_only})
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("tone.m4a: has no video stream")

    resp = _post(server.url, {"image": shared_data / PHOTO, "audio": text})
    assert resp.status_code == 400
    assert resp.json()["error"].startswith(
        ("notes.txt: has no audio stream", "notes.txt: is not a sound file")
    )

    short = shared_data / "audio/gcompris/farm_animals/dog.ogg"  # 0.9 s: fails in the job, not at upload
    resp = _post(server.url, {"image": shared_data / PHOTO, "audio": short})
    assert resp.status_code == 422
    assert resp.json()["error"] == "dog.ogg: audio is 0.90 s long, shorter than the 1 s window"

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * int((LIMIT_MB + 1) * 2**20))
    resp = _post(server.url, {"image": big})
    assert resp.status_code == 413
    assert "over the limit of 3 MiB" in resp.json()["error"]

    resp = requests.post(server.url + "api/colorize", data={"no_audio": "true"}, timeout=10)
    assert resp.status_code == 400 and "no file in the form field 'image' or 'video'" in resp.json()["error"]

    assert server.alive()
    assert requests.get(server.url + "api/info", timeout=10).json()["max_upload_bytes"] == int(
        LIMIT_MB * 2**20
    )
    ok = _post(server.url, {"image": shared_data / PHOTO})
    assert ok.status_code == 200 and ok.headers["X-Aiaic-Guidance"] == "missing"


def test_backbone_alone_is_the_png_aiaic_colorize_writes(shared_data, tmp_path):
    """`aiaic-app --backbone ddcolor-mini --backbone-weights FILE`: no run, no audio; the PNG equals
    `aiaic-colorize --backbone ...` with the same file, byte for byte."""
    import torch
    from typer.testing import CliRunner

    from aiaic.cli.colorize import app as colorize_app
    from aiaic.models.backbones import build_backbone
    from aiaic.models.config import ModelConfig

    torch.manual_seed(3)
    weights = tmp_path / "ddcolor_mini.pth"
    torch.save(
        {"params": build_backbone("ddcolor-mini", ModelConfig(backbone="ddcolor-mini")).state_dict()}, weights
    )
    flags = ("--backbone", "ddcolor-mini", "--backbone-weights", str(weights), "--image-size", "64")
    photo = shared_data / PHOTO
    ref = tmp_path / "ref.png"
    res = CliRunner().invoke(colorize_app, [str(photo), *flags, "-o", str(ref), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    srv = AppServer(None, tmp_path / "app.log", *flags)
    try:
        info = requests.get(srv.url + "api/info", timeout=10).json()
        resp = _post(srv.url, {"image": photo})
        assert resp.status_code == 200, resp.text
        assert resp.content == ref.read_bytes()
        assert float(resp.headers["X-Aiaic-R"]) == 0.0
        out = tmp_path / "app.png"
        out.write_bytes(resp.content)
        assert lab(out).shape == lab(photo).shape
        with_sound = _post(srv.url, {"image": photo, "audio": shared_data / SOUND})
        assert with_sound.status_code != 200  # a backbone alone hears nothing: refused, not ignored
    finally:
        srv.stop()
    assert "ddcolor-mini" in json.dumps(info)
