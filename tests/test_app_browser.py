"""aiaic-app in a real browser (Debian's headless Chromium driven by Playwright) against a real server:
a photo and a sound give a coloured result with the photo's size and luminance, equal to
`aiaic-colorize`'s; switching the sound off gives `aiaic-colorize --no-audio`'s; a film gives a film
with its frames and soundtrack and a per-second r plot; a long film shows progress and is cancelled;
bad inputs get a message on the page; the page fetches nothing from anywhere but the server.

The screenshot in the README comes from here: AIAIC_UPDATE_SCREENSHOT=1 writes docs/app.png."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
from support.app_fixtures import (
    APP_FLAGS,
    LIMIT_MB,
    ROOT,
    lab,
    mean_chroma,
    reference_colorize,
    shared_server,
    write_audio_only,
)
from support.fixtures_av import make_clip

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(
        f"no browser: {CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need playwright (pip install playwright)"
)
requests = pytest.importorskip("requests", reason="the app tests need requests (pip install requests)")
pytest.importorskip("fastapi", reason='aiaic-app needs its extra: pip install "aiaic[app]"')

PHOTO = "images/bw/skimage/camera.png"
SOUND = "audio/gcompris/farm_animals/cow.ogg"
CHAPLIN = "clips/moviepy/chaplin_bw_film.mp4"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",  # "Record" gets Chromium's test beeps, without asking
    "--use-fake-ui-for-media-stream",
]
WAIT_MS = 180_000


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory, pytestconfig):
    return shared_server(pytestconfig, tiny_run, tmp_path_factory.mktemp("app"), *APP_FLAGS)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """A Chromium with a new, empty profile."""
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 760},
            accept_downloads=True,
        )
        yield ctx
        ctx.close()


@pytest.fixture
def page(context, server):
    """The app's page; asserts at the end that every request it made went to the server."""
    pg = context.new_page()
    urls: list[str] = []
    pg.on("request", lambda r: urls.append(r.url))
    pg.goto(server.url)
    pg.wait_for_function("document.getElementById('model-info').textContent.length > 0")
    yield pg
    pg.close()
    foreign = [u for u in urls if not u.startswith((server.url, "blob:", "data:"))]
    assert urls and not foreign, f"the page fetched from elsewhere: {foreign}"


def _wait_result(page, previous: str | None = None) -> str:
    """Wait until the result pane shows a loaded result of a job other than `previous`; its job id."""
    page.wait_for_function(
        """(prev) => {
            const el = document.querySelector('#result-frame [data-job]');
            if (!el || el.dataset.job === prev) return false;
            return el.tagName === 'IMG' ? el.complete && el.naturalWidth > 0 : true;
        }""",
        arg=previous,
        timeout=WAIT_MS,
    )
    return page.get_attribute("#result-frame [data-job]", "data-job")


def _download(page, tmp_path: Path) -> Path:
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    out = tmp_path / download.suggested_filename
    download.save_as(out)
    return out


def test_photo_and_sound_then_sound_off(page, server, shared_data, tiny_run, tmp_path):
    photo, sound = shared_data / PHOTO, shared_data / SOUND
    page.set_input_files("#media-input", str(photo))
    page.set_input_files("#audio-input", str(sound))
    page.click("#colorize")
    with_sound = _wait_result(page)
    job = requests.get(f"{server.url}api/jobs/{with_sound}", timeout=10).json()
    assert job["guidance"] == "audio" and job["audio_name"] == "cow.ogg"
    assert page.inner_text("#r-text") == f"relevance r = {job['r']:.3f}"
    assert "guided by the sound" in page.inner_text("#result-note")

    shot = ROOT / "docs" / "app.png" if os.environ.get("AIAIC_UPDATE_SCREENSHOT") else tmp_path / "app.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000

    got = _download(page, tmp_path)
    assert got.name == "camera_colorized.png"
    ref = reference_colorize(tiny_run, photo, tmp_path / "ref" / "camera.png", "--audio", str(sound))
    assert got.read_bytes() == ref.read_bytes()
    out, grey = lab(got), lab(photo)
    assert out.shape == grey.shape
    assert np.abs(out[..., 0] - grey[..., 0]).max() < 0.6
    assert mean_chroma(out) > mean_chroma(grey) + 2.0

    page.uncheck("#use-audio")
    without = _wait_result(page, with_sound)
    assert page.inner_text("#r-text") == "relevance r = 0.000"
    assert "sound switched off" in page.inner_text("#result-note")
    got_off = _download(page, tmp_path / "off")
    ref_off = reference_colorize(tiny_run, photo, tmp_path / "ref" / "camera_off.png", "--no-audio")
    assert got_off.read_bytes() == ref_off.read_bytes() != got.read_bytes()

    page.check("#use-audio")  # back on: the result already made is shown again, nothing is recomputed
    assert _wait_result(page, without) == with_sound
    assert len(requests.get(f"{server.url}api/jobs", timeout=10).json()) >= 2


