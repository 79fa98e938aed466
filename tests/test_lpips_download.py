"""LPIPS weights: fetched into the torch hub cache when missing (unless offline), the way torchvision
does, from a local HTTP server on 127.0.0.1 in this test (no network)."""

from __future__ import annotations

import functools
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torchvision

from aiaic.eval import perceptual
from aiaic.eval.metrics import load_lpips


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server(tmp_path):
    """(base URL, served folder): an HTTP server on 127.0.0.1 serving `served/`, stopped afterwards."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _random_alexnet(folder: Path, prefix: str | None = None) -> tuple[str, str]:
    """Write a random AlexNet state dict named like torchvision's files: alexnet-owt-<sha256[:8]>.pth
    (or with a given, wrong, prefix). Only the conv trunk LPIPS reads (`features.*`, 10 MB of the
    233 MB) is kept, so the test stays fast. Returns (file name, its real sha256)."""
    torch.manual_seed(1)
    tmp = folder / "tmp.pth"
    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save({k: v for k, v in state.items() if k.startswith("features.")}, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    name = f"alexnet-owt-{prefix or digest[:8]}.pth"
    tmp.rename(folder / name)
    return name, digest


def test_download_into_the_hub_cache_when_missing(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    base, served = server
    name, digest = _random_alexnet(served)
    url = f"{base}/{name}"
    cache = tmp_path / "torch_home" / "hub" / "checkpoints" / name

    # offline: nothing is fetched, and the reason says so
    metric, status = load_lpips(None, url=url)
    assert metric is None and not status.available and "offline" in status.reason and not cache.exists()

    metric, status = load_lpips(None, download=True, url=url)
    assert metric is not None and status.available and status.source == "download"
    assert cache.is_file() and hashlib.sha256(cache.read_bytes()).hexdigest() == digest
    assert status.sha256 == digest and status.official_checksum is False  # random values, not ImageNet's
    # the next run finds it in the cache (the server is not needed any more)
    (served / name).unlink()
    metric, status = load_lpips(None, download=True, url=url)
    assert status.available and status.source == "hub-cache"


def test_failed_downloads_leave_lpips_unavailable_and_nothing_behind(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    base, served = server
    name, _ = _random_alexnet(served, prefix="00000000")  # the name's hash prefix does not match
    metric, status = load_lpips(None, download=True, url=f"{base}/{name}")
    assert metric is None and not status.available
    assert "downloading" in status.reason and "hash" in status.reason.lower()
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())
    metric, status = load_lpips(None, download=True, url=f"{base}/{perceptual.ALEXNET_CACHE_FILE}")
    assert metric is None and "404" in status.reason  # not on the server


def test_eval_cli_offline_flag_reaches_the_config(monkeypatch, tmp_path):
    """`aiaic-eval --offline` sets EvalConfig.offline (the CLI is a thin wrapper: only the plumbing is
    checked here; the download decision itself is tested above)."""
    from typer.testing import CliRunner

    import aiaic.eval.evaluate as evaluate
    from aiaic.cli.eval import app
    from aiaic.errors import RunError

    seen = []

    def capture(cfg):
        seen.append(cfg)
        raise RunError("stop here")

    monkeypatch.setattr(evaluate, "run_eval", capture)
    for flag, want in (("--offline", True), ("--online", False), (None, False)):
        args = ["--run", str(tmp_path), "--shards", str(tmp_path), "--out", str(tmp_path / "o")]
        res = CliRunner().invoke(app, args + ([flag] if flag else []))
        assert "stop here" in res.output and seen[-1].offline is want