def test_recorded_sound_guides_the_photo(page, server, shared_data):
    assert page.is_visible("#record")
    page.set_input_files("#media-input", str(shared_data / PHOTO))
    page.click("#record")
    page.wait_for_function(
        "document.getElementById('audio-name').textContent.startsWith('recording.webm')", timeout=30_000
    )
    page.click("#colorize")
    job = requests.get(f"{server.url}api/jobs/{_wait_result(page)}", timeout=10).json()
    assert job["audio_name"] == "recording.webm"
    assert job["guidance"] == "audio" and job["r"] > 0  # the recording was decoded and heard


def test_film_with_its_soundtrack_and_r_per_second(page, server, tmp_path):
    spec = make_clip(tmp_path / "film.mp4", seconds=3, fps=10, width=96, height=64)
    page.set_input_files("#media-input", str(spec.path))
    page.click("#colorize")
    job_id = _wait_result(page)
    job = requests.get(f"{server.url}api/jobs/{job_id}", timeout=10).json()
    assert job["guidance"] == "soundtrack"
    bars = page.eval_on_selector_all("#r-plot rect.r-bar", "els => els.map(e => Number(e.dataset.r))")
    assert bars == pytest.approx(job["r_per_second"]) and len(bars) == 3
    assert page.is_visible("#r-plot")

    got = _download(page, tmp_path)
    assert got.name == "film_colorized.mp4"
    with av.open(str(got)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    with av.open(str(got)) as c:
        assert sum(1 for p in c.demux(c.streams.audio[0]) if p.size) > 0
    assert len(frames) == len(spec.frame_times)
    assert frames[0].shape == (spec.height, spec.width, 3)


def test_long_film_shows_progress_and_is_cancelled(page, server, shared_data):
    page.set_input_files("#media-input", str(shared_data / CHAPLIN))
    page.click("#colorize")
    page.wait_for_function(
        "/colourizing: frame [1-9][0-9]* of 241/.test(document.getElementById('progress-text').textContent)",
        timeout=WAIT_MS,
    )
    page.click("#cancel")
    page.wait_for_function("document.body.dataset.state === 'cancelled'", timeout=WAIT_MS)
    assert page.inner_text("#message").startswith("Cancelled (cancelled after")
    assert not page.is_visible("#progress-box")


def test_bad_inputs_get_a_message_on_the_page(page, server, shared_data, tmp_path):
    def message_after(path: Path) -> str:
        page.evaluate("document.getElementById('message').textContent = ''")
        page.set_input_files("#media-input", str(path))
        page.click("#colorize")
        page.wait_for_function("document.getElementById('message').className === 'error'", timeout=WAIT_MS)
        return page.inner_text("#message")

    text = tmp_path / "notes.txt"
    text.write_text("not a picture\n" * 50)
    assert message_after(text).startswith("notes.txt: is not an image or a video")
    assert message_after(write_audio_only(tmp_path / "tone.m4a")).startswith("tone.m4a: has no video stream")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * int((LIMIT_MB + 1) * 2**20))
    assert message_after(big) == f"Upload too large: 4.0 MiB, over the server's limit of {LIMIT_MB:.1f} MiB."

    # the server refuses it too (a script, or a page that skips the check), and the browser gets the answer
    status, body = page.evaluate(
        """async (n) => {
            const form = new FormData();
            form.append('media', new Blob([new Uint8Array(n)]), 'big.png');
            const r = await fetch('/api/jobs', {method: 'POST', body: form});
            return [r.status, (await r.json()).error];
        }""",
        int((LIMIT_MB + 1) * 2**20),
    )
    assert status == 413 and "over the limit of 3 MiB" in body

    page.set_input_files("#media-input", str(shared_data / PHOTO))  # and the server still serves
    page.click("#colorize")
    _wait_result(page)
    assert page.inner_text("#message") == ""
